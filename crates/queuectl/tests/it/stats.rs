//! `stats` and `monitor`: the tables and JSON that show queues at a glance.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use queue_core::testing::{fast_worker_config, unix_ms};
use queue_core::{Every, Job, NewJob, RepeatingJob, Worker};

use crate::support::{TestEnv, row, section};

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
    // Its worker stopped cleanly and left the group.
    assert_eq!(broken["CONSUMERS"], "0", "{table}");
    assert_eq!(broken["OLDEST"], "-", "{table}");
    assert!(
        !table.contains("REPEATING"),
        "no repeating jobs, no such table: {table}"
    );

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

#[test]
fn stats_show_each_repeating_job_with_its_schedule_and_last_run() {
    let t = TestEnv::new();
    t.enqueue("emails", 1);
    // Daily at midnight UTC: the current period began today at 00:00, so a
    // starting worker enqueues today's job at once, and only that one.
    let every = Every::daily_at(0, 0).expect("valid schedule");
    let cleanup = RepeatingJob::new("cleanup", every, |_period_start| {
        NewJob::new("test.cleanup", "")
    })
    .expect("valid repeating job");
    let worker = Worker::new(
        t.redis.broker.clone(),
        t.queue("maintenance"),
        fast_worker_config(),
        |_job: Job| async { Ok(()) },
    )
    .expect("valid worker")
    .repeat(cleanup)
    .expect("declared once");
    let today_before = every.period_start(unix_ms(SystemTime::now()));
    t.spawn(worker);
    t.wait_until("maintenance", "today's cleanup ran", |s| s.completed == 1);
    t.stop_workers();
    let today_after = every.period_start(unix_ms(SystemTime::now()));

    let json = t.queuectl(&["stats", "--json"]).json();
    let all = json.as_array().expect("an array");
    let queue = |name: &str| all.iter().find(|s| s["name"] == name).expect(name);
    assert_eq!(
        queue("emails")["repeating"],
        serde_json::json!([]),
        "{json}"
    );
    let repeating = queue("maintenance")["repeating"]
        .as_array()
        .expect("repeating jobs")
        .clone();
    assert_eq!(repeating.len(), 1, "{json}");
    let status = &repeating[0];
    assert_eq!(status["name"], "cleanup", "{json}");
    assert_eq!(status["schedule"], "daily at 00:00 UTC", "{json}");
    let period = status["last_period_ms"].as_i64().expect("a period start");
    assert!(
        (today_before..=today_after).contains(&period),
        "today's period: {json}"
    );
    assert_eq!(status["last_job_id"], format!("cleanup:{period}"), "{json}");

    let table = t.queuectl(&["stats"]).ok().to_owned();
    assert_eq!(row(&table, "maintenance")["COMPLETED"], "1", "{table}");
    let repeating = section(&table, "REPEATING");
    assert!(!repeating.contains("emails"), "{table}");
    let cleanup = row(repeating, "maintenance");
    assert_eq!(cleanup["NAME"], "cleanup", "{table}");
    assert_eq!(cleanup["SCHEDULE"], "daily at 00:00 UTC", "{table}");
    let midnight = UNIX_EPOCH + Duration::from_millis(period as u64);
    assert_eq!(
        cleanup["LAST PERIOD"],
        humantime::format_rfc3339_seconds(midnight).to_string(),
        "{table}"
    );
    assert!(cleanup["LAST PERIOD"].ends_with("T00:00:00Z"), "{table}");
    assert_eq!(cleanup["LAST JOB"], format!("cleanup:{period}"), "{table}");

    let only = t.queuectl(&["stats", "emails"]).ok().to_owned();
    assert!(!only.contains("REPEATING"), "{only}");
}

#[test]
fn retention_shows_what_each_queue_keeps_as_its_workers_wrote_it() {
    let t = TestEnv::new();
    t.enqueue("bare", 1);
    let config = queue_core::WorkerConfig {
        done_retention: 50,
        dlq_retention: 0,
        dlq_max_age: Some(Duration::from_secs(30 * 86_400)),
        ..fast_worker_config()
    };
    t.start_worker("kept", config, |_job: Job| async { Ok(()) });
    t.enqueue("kept", 1);
    t.wait_until("kept", "the job ran", |s| s.completed == 1);
    t.stop_workers();

    let table = t.queuectl(&["retention"]).ok().to_owned();
    let kept = row(&table, "kept");
    assert_eq!(kept["COMPLETED"], "50", "{table}");
    assert_eq!(kept["COMPLETED MAX AGE"], "-", "{table}");
    assert_eq!(kept["DEAD LETTERS"], "-", "{table}");
    assert_eq!(kept["DEAD LETTERS MAX AGE"], "30d00h", "{table}");
    assert_eq!(row(&table, "bare")["COMPLETED"], "unknown", "{table}");

    let json = t.queuectl(&["retention", "kept", "--json"]).json();
    assert_eq!(
        json,
        serde_json::json!([{"name": "kept", "retention": {
            "completed": 50,
            "completed_max_age_ms": null,
            "dead_letters": 0,
            "dead_letters_max_age_ms": 2_592_000_000_u64,
        }}])
    );
}
