//! Acting on a queue: `pause`, `resume`, `purge`, `consumers`.

use std::time::Duration;

use queue_core::NewJob;

use crate::support::{TestEnv, row, row_of};

#[test]
fn pause_and_resume_show_in_stats() {
    let t = TestEnv::new();
    t.enqueue("work", 1);
    let out = t.queuectl(&["pause", "work"]).ok().to_owned();
    assert!(out.contains("paused queue \"work\""), "{out}");
    let table = t.queuectl(&["stats"]).ok().to_owned();
    assert_eq!(row(&table, "work")["PAUSED"], "yes", "{table}");
    assert!(t.stats("work").paused);

    t.queuectl(&["resume", "work"]).ok();
    let table = t.queuectl(&["stats"]).ok().to_owned();
    assert_eq!(row(&table, "work")["PAUSED"], "no", "{table}");
    assert!(!t.stats("work").paused);
}

#[test]
fn purge_refuses_without_yes_and_then_deletes_waiting_and_delayed_jobs() {
    let t = TestEnv::new();
    t.enqueue("work", 4);
    t.enqueue_job(
        "work",
        NewJob::new("test.later", b"x".to_vec()).delay(Duration::from_secs(3600)),
    );

    let refused = t.queuectl(&["purge", "work"]);
    assert_eq!(refused.code, 64, "{refused:#?}");
    assert!(
        refused.stderr.contains("--yes") && refused.stderr.contains("4 waiting jobs"),
        "{refused:#?}"
    );
    let s = t.stats("work");
    assert_eq!(
        (s.waiting, s.delayed),
        (4, 1),
        "nothing deleted without --yes"
    );

    let out = t.queuectl(&["purge", "work", "--yes"]).ok().to_owned();
    assert!(
        out.contains("4 waiting jobs") && out.contains("1 delayed job"),
        "{out}"
    );
    let s = t.stats("work");
    assert_eq!((s.waiting, s.delayed), (0, 0));
}

#[test]
fn consumers_lists_and_removes_idle_ones_handing_over_their_jobs() {
    let t = TestEnv::new();
    t.enqueue("work", 1);
    // A worker process that died holding the job: the job stays pending on it.
    // (A worker that stops cleanly leaves the group and hands its jobs over.)
    t.block_on(t.redis.read_as(&t.queue("work"), "ghost", 1));

    let table = t.queuectl(&["consumers", "work"]).ok().to_owned();
    let ghost = row_of(&table, "CONSUMER", "ghost");
    assert_eq!(ghost["PENDING"], "1", "{table}");
    assert_eq!(ghost["LANE"], "normal", "{table}");

    let none = t
        .queuectl(&["consumers", "work", "--remove-idle", "1h"])
        .ok()
        .to_owned();
    assert!(none.contains("no consumer"), "{none}");

    let out = t
        .queuectl(&["consumers", "work", "--remove-idle", "0s"])
        .ok()
        .to_owned();
    assert!(
        out.contains("removed consumer ghost") && out.contains("handed 1 pending entry to"),
        "{out}"
    );
    let json = t.queuectl(&["consumers", "work", "--json"]).json();
    let names: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(!names.contains(&"ghost"), "{json}");
    let heir = json
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == queue_core::admin::HEIR_CONSUMER)
        .expect("the heir holds the job");
    assert_eq!(heir["pending"], 1, "{json}");
    assert_eq!(t.stats("work").active, 1, "the job is not lost");
}
