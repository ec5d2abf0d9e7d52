//! A row and its job never disagree for long (docs/design.md): a registration
//! succeeds while Redis fails, and the qr-worker's reconciler renders every
//! person left pending without a job.

use queue_core::testing::eventually;
use serde_json::{Value, json};
use store::persons::{self, QrStatus};

use crate::helpers::{Logs, TestApp, USER_TOKEN, assert_created};

async fn person(app: &TestApp, id: i64) -> persons::Person {
    let mut conn = app.db().pool.acquire().await.expect("conn");
    persons::get(&mut conn, id)
        .await
        .expect("get")
        .expect("the person exists")
}

#[tokio::test]
async fn a_registration_while_redis_fails_answers_201_and_the_reconciler_renders_it_later() {
    let (mut app, _redis) = TestApp::spawn_with_redis_down(|_| {}).await;

    let logs = Logs::default();
    let capture = logs.capture();
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "R-1001", "first_name": "Ana", "last_name": "Rey"}),
        )
        .await;
    let body = assert_created(res).await;
    assert_eq!(body["qr_status"], "pending");
    let id = body["id"].as_i64().expect("id");
    assert_eq!(
        person(&app, id).await.qr_status,
        QrStatus::Pending,
        "the row is kept"
    );
    drop(capture);
    let failures = logs.lines_with("enqueueing the QR job failed");
    assert_eq!(failures.len(), 1, "logged once: {failures:#?}");
    assert!(
        failures[0].contains("WARN") && failures[0].contains(&format!("person.id={id}")),
        "{}",
        failures[0]
    );
    assert!(
        logs.lines_with("ERROR").is_empty() && logs.lines_with("request failed").is_empty(),
        "a registration whose job follows later is no error"
    );

    app.start_qr_worker().await;
    eventually("the reconciled QR is ready", async || {
        (person(&app, id).await.qr_status == QrStatus::Ready).then_some(())
    })
    .await;
    assert!(app.file("qr/R-1001.png").exists());
    app.cleanup().await;
}

#[tokio::test]
async fn every_pending_row_becomes_ready_after_redis_lost_its_data() {
    let mut app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let res = app
            .post_person(
                Some(USER_TOKEN),
                json!({"document": format!("L-{i:04}"), "first_name": "Ana", "last_name": "Rey"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        ids.push(body["id"].as_i64().expect("id"));
    }
    // Redis restarted without its data: every key of the test's prefix is gone.
    let keys: Vec<String> = app
        .redis
        .cmd(redis::cmd("KEYS").arg(format!("{}:*", app.redis.prefix)))
        .await;
    assert!(!keys.is_empty(), "the jobs were enqueued");
    let _: () = app.redis.cmd(redis::cmd("DEL").arg(&keys)).await;

    app.start_qr_worker().await;
    for id in ids {
        eventually("every pending row becomes ready", async || {
            (person(&app, id).await.qr_status == QrStatus::Ready).then_some(())
        })
        .await;
    }
    app.cleanup().await;
}
