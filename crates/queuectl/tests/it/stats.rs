//! `stats` and `monitor`: the tables and JSON that show queues at a glance.

use std::time::Duration;

use queue_core::NewJob;

use crate::support::{TestEnv, row};

#[test]
fn stats_table_and_json_show_waiting_delayed_and_dead_jobs() {
    let t = TestEnv::new();
    t.enqueue("emails", 3);
    t.enqueue_job(
        "emails",
        NewJob::new("test.later", b"x".to_vec()).delay(Duration::from_secs(3600)),
    );
    t.enqueue("broken", 1);
    t.dead_letter_all("broken", 1);

    let table = t.queuectl(&["stats"]).ok().to_owned();
    let emails = row(&table, "emails");
    assert_eq!(emails["WAITING"], "3", "{table}");
    assert_eq!(emails["DELAYED"], "1", "{table}");
    assert_eq!(emails["FAILED"], "0", "{table}");
    assert_eq!(emails["PAUSED"], "no", "{table}");
    assert_ne!(emails["OLDEST"], "-", "jobs are waiting: {table}");
    let broken = row(&table, "broken");
    assert_eq!(broken["WAITING"], "0", "{table}");
    assert_eq!(broken["FAILED"], "1", "{table}");
    assert_eq!(broken["COMPLETED"], "0", "{table}");
    assert_eq!(broken["CONSUMERS"], "1", "{table}");
    assert_eq!(broken["OLDEST"], "-", "{table}");

    let json = t.queuectl(&["stats", "--json"]).json();
    let all = json.as_array().expect("an array");
    assert_eq!(all.len(), 2, "{json}");
    let emails = all.iter().find(|s| s["name"] == "emails").expect("emails");
    assert_eq!(emails["waiting"], 3);
    assert_eq!(emails["delayed"], 1);
    assert_eq!(emails["paused"], false);
    let broken = all.iter().find(|s| s["name"] == "broken").expect("broken");
    assert_eq!(broken["failed"], 1);
    assert_eq!(broken["dead_lettered"], 1);

    let only = t.queuectl(&["stats", "emails"]).ok().to_owned();
    assert!(
        only.contains("emails") && !only.contains("broken"),
        "{only}"
    );
}

#[test]
fn monitor_prints_one_table_per_refresh_with_a_rate_column() {
    let t = TestEnv::new();
    t.enqueue("work", 2);
    let out = t
        .queuectl(&["monitor", "--interval", "50ms", "--iterations", "2"])
        .ok()
        .to_owned();
    let headers = out.lines().filter(|l| l.starts_with("QUEUE ")).count();
    assert_eq!(headers, 2, "{out}");
    assert_eq!(out.matches("queuectl monitor ").count(), 2, "{out}");
    assert!(out.contains("COMPLETED/S"), "{out}");
    assert_eq!(row(&out, "work")["WAITING"], "2", "{out}");
    assert!(
        !out.contains('\x1b'),
        "no escape codes when not on a terminal: {out:?}"
    );
}
