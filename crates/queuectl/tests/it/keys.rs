//! `keys` and `audit` over PostgreSQL, and the queue actions recorded in the
//! audit log when queuectl has a database.

use crate::support::{TestEnv, row_of};

#[test]
fn keys_are_created_listed_and_revoked_and_each_is_in_the_audit_log() {
    let t = TestEnv::new();
    let db = t.database();
    let created = t
        .queuectl_db(
            &db,
            &[
                "keys",
                "create",
                "ops-alice",
                "--role",
                "operator",
                "--expires",
                "30d",
                "--json",
            ],
        )
        .json();
    let key = created["key"].as_str().expect("the whole key");
    let prefix = created["prefix"].as_str().expect("prefix");
    assert!(key.starts_with(&format!("{prefix}_")), "{created}");
    assert_eq!(created["role"], "operator");
    assert_eq!(created["created_by"], "queuectl:tester");
    assert!(created["expires_at"].is_string(), "{created}");
    let id = created["id"].to_string();

    let text = t
        .queuectl_db(&db, &["keys", "create", "ci", "--role", "user"])
        .ok()
        .to_owned();
    assert!(text.contains("store it now"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("rsq_")), "{text}");

    let list = t.queuectl_db(&db, &["keys", "list"]).ok().to_owned();
    let alice = row_of(&list, "ID", &id);
    assert_eq!(alice["NAME"], "ops-alice");
    assert_eq!(alice["STATE"], "active");
    assert_eq!(alice["LAST USED"], "-");
    assert!(!list.contains(&key[13..]), "never a secret: {list}");

    let out = t.queuectl_db(&db, &["keys", "revoke", &id]).ok().to_owned();
    assert!(out.contains(&format!("revoked key {id}")), "{out}");
    let list = t.queuectl_db(&db, &["keys", "list"]).ok().to_owned();
    assert_eq!(row_of(&list, "ID", &id)["STATE"], "revoked");
    let missing = t.queuectl_db(&db, &["keys", "revoke", "999999"]);
    assert_eq!(missing.code, 66, "{missing:#?}");

    let audit = t.queuectl_db(&db, &["audit", "--json"]).json();
    let entries: Vec<(&str, &str, &str)> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().expect("actor"),
                e["action"].as_str().expect("action"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("queuectl:tester", "key.revoke", "no API key 999999"),
            ("queuectl:tester", "key.revoke", "ok"),
            ("queuectl:tester", "key.create", "ok"),
            ("queuectl:tester", "key.create", "ok"),
        ]
    );
    assert_eq!(
        audit[1]["target"],
        format!("key {prefix} (ops-alice)"),
        "{audit}"
    );
    t.block_on(db.cleanup());
}

#[test]
fn queue_actions_are_in_the_audit_log_when_there_is_a_database() {
    let t = TestEnv::new();
    let db = t.database();
    t.enqueue("broken", 2);
    t.dead_letter_all("broken", 2);
    t.queuectl_db(&db, &["retry", "broken", "all"]).ok();
    t.queuectl_db(&db, &["pause", "broken"]).ok();
    let missing = t.queuectl_db(&db, &["flush", "nope"]);
    assert_eq!(missing.code, 66, "{missing:#?}");
    // Without a database the action is done, and recorded nowhere.
    t.queuectl(&["resume", "broken"]).ok();
    assert!(!t.stats("broken").paused);

    let table = t.queuectl_db(&db, &["audit"]).ok().to_owned();
    let lines: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{table}");
    let newest = lines[0];
    assert!(
        newest.contains("queue.flush")
            && newest.contains("nope")
            && newest.contains("does not exist"),
        "{table}"
    );
    assert!(
        lines[1].contains("queue.pause") && lines[1].contains(" ok"),
        "{table}"
    );
    assert!(
        lines[2].contains("queue.retry_all") && lines[2].contains("queuectl:tester"),
        "{table}"
    );
    let page = t
        .queuectl_db(&db, &["audit", "--limit", "1"])
        .ok()
        .to_owned();
    assert!(page.contains("older: queuectl audit --before"), "{page}");
    t.block_on(db.cleanup());
}

#[test]
fn keys_and_audit_need_a_database() {
    let t = TestEnv::new();
    for args in [&["keys", "list"][..], &["audit"]] {
        let run = t.queuectl(args);
        assert_eq!(run.code, 64, "{run:#?}");
        assert!(run.stderr.contains("--database-url"), "{run:#?}");
    }
    let bad = t.queuectl(&["keys", "create", "x y", "--role", "user"]);
    assert_eq!(bad.code, 2, "a bad name is a usage error: {bad:#?}");
    let bad = t.queuectl(&["keys", "create", "x", "--role", "root"]);
    assert_eq!(bad.code, 2, "{bad:#?}");
}
