//! Rendering, failures, idempotence and the health port of a running worker.

use std::os::unix::fs::MetadataExt;

use jobs::v1::GenerateQr;
use service::testing::http_get;
use store::persons::QrStatus;

use crate::support::{QrWorld, TestApp, decode_png, list_dir};

#[tokio::test]
async fn a_registered_person_gets_a_png_at_the_predefined_path_that_decodes_to_the_content() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let person = app
        .add_person("V-12345678", "PERSON:V-12345678", "qr/V-12345678.png")
        .await;
    assert_eq!(person.qr_status, QrStatus::Pending);
    assert!(!app.storage_path("qr/V-12345678.png").exists());

    let job_id = app.enqueue(&person).await;

    let ready = app.person_until(person.id, QrStatus::Ready).await;
    assert_eq!(ready.qr_error, None);
    assert_eq!(ready.qr_path, "qr/V-12345678.png");
    assert_eq!(
        decode_png(&app.storage_path("qr/V-12345678.png")),
        "PERSON:V-12345678"
    );
    assert_eq!(
        list_dir(&app.storage_path("qr")),
        vec!["V-12345678.png"],
        "no temporary file is left"
    );
    app.completed_until(&job_id).await;
    assert_eq!(app.renderings().await, 1, "rendered once");

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_unwritable_storage_directory_fails_the_person_after_retries_and_the_worker_keeps_going()
{
    let app = TestApp::new().await;
    // A file where the `qr` directory should be: creating it fails, even as root.
    std::fs::write(app.storage_path("qr"), b"not a directory").expect("write the blocking file");
    let worker = app.spawn_worker().await;
    let doomed = app.add_person("V-1", "PERSON:V-1", "qr/V-1.png").await;

    let job_id = app.enqueue(&doomed).await;

    let failed = app.person_until(doomed.id, QrStatus::Failed).await;
    let error = failed.qr_error.expect("the error is recorded");
    assert!(
        error.contains("writing qr/V-1.png") && error.contains("create directory"),
        "{error}"
    );
    assert!(
        !error.contains("PERSON:"),
        "the content is never part of the error: {error}"
    );
    let stats = app
        .stats_until("the job is dead-lettered", |s| {
            s.failed == 1 && s.active == 0 && s.delayed == 0
        })
        .await;
    assert_eq!((stats.retried, stats.dead_lettered), (2, 1), "{stats:#?}");
    assert_eq!(app.renderings().await, 0);
    let dead = app.dead_letter(&job_id).await;
    assert_eq!(dead.attempts, Some(3));
    assert!(dead.error.contains("create directory"), "{}", dead.error);

    // Still consuming: a job whose directory can be written completes.
    assert!(worker.is_running());
    let fine = app.add_person("V-2", "PERSON:V-2", "ok/V-2.png").await;
    app.enqueue(&fine).await;
    app.person_until(fine.id, QrStatus::Ready).await;
    assert_eq!(decode_png(&app.storage_path("ok/V-2.png")), "PERSON:V-2");
    assert_eq!(app.person(doomed.id).await.qr_status, QrStatus::Failed);

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn running_the_same_job_twice_leaves_one_file_with_the_same_content_and_the_row_ready() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let person = app
        .add_person("E-87654321", "PERSON:E-87654321", "qr/E-87654321.png")
        .await;
    let file = app.storage_path("qr/E-87654321.png");

    let first_job = app.enqueue(&person).await;
    app.completed_until(&first_job).await;
    let first = std::fs::read(&file).expect("the first file");
    let first_inode = std::fs::metadata(&file).expect("stat").ino();

    // The same payload again, as a redelivery after a crash before the ack would run it.
    let second_job = app.enqueue(&person).await;
    assert_ne!(
        second_job, first_job,
        "the key was released when the first settled"
    );
    app.completed_until(&second_job).await;
    assert_eq!(app.renderings().await, 2);

    assert_ne!(
        std::fs::metadata(&file).expect("stat").ino(),
        first_inode,
        "the file was replaced by a rename, not rewritten in place"
    );
    assert_eq!(
        std::fs::read(&file).expect("the second file"),
        first,
        "the same bytes"
    );
    assert_eq!(
        list_dir(&app.storage_path("qr")),
        vec!["E-87654321.png"],
        "one file, no temporary file"
    );
    assert_eq!(decode_png(&file), "PERSON:E-87654321");
    let row = app.person(person.id).await;
    assert_eq!((row.qr_status, row.qr_error), (QrStatus::Ready, None));

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_svg_path_gets_an_svg_file() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let person = app.add_person("V-3", "PERSON:V-3", "qr/V-3.svg").await;
    app.enqueue(&person).await;
    app.person_until(person.id, QrStatus::Ready).await;
    let svg = std::fs::read_to_string(app.storage_path("qr/V-3.svg")).expect("the SVG");
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(r#"width="512" height="512""#), "{svg}");

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_job_for_another_path_than_its_row_is_dead_lettered_and_the_row_gets_its_own_file() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let person = app.add_person("V-4", "PERSON:V-4", "qr/V-4.png").await;
    let outdated = app
        .enqueue_raw(GenerateQr {
            person_id: person.id,
            content: "PERSON:V-4".into(),
            path: "qr/old-V-4.png".into(),
        })
        .await;

    let stats = app
        .stats_until("the outdated job is dead-lettered", |s| s.failed == 1)
        .await;
    assert_eq!(stats.retried, 0, "permanent errors are not retried");
    let dead = app.dead_letter(&outdated).await;
    assert!(dead.error.contains("outdated"), "{}", dead.error);
    // The outdated job leaves the row alone; the row, still pending, gets its
    // own job from the reconciler.
    let row = app.person_until(person.id, QrStatus::Ready).await;
    assert_eq!(row.qr_error, None);
    assert_eq!(list_dir(&app.storage_path("qr")), vec!["V-4.png"]);

    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn healthz_readyz_and_metrics_answer_on_the_health_port() {
    let app = TestApp::new().await;
    let worker = app.spawn_worker().await;
    let addr = worker.addr;
    assert_ne!(addr.port(), 0);

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    for check in [r#""redis":"ok""#, r#""postgres":"ok""#, r#""storage":"ok""#] {
        assert!(body.contains(check), "{check} in {body}");
    }
    let (status, _) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);

    worker.stop().await;
    // The health server stops with the worker.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_job_whose_last_attempt_times_out_leaves_its_person_failed_not_pending() {
    let app = TestApp::new().await;
    let mut config = app.config();
    // Every run times out: the runner, not the handler, ends the last attempt.
    // The reconciler's own runs share the queue's timeout and are dead-lettered
    // too, so the test looks for this job's dead letter, not at a count.
    config.worker.job_timeout = std::time::Duration::from_micros(1);
    // QR_MAX_ATTEMPTS decides for the jobs the gateway enqueues.
    config.worker.max_attempts = 2;
    let worker = qr_worker::testing::spawn(config).await;
    let person = app.add_person("V-2", "PERSON:V-2", "qr/V-2.png").await;
    let job_id = app.enqueue(&person).await;

    let letter = app.dead_letter_until(&job_id).await;
    assert!(letter.error.contains("timed out"), "{}", letter.error);
    assert_eq!(letter.attempts, Some(2));
    let failed = app.person_until(person.id, QrStatus::Failed).await;
    let error = failed.qr_error.expect("the reason is recorded");
    assert!(error.contains("timed out"), "{error}");
    worker.stop().await;
    app.finish().await;
}
