//! Jobs in flight together run as one batch (`qr_worker::batch`): each keeps
//! its own outcome, and no row is `ready` before its file is durable.

use jobs::v1::GenerateQr;
use queue_core::testing::eventually;
use service::testing::http_get;
use store::persons::{self, QrStatus};

use crate::support::{QrWorld, TestApp, decode_png, list_dir};

/// `name`'s value in a Prometheus text exposition (summed over its labels).
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_batch_with_stale_gone_and_unwritable_jobs_settles_each_job_on_its_own() {
    let app = TestApp::new().await;
    // A file where the `blocked` directory should be: that job's write fails.
    std::fs::write(app.storage_path("blocked"), b"not a directory").expect("write");
    let mut good = Vec::new();
    for i in 0..8 {
        let document = format!("G-{i}");
        let person = app
            .add_person(
                &document,
                &format!("PERSON:{document}"),
                &format!("qr/{document}.png"),
            )
            .await;
        app.enqueue(&person).await;
        good.push(person);
    }
    let stale = app.add_person("S-1", "PERSON:S-1", "qr/S-1.png").await;
    let stale_job = app
        .enqueue_raw(GenerateQr {
            person_id: stale.id,
            content: "PERSON:S-1".into(),
            path: "qr/old-S-1.png".into(),
        })
        .await;
    let gone = app.add_person("D-1", "PERSON:D-1", "qr/D-1.png").await;
    let gone_job = app.enqueue(&gone).await;
    assert!(
        persons::delete(&mut *app.conn().await, gone.id)
            .await
            .expect("delete")
    );
    let blocked = app.add_person("B-1", "PERSON:B-1", "blocked/B-1.png").await;
    let blocked_job = app.enqueue(&blocked).await;

    // Every job waits before the worker starts: its first reads take them together.
    let worker = app.spawn_worker().await;

    // No row is ever `ready` without its whole file: checked at every poll.
    eventually("every good person is ready", async || {
        let mut ready = 0;
        for p in &good {
            if app.person(p.id).await.qr_status == QrStatus::Ready {
                assert_eq!(decode_png(&app.storage_path(&p.qr_path)), p.qr_content);
                ready += 1;
            }
        }
        (ready == good.len()).then_some(())
    })
    .await;

    // The stale job is dead-lettered without touching its row or writing its path.
    let dead = app.dead_letter_until(&stale_job).await;
    assert!(dead.error.contains("outdated"), "{}", dead.error);
    assert!(!app.storage_path("qr/old-S-1.png").exists());
    // The job of a person that is gone completes, writing nothing.
    app.completed_until(&gone_job).await;
    assert!(!app.storage_path("qr/D-1.png").exists());
    // The unwritable one fails alone, after its retries; its row was never ready.
    let failed = app.person_until(blocked.id, QrStatus::Failed).await;
    assert!(
        failed
            .qr_error
            .as_deref()
            .is_some_and(|e| e.contains("create directory")),
        "{failed:?}"
    );
    assert!(
        app.dead_letter_until(&blocked_job)
            .await
            .error
            .contains("blocked/B-1.png")
    );

    let mut names = list_dir(&app.storage_path("qr"));
    names.retain(|n| n != "S-1.png"); // the reconciler may have rendered the stale row's own
    let expected: Vec<String> = (0..8).map(|i| format!("G-{i}.png")).collect();
    assert_eq!(
        names, expected,
        "no temporary file, nothing for the stale or gone jobs"
    );

    // They ran in batches: fewer batches than jobs.
    let (status, body) = http_get(worker.addr, "/metrics").await;
    assert_eq!(status, 200);
    let (batches, jobs) = (
        metric(&body, "qr_batch_jobs_count"),
        metric(&body, "qr_batch_jobs_sum"),
    );
    assert!(
        batches >= 1.0 && jobs > batches,
        "batches {batches}, jobs {jobs}:\n{body}"
    );

    worker.stop().await;
    app.finish().await;
}
