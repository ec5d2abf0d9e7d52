//! Runs the built `queuectl` against a real Redis, each test under its own prefix.

mod support;

use std::time::Duration;

use queue_core::{Job, NewJob};
use support::{TestRedis, row, run_queuectl};

#[test]
fn stats_table_and_json_show_waiting_delayed_and_dead_jobs() {
    let t = TestRedis::new();
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
fn failed_lists_dead_letters_and_show_inspects_one() {
    let t = TestRedis::new();
    let first = t.enqueue_job(
        "broken",
        NewJob::new("mail.send", b"hello".to_vec()).header("tenant", "acme"),
    );
    let second = t.enqueue("broken", 1).remove(0);
    t.dead_letter_all("broken", 2);

    let list = t.queuectl(&["failed", "broken"]).ok().to_owned();
    assert!(list.starts_with("ID "), "{list}");
    assert!(list.contains(&first) && list.contains(&second), "{list}");
    assert!(
        list.contains("mail.send") && list.contains("boom: "),
        "{list}"
    );
    assert_eq!(list.lines().count(), 3, "one line per dead letter: {list}");

    // Paging: one per page, the last line says how to get the next (older) one.
    let page = t
        .queuectl(&["failed", "broken", "--limit", "1"])
        .ok()
        .to_owned();
    let (newest, older) = if page.contains(&first) {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert!(page.contains(newest) && !page.contains(older), "{page}");
    let before = page
        .lines()
        .last()
        .and_then(|l| l.split_once("--before "))
        .map(|(_, id)| id.to_owned())
        .unwrap_or_else(|| panic!("no --before hint: {page}"));
    let next = t
        .queuectl(&["failed", "broken", "--limit", "1", "--before", &before])
        .ok()
        .to_owned();
    assert!(next.contains(older) && !next.contains(newest), "{next}");
    assert!(!next.contains("--before"), "last page: {next}");

    let json = t.queuectl(&["failed", "broken", "--json"]).json();
    let items = json["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{json}");
    assert!(json["next"].is_null(), "{json}");
    let item = items
        .iter()
        .find(|i| i["job_id"] == first.as_str())
        .expect("the first job is listed");
    assert_eq!(item["payload_bytes"], 5);
    assert_eq!(item["kind"], "mail.send");
    let entry_id = item["id"].as_str().expect("entry id").to_owned();

    for args in [
        ["failed", "broken", first.as_str()],
        ["show", "broken", entry_id.as_str()],
    ] {
        let shown = t.queuectl(&args).ok().to_owned();
        assert!(
            shown.contains(&entry_id) && shown.contains(&first),
            "{shown}"
        );
        assert!(shown.contains("tenant: acme"), "{shown}");
        assert!(shown.contains("5 bytes"), "{shown}");
        assert!(
            shown.contains("second line of the error"),
            "full error: {shown}"
        );
    }
}

#[test]
fn retry_moves_dead_letters_back_to_waiting() {
    let t = TestRedis::new();
    t.enqueue("broken", 2);
    t.dead_letter_all("broken", 2);
    let json = t.queuectl(&["failed", "broken", "--json"]).json();
    let entry_id = json["items"][0]["id"].as_str().expect("id").to_owned();

    let out = t.queuectl(&["retry", "broken", &entry_id]).ok().to_owned();
    assert!(out.contains("re-enqueued dead letter"), "{out}");
    let stats = &t.queuectl(&["stats", "broken", "--json"]).json()[0];
    assert_eq!(stats["waiting"], 1, "{stats}");
    assert_eq!(stats["failed"], 1, "{stats}");

    let out = t.queuectl(&["retry", "broken", "all"]).ok().to_owned();
    assert!(out.contains("re-enqueued 1 dead letter "), "{out}");
    let s = t.stats("broken");
    assert_eq!((s.waiting, s.failed), (2, 0));
}

#[test]
fn delete_and_flush_remove_dead_letters() {
    let t = TestRedis::new();
    let ids = t.enqueue("broken", 3);
    t.dead_letter_all("broken", 3);

    let out = t.queuectl(&["delete", "broken", &ids[0]]).ok().to_owned();
    assert!(out.contains(&ids[0]), "{out}");
    assert_eq!(t.stats("broken").failed, 2);
    let list = t.queuectl(&["failed", "broken"]).ok().to_owned();
    assert!(!list.contains(&ids[0]) && list.contains(&ids[1]), "{list}");

    let out = t.queuectl(&["flush", "broken"]).ok().to_owned();
    assert!(out.contains("deleted 2 dead letters"), "{out}");
    assert_eq!(t.stats("broken").failed, 0);
    let empty = t.queuectl(&["failed", "broken"]).ok().to_owned();
    assert!(empty.contains("no dead letters"), "{empty}");
}

#[test]
fn unknown_dead_letters_exit_66_with_a_clear_message() {
    let t = TestRedis::new();
    t.enqueue("work", 1);
    for args in [
        ["failed", "work", "1700000000000-0"],
        ["show", "work", "nope"],
        ["retry", "work", "nope"],
        ["delete", "work", "nope"],
    ] {
        let run = t.queuectl(&args);
        assert_eq!(run.code, 66, "{args:?}: {run:#?}");
        assert!(
            run.stderr.starts_with("queuectl: dead letter ")
                && run.stderr.contains("not found in queue \"work\""),
            "{run:#?}"
        );
        assert!(run.stdout.is_empty(), "{run:#?}");
    }
}

#[test]
fn pause_and_resume_show_in_stats() {
    let t = TestRedis::new();
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
    let t = TestRedis::new();
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
fn unreachable_redis_exits_69_and_never_prints_the_password() {
    for (url, shown) in [
        ("redis://127.0.0.1:1", "redis://127.0.0.1:1"),
        (
            "redis://ops:s3cr3t-pw@127.0.0.1:1/0",
            "redis://ops:***@127.0.0.1:1/0",
        ),
    ] {
        let run = run_queuectl(&["--redis-url", url], &["stats"]);
        assert_eq!(run.code, 69, "{run:#?}");
        let expected = format!("queuectl: cannot reach redis at {shown}: ");
        assert!(run.stderr.starts_with(&expected), "{run:#?}");
        assert!(run.stderr.contains("refused"), "{run:#?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
        assert!(!run.stderr.contains("s3cr3t-pw"), "{run:#?}");
    }
}

#[test]
fn unknown_queues_exit_66() {
    let t = TestRedis::new();
    for args in [
        vec!["stats", "foo"],
        vec!["pause", "foo"],
        vec!["failed", "foo"],
        vec!["purge", "foo", "--yes"],
        vec!["consumers", "foo"],
    ] {
        let run = t.queuectl(&args);
        assert_eq!(run.code, 66, "{args:?}: {run:#?}");
        assert_eq!(
            run.stderr,
            "queuectl: queue \"foo\" does not exist (no producer or worker has used it)\n"
        );
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let t = TestRedis::new();
    for args in [
        vec!["consumers", "work", "--remove-idle", "5parsecs"],
        vec!["monitor", "--interval", "0s"],
        vec!["purge"],
        vec!["pause", "bad{name}"],
        vec!["failed", "work", "--limit", "0"],
        vec!["frobnicate"],
    ] {
        let run = t.queuectl(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(
            run.stderr.contains("Usage:") || run.stderr.contains("--help"),
            "{run:#?}"
        );
    }
}

#[test]
fn monitor_prints_one_table_per_refresh_with_a_rate_column() {
    let t = TestRedis::new();
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
fn consumers_lists_and_removes_idle_ones_handing_over_their_jobs() {
    let t = TestRedis::new();
    t.enqueue("work", 1);
    // A worker that never finishes its job, then stops: the job stays pending on it.
    t.start_worker("work", "ghost", |_job: Job| async move {
        std::future::pending::<()>().await;
        Ok(())
    });
    t.wait_until("the job to be taken", || t.stats("work").active == 1);
    t.stop_workers();

    let table = t.queuectl(&["consumers", "work"]).ok().to_owned();
    let ghost = row(&table, "ghost");
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
