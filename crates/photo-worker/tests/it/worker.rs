//! Processing uploaded photos: status moves, bibs, thumbnails, failures,
//! retries, dropped jobs and the reconciler.

use photo_worker::testing::{bib_photo, bib_photo_jpeg, bib_photo_png};
use queue_core::testing::eventually;
use service::testing::TableLock;
use store::photos::ProcessingStatus;

use crate::support::{PhotoWorld, TestApp};

#[tokio::test]
async fn an_uploaded_photo_moves_pending_processing_completed_with_its_bibs_and_a_thumbnail() {
    let app = TestApp::new().await;
    let (width, height) = bib_photo(&["1234", "507"]).dimensions();
    let photo = app.upload(&bib_photo_jpeg(&["1234", "507"])).await;
    assert_eq!(photo.processing_status, ProcessingStatus::Pending);
    app.enqueue(photo.id).await;

    // Hold the detections table: the worker can start the photo but not
    // complete it, so `processing` is seen for sure, not by luck of timing.
    let lock = TableLock::new(&app.db.url, "photo_detections").await;
    let worker = app.spawn_worker().await;
    let processing = app
        .photo_until(photo.id, ProcessingStatus::Processing)
        .await;
    assert_eq!(processing.attempts, 1);
    assert_eq!(processing.processed_at, None);
    lock.release().await;

    let done = app.photo_until(photo.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(photo.id).await, vec!["1234", "507"]);
    assert_eq!((done.attempts, done.processing_error), (1, None));
    assert!(done.processed_at.is_some());
    assert_eq!(
        (done.width, done.height),
        (Some(width as i32), Some(height as i32))
    );
    for d in app.detections(photo.id).await {
        assert!((0.5..=1.0).contains(&d.confidence), "{d:?}");
        assert!(d.box_width > 0 && d.box_height > 0, "{d:?}");
    }
    let thumb_path = done.thumbnail_path.expect("a thumbnail");
    assert_eq!(thumb_path, format!("thumbs/{}.jpg", photo.id));
    let thumb = image::open(app.storage_path(&thumb_path)).expect("the thumbnail decodes");
    assert_eq!(thumb.width().max(thumb.height()), 320, "the longest side");

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_corrupt_file_ends_failed_with_a_readable_error_at_once_and_the_worker_keeps_going() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let mut corrupt = bib_photo_png(&["1234"]);
    corrupt.truncate(corrupt.len() / 3);
    let broken = app.upload(&corrupt).await;
    let not_an_image = app.upload(b"GIF89a this is not a photo").await;
    app.enqueue(broken.id).await;
    app.enqueue(not_an_image.id).await;

    let failed = app.photo_until(broken.id, ProcessingStatus::Failed).await;
    let error = failed.processing_error.expect("the reason is recorded");
    assert!(error.starts_with("not a decodable image: "), "{error}");
    assert_eq!(failed.attempts, 1, "a corrupt file is not retried");
    assert!(failed.processed_at.is_some());
    let other = app
        .photo_until(not_an_image.id, ProcessingStatus::Failed)
        .await;
    assert!(
        other
            .processing_error
            .as_deref()
            .is_some_and(|e| e.starts_with("not a JPEG or PNG image")),
        "{other:?}"
    );
    assert!(app.detections(broken.id).await.is_empty());

    // Still consuming.
    assert!(worker.is_running());
    let fine = app.upload(&bib_photo_png(&["90817"])).await;
    app.enqueue(fine.id).await;
    app.photo_until(fine.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(fine.id).await, vec!["90817"]);
    let stats = app
        .stats_until("both failures are dead letters", |s| s.dead_lettered == 2)
        .await;
    assert_eq!(stats.retried, 0, "{stats:#?}");

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_image_over_the_pixel_limit_is_failed_without_being_decoded() {
    let app = TestApp::new().await;
    let worker = app
        .spawn_worker_with(|c| c.limits.max_pixels = 100_000)
        .await;
    let big = app.upload(&bib_photo_png(&["1234"])).await;
    app.enqueue(big.id).await;
    let failed = app.photo_until(big.id, ProcessingStatus::Failed).await;
    let error = failed.processing_error.expect("a reason");
    assert!(
        error.contains("800x600 pixels") && error.contains("PHOTO_MAX_PIXELS (100000)"),
        "{error}"
    );
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_unreadable_original_is_retried_the_last_attempt_leaves_it_failed_and_a_retried_dead_letter_completes_it()
 {
    let app = TestApp::new().await;
    let photo = app.upload(&bib_photo_png(&["1234"])).await;
    // A directory where the file should be: reading it fails, as a broken disk would.
    let path = app.original_path(&photo);
    std::fs::remove_file(&path).expect("remove");
    std::fs::create_dir(&path).expect("a directory instead");
    let worker = app.spawn_worker().await;
    let job_id = app.enqueue(photo.id).await;

    let failed = app.photo_until(photo.id, ProcessingStatus::Failed).await;
    assert_eq!(failed.attempts, 3);
    let error = failed.processing_error.expect("a reason");
    assert!(error.starts_with("reading photos/"), "{error}");
    let stats = app
        .stats_until("the job is dead-lettered", |s| {
            s.dead_lettered == 1 && s.active == 0 && s.delayed == 0
        })
        .await;
    assert_eq!(stats.retried, 2, "{stats:#?}");
    let dead = app.dead_letter(&job_id).await;
    assert_eq!(dead.attempts, Some(3));

    // The disk is mended and an operator retries the dead letter: processed.
    std::fs::remove_dir(&path).expect("remove the directory");
    std::fs::write(&path, bib_photo_png(&["1234"])).expect("the file again");
    app.retry_dead(&job_id).await;
    let done = app.photo_until(photo.id, ProcessingStatus::Completed).await;
    assert_eq!((done.attempts, done.processing_error), (4, None));
    assert_eq!(app.bibs(photo.id).await, vec!["1234"]);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_job_whose_photo_is_gone_completes_as_a_no_op_and_a_completed_photo_is_not_redone() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let photo = app.upload(&bib_photo_png(&["4521"])).await;
    store::photos::delete(&mut *app.conn().await, photo.id)
        .await
        .expect("delete");
    let dropped = app.enqueue(photo.id).await;
    app.completed_until(&dropped).await;

    let kept = app.upload(&bib_photo_png(&["4521"])).await;
    let first = app.enqueue(kept.id).await;
    app.completed_until(&first).await;
    let done = app.photo(kept.id).await;
    assert_eq!(done.processing_status, ProcessingStatus::Completed);
    // The same job again, as after a crash before its acknowledgement.
    let again = app.enqueue_duplicate(kept.id).await;
    app.completed_until(&again).await;
    assert_eq!(
        app.photo(kept.id).await,
        done,
        "a settled photo is not touched"
    );
    assert_eq!(app.bibs(kept.id).await, vec!["4521"]);
    let stats = app.stats_until("nothing failed", |s| s.active == 0).await;
    assert_eq!(stats.dead_lettered, 0, "{stats:#?}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_photo_left_pending_without_a_job_is_processed_through_the_reconciler() {
    let app = TestApp::new().await;
    // Stored, never enqueued: a gateway killed between its commit and its enqueue.
    let photo = app.upload(&bib_photo_png(&["386"])).await;
    let worker = app.spawn_worker().await;
    app.photo_until(photo.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(photo.id).await, vec!["386"]);
    // Exactly one processing job ran for it.
    let runs = eventually("the job's completion is recorded", async || {
        let n = app.completions_of("photo.process").await;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(runs, 1);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_job_whose_last_attempt_times_out_leaves_its_photo_failed_through_the_dead_letter_hook() {
    let app = TestApp::new().await;
    // Every run times out: the runner, not the handler, ends the last attempt.
    let worker = app
        .spawn_worker_with(|c| {
            c.worker.job_timeout = std::time::Duration::from_micros(1);
            c.worker.max_attempts = 2;
        })
        .await;
    let photo = app.upload(&bib_photo_png(&["1234"])).await;
    let job_id = app.enqueue(photo.id).await;
    let failed = app.photo_until(photo.id, ProcessingStatus::Failed).await;
    let error = failed.processing_error.expect("the reason");
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "{error}"
    );
    let dead = app.dead_letter(&job_id).await;
    assert_eq!(dead.attempts, Some(2));
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn healthz_readyz_and_the_stage_metrics_answer_on_the_health_port() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let addr = worker.addr;
    let (status, body) = service::testing::http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = service::testing::http_get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    for check in [r#""redis":"ok""#, r#""postgres":"ok""#, r#""storage":"ok""#] {
        assert!(body.contains(check), "{check} in {body}");
    }
    let photo = app.upload(&bib_photo_png(&["507"])).await;
    app.enqueue(photo.id).await;
    app.photo_until(photo.id, ProcessingStatus::Completed).await;
    let (status, metrics) = service::testing::http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for stage in ["decode", "thumbnail", "candidates", "ocr"] {
        let count = format!("photo_stage_seconds_count{{stage=\"{stage}\"}}");
        assert!(metrics.contains(&count), "{count} in {metrics}");
    }
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn failed_photos_retried_from_their_dead_letters_one_or_all_run_again_and_keep_their_earlier_errors()
 {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    // Two uploads cut short: failed at once, no attempt can fix them.
    let mut cut = bib_photo_png(&["1234"]);
    cut.truncate(cut.len() / 3);
    let one = app.upload(&cut).await;
    let other = app.upload(&cut).await;
    let one_job = app.enqueue(one.id).await;
    app.enqueue(other.id).await;
    for id in [one.id, other.id] {
        app.photo_until(id, ProcessingStatus::Failed).await;
    }
    app.stats_until("both are dead letters", |s| s.dead_lettered == 2)
        .await;

    // The uploads are mended, then an operator retries one dead letter, then all.
    for photo in [&one, &other] {
        std::fs::write(app.original_path(photo), bib_photo_png(&["1234"])).expect("the whole file");
    }
    app.retry_dead(&one_job).await;
    let done = app.photo_until(one.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(one.id).await, vec!["1234"]);
    assert_eq!((done.attempts, done.processing_error.as_deref()), (2, None));
    assert_eq!(done.error_history.len(), 1, "{done:?}");
    assert!(
        done.error_history[0].starts_with("not a decodable image: "),
        "{done:?}"
    );
    assert_eq!(
        app.photo(other.id).await.processing_status,
        ProcessingStatus::Failed,
        "only the retried one runs"
    );
    let retried = app.retry_all_dead().await;
    assert_eq!(retried, 1);
    let done = app.photo_until(other.id, ProcessingStatus::Completed).await;
    assert_eq!(app.bibs(other.id).await, vec!["1234"]);
    assert_eq!(done.error_history.len(), 1, "{done:?}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_stale_duplicate_job_of_a_failed_photo_leaves_it_failed() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let photo = app.upload(b"GIF89a this is not a photo").await;
    app.enqueue(photo.id).await;
    let failed = app.photo_until(photo.id, ProcessingStatus::Failed).await;
    // The same job again without its key, as a late duplicate: only a retry
    // of the dead letter runs a failed photo again.
    let again = app.enqueue_duplicate(photo.id).await;
    app.completed_until(&again).await;
    assert_eq!(
        app.photo(photo.id).await,
        failed,
        "the failed photo is not touched"
    );
    worker.stop().await;
    app.finish().await;
}
