//! A queue's jobs: `jobs`, `job`, `promote`, `delete-job`, `history`.

use std::time::Duration;

use queue_core::testing::fast_worker_config;
use queue_core::{Job, NewJob};

use crate::support::{TestEnv, row_of};

#[test]
fn jobs_pages_through_a_state_and_job_shows_one_in_any_state() {
    let t = TestEnv::new();
    let ids = t.enqueue("work", 3);
    let later = t.enqueue_job(
        "work",
        NewJob::new("test.later", b"x".to_vec())
            .delay(Duration::from_secs(3600))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
    );

    let table = t.queuectl(&["jobs", "work"]).ok().to_owned();
    for id in &ids {
        assert_eq!(row_of(&table, "ID", id)["KIND"], "test.job", "{table}");
    }
    assert!(!table.contains(&later), "waiting only: {table}");
    // Two per page: the first page says how to get the next.
    let first = t
        .queuectl(&["jobs", "work", "--limit", "2"])
        .ok()
        .to_owned();
    let more = first
        .lines()
        .find_map(|l| l.strip_prefix("more: queuectl "))
        .unwrap_or_else(|| panic!("no next page: {first}"));
    let args: Vec<&str> = more.split_whitespace().collect();
    let second = t.queuectl(&args).ok().to_owned();
    assert!(
        second.contains(&ids[2]) && !second.contains(&ids[0]),
        "{second}"
    );

    let delayed = t
        .queuectl(&["jobs", "work", "--state", "delayed", "--json"])
        .json();
    assert_eq!(delayed["jobs"][0]["id"], later.as_str(), "{delayed}");
    assert_eq!(delayed["jobs"][0]["state"], "delayed");

    let shown = t.queuectl(&["job", "work", &later]).ok().to_owned();
    for line in [
        "state         delayed",
        "trace id      4bf92f3577b34da6a3ce929d0e0e4736",
        "payload       1 byte",
    ] {
        assert!(shown.contains(line), "{line:?} not in\n{shown}");
    }
    let missing = t.queuectl(&["job", "work", "no-such-job"]);
    assert_eq!(missing.code, 66, "{missing:#?}");
    let bad = t.queuectl(&["jobs", "work", "--state", "lost"]);
    assert_eq!(bad.code, 2, "a usage error: {bad:#?}");
    let cursor = t.queuectl(&["jobs", "work", "--after", "nonsense"]);
    assert_eq!(cursor.code, 64, "{cursor:#?}");
}

#[test]
fn promote_runs_a_delayed_job_now_and_delete_job_removes_a_waiting_one() {
    let t = TestEnv::new();
    let waiting = t.enqueue("work", 1).remove(0);
    let later = t.enqueue_job(
        "work",
        NewJob::new("test.later", b"x".to_vec()).delay(Duration::from_secs(3600)),
    );

    let out = t.queuectl(&["promote", "work", &later]).ok().to_owned();
    assert!(out.contains(&format!("promoted job {later}")), "{out}");
    let s = t.stats("work");
    assert_eq!((s.waiting, s.delayed), (2, 0));
    // Only a delayed job is promoted: a refused operation.
    let refused = t.queuectl(&["promote", "work", &waiting]);
    assert_eq!(refused.code, 64, "{refused:#?}");
    assert!(refused.stderr.contains("is waiting"), "{refused:#?}");

    t.queuectl(&["delete-job", "work", &waiting]).ok();
    assert_eq!(t.stats("work").waiting, 1);
    let gone = t.queuectl(&["delete-job", "work", &waiting]);
    assert_eq!(gone.code, 66, "{gone:#?}");
}

#[test]
fn history_shows_each_minute_and_the_totals() {
    let t = TestEnv::new();
    t.enqueue("work", 3);
    t.start_worker("work", fast_worker_config(), |_job: Job| async { Ok(()) });
    t.wait_until("work", "three completed", |s| s.completed == 3);
    t.stop_workers();

    let table = t
        .queuectl(&["history", "work", "--minutes", "5"])
        .ok()
        .to_owned();
    assert_eq!(
        table.lines().count(),
        1 + 5 + 1,
        "header, five minutes, total: {table}"
    );
    assert_eq!(
        row_of(&table, "MINUTE", "total")["COMPLETED"],
        "3",
        "{table}"
    );
    let json = t
        .queuectl(&["history", "work", "--minutes", "2", "--json"])
        .json();
    assert_eq!(json.as_array().expect("minutes").len(), 2, "{json}");
}
