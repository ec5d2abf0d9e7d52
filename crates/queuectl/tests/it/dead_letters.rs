//! Dead letters: `failed`, `show`, `retry`, `delete`, `flush`.

use queue_core::NewJob;

use crate::support::TestEnv;

#[test]
fn failed_lists_dead_letters_and_show_inspects_one() {
    let t = TestEnv::new();
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
    let t = TestEnv::new();
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
    let t = TestEnv::new();
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
    let t = TestEnv::new();
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
