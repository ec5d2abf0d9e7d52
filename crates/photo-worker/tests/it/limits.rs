//! What bounds a photo's cost: the process-wide memory budget (decoded pixels
//! and the pipeline's copies, reserved from the header before decoding), and
//! blocking runs that never outlive their slot when a job times out.

use std::time::Duration;

use bib_detect::Detector;
use photo_worker::imaging;
use photo_worker::testing::{bib_photo_png, peak_blocking_runs};
use store::photos::ProcessingStatus;

use crate::support::{PhotoWorld, TestApp};

/// How long a test waits for photos that take seconds each, one at a time.
const SLOW: Duration = Duration::from_secs(60);

/// Bib numbers enough to make a photo whose OCR takes seconds.
fn many_bibs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}", 1000 + i * 37)).collect()
}

fn slow_photo(bibs: usize) -> Vec<u8> {
    let numbers = many_bibs(bibs);
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    bib_photo_png(&numbers)
}

#[tokio::test]
async fn a_photo_that_needs_more_memory_than_the_whole_budget_fails_at_once_with_a_readable_error()
{
    let app = TestApp::new().await;
    let worker = app.spawn_worker_with(|c| c.memory_budget = 1 << 20).await;
    let photo = app.upload(&bib_photo_png(&["1234"])).await;
    app.enqueue(photo.id).await;
    let failed = app.photo_until(photo.id, ProcessingStatus::Failed).await;
    let error = failed.processing_error.expect("a reason");
    assert!(
        error.contains("800x600") && error.contains("PHOTO_MEMORY_BUDGET (1 MiB)"),
        "{error}"
    );
    assert_eq!(failed.attempts, 1, "no attempt can fix it");
    assert_eq!(peak_blocking_runs(), 0, "nothing was decoded");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn photos_that_together_exceed_the_memory_budget_are_processed_one_at_a_time() {
    let app = TestApp::new().await;
    let bytes = slow_photo(6);
    let header = imaging::probe(&bytes, &Default::default()).expect("a photo");
    let one = header.working_bytes(bytes.len() as u64, &Detector::default());
    // Room for one photo and a half: never two at once, whatever the concurrency.
    let worker = app
        .spawn_worker_with(|c| {
            c.worker.concurrency = 3.try_into().expect("nonzero");
            c.memory_budget = one * 3 / 2;
        })
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let photo = app.upload(&bytes).await;
        app.enqueue(photo.id).await;
        ids.push(photo.id);
    }
    for id in ids {
        let done = app
            .photo_until_within(id, ProcessingStatus::Completed, SLOW)
            .await;
        assert_eq!(app.bibs(done.id).await.len(), 6, "{done:?}");
    }
    assert_eq!(peak_blocking_runs(), 1, "one photo in memory at a time");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_timed_out_job_keeps_its_slot_until_its_detection_ends_so_no_more_than_the_concurrency_run()
 {
    let app = TestApp::new().await;
    let concurrency = 2;
    let worker = app
        .spawn_worker_with(|c| {
            c.worker.concurrency = concurrency.try_into().expect("nonzero");
            c.worker.job_timeout = Duration::from_secs(1);
            c.worker.max_attempts = 2;
            c.max_candidates = 64;
        })
        .await;
    // Each photo's OCR takes seconds (48 bibs, all read): every attempt times out.
    let bytes = slow_photo(48);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let photo = app.upload(&bytes).await;
        app.enqueue(photo.id).await;
        ids.push(photo.id);
    }
    for id in ids {
        let failed = app
            .photo_until_within(id, ProcessingStatus::Failed, SLOW)
            .await;
        let error = failed.processing_error.expect("a reason");
        assert!(error.contains("timed out"), "{error}");
    }
    let peak = peak_blocking_runs();
    assert!(
        (1..=concurrency).contains(&peak),
        "{peak} detections were alive at once, with PHOTOS_CONCURRENCY {concurrency}"
    );
    worker.stop().await;
    app.finish().await;
}
