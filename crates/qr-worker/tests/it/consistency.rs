//! A row and its job never disagree for long (docs/design.md): a pending person with
//! no job is found by the reconciler, and a job whose person is gone is dropped.

use std::time::Duration;

use jobs::v1::GenerateQr;
use qr_worker::Reconciler;
use qr_worker::reconcile::PendingQrs;
use service::config::ReconcileConfig;
use store::persons::QrStatus;

use crate::support::{QrWorld, TestApp, decode_png};

#[tokio::test]
async fn a_person_stored_without_a_job_is_reconciled_and_becomes_ready() {
    let app = TestApp::new().await;
    // A gateway killed between its commit and its enqueue: the row, and no job.
    let person = app
        .add_person("K-1001", "PERSON:K-1001", "qr/K-1001.png")
        .await;
    let worker = app.spawn_worker().await;

    app.person_until(person.id, QrStatus::Ready).await;
    assert_eq!(
        decode_png(&app.storage_path("qr/K-1001.png")),
        "PERSON:K-1001"
    );

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_job_whose_person_is_gone_completes_without_a_dead_letter() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let job_id = app
        .enqueue_raw(GenerateQr {
            person_id: 987_654_321,
            content: "PERSON:V-9".into(),
            path: "qr/V-9.png".into(),
        })
        .await;

    app.completed_until(&job_id).await;
    let stats = app.stats().await;
    assert_eq!((stats.dead_lettered, stats.failed), (0, 0), "{stats:#?}");
    assert!(
        !app.storage_path("qr/V-9.png").exists(),
        "no file is written"
    );

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn reconciling_again_never_makes_a_second_job_for_a_row_and_batches_are_bounded() {
    let app = TestApp::new().await;
    // No worker: the jobs stay waiting, so every one of them can be counted.
    let with_job = app.add_person("U-1", "PERSON:U-1", "qr/U-1.png").await;
    app.enqueue(&with_job).await;
    let without = [
        app.add_person("U-2", "PERSON:U-2", "qr/U-2.png").await,
        app.add_person("U-3", "PERSON:U-3", "qr/U-3.png").await,
    ];
    let reconciler = |batch| {
        Reconciler::new(
            app.db.pool.clone(),
            app.redis.producer.clone(),
            app.queue.clone(),
            ReconcileConfig {
                interval: Duration::from_secs(1),
                after: Duration::ZERO,
                batch,
            },
            PendingQrs,
        )
    };

    // Oldest first, in pages of the batch: the row with a job does not hide
    // the two without.
    let first = reconciler(2).run_once().await.expect("first run");
    assert_eq!(
        (first.pending, first.enqueued),
        (3, 2),
        "{} and {} were missing",
        without[0].id,
        without[1].id
    );
    let again = reconciler(500).run_once().await.expect("second run");
    assert_eq!((again.pending, again.enqueued), (3, 0));
    assert_eq!(app.stats().await.waiting, 3, "one job per row");

    app.finish().await;
}
