//! An operator's retry of a dead letter (`queuectl retry`, the admin API): the
//! person failed by it runs again and gets its QR, the error kept.

use store::persons::{Person, QrStatus};

use service::testing::assert_one_past_error;

use crate::support::{QrWorld, TestApp, decode_png};

/// What a retried person must look like once ready.
fn ready_after_a_retry(app: &TestApp, done: &Person) {
    assert_eq!(done.qr_error, None);
    assert_one_past_error(&done.qr_error_history, "create directory");
    assert_eq!(
        decode_png(&app.storage_path(&done.qr_path)),
        done.qr_content
    );
}

#[tokio::test]
async fn retrying_a_dead_lettered_qr_job_puts_the_person_back_to_pending_and_renders_it() {
    let app = TestApp::new().await;
    // A file where the `qr` directory should be: every write fails.
    std::fs::write(app.storage_path("qr"), b"not a directory").expect("write the blocking file");
    let worker = app.spawn_worker().await;
    let one = app.add_person("V-1", "PERSON:V-1", "qr/V-1.png").await;
    let all = app.add_person("V-2", "PERSON:V-2", "qr/V-2.png").await;
    let job = app.enqueue(&one).await;
    app.enqueue(&all).await;
    app.person_until(one.id, QrStatus::Failed).await;
    app.person_until(all.id, QrStatus::Failed).await;
    app.stats_until("both jobs are dead letters", |s| s.dead_lettered == 2)
        .await;
    std::fs::remove_file(app.storage_path("qr")).expect("unblock the directory");

    // One dead letter, by its job id.
    app.retry_dead(&job).await;
    let done = app.person_until(one.id, QrStatus::Ready).await;
    ready_after_a_retry(&app, &done);
    assert_eq!(app.person(all.id).await.qr_status, QrStatus::Failed);

    // Every dead letter.
    assert_eq!(app.retry_all_dead().await, 1);
    let done = app.person_until(all.id, QrStatus::Ready).await;
    ready_after_a_retry(&app, &done);
    worker.stop().await;
    app.finish().await;
}
