//! The admin queue API, and a QR job that fails until storage is fixed.

use qr_worker::testing::decode_qr_png;
use queue_core::testing::eventually;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN, assert_error};

#[tokio::test]
async fn an_unwritable_storage_fails_the_qr_after_retries_and_the_admin_api_retries_it_once_fixed()
{
    let mut app = TestApp::spawn().await;
    // A file where the `qr` directory should be: no write can succeed (even as root).
    std::fs::write(app.storage.path().join("qr"), b"in the way").expect("block the dir");
    app.start_qr_worker().await;
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-22222222", "first_name": "Luis", "last_name": "Rojas"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"].clone();
    let person_url = format!("/api/persons/{id}");

    let failed = app.person_until(&person_url, "failed").await;
    assert!(
        failed["qr_error"]
            .as_str()
            .is_some_and(|e| e.contains("qr")),
        "the error names the path: {failed}"
    );
    let qr = app.get(USER_TOKEN, &format!("{person_url}/qr")).await;
    assert_eq!(qr.status(), 404);
    let body: Value = qr.json().await.expect("json");
    assert_eq!(body["error"], "qr_failed", "the one error schema: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("qr")),
        "the message carries the rendering error: {body}"
    );
    let stats = app.qr_stats().await;
    assert_eq!(
        (stats.failed, stats.retried),
        (1, 2),
        "three attempts, then the DLQ"
    );

    let page = app.get_json(ADMIN_TOKEN, "/api/queues/qr/failed").await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "qr.generate");
    assert_eq!(items[0]["attempts"], 3);
    let dead_id = items[0]["id"].as_str().expect("id").to_owned();

    std::fs::remove_file(app.storage.path().join("qr")).expect("unblock");
    let retried = app
        .admin_post(&format!("/api/queues/qr/failed/{dead_id}/retry"))
        .await;
    assert_eq!(retried.status(), 200);
    let file = app.file("qr/V-22222222.png");
    let png = eventually("the QR file after the retry", async || {
        std::fs::read(&file).ok()
    })
    .await;
    assert_eq!(decode_qr_png(&png), "PERSON:V-22222222");
    app.person_until(&person_url, "ready").await;
    assert_eq!(app.qr_stats().await.failed, 0);
    let again = app
        .admin_post(&format!("/api/queues/qr/failed/{dead_id}/retry"))
        .await;
    assert_eq!(again.status(), 404, "a dead letter is retried once");
    app.cleanup().await;
}

#[tokio::test]
async fn admins_list_pause_resume_and_flush_queues() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_person(
            Some(USER_TOKEN),
            json!({"document": "V-33333333", "first_name": "Eva", "last_name": "Mora"})
        )
        .await
        .status(),
        201
    );
    let qr = app.queue_listed("qr").await;
    assert_eq!(qr["waiting"], 1);
    assert_eq!(qr["paused"], false);

    assert_eq!(app.admin_post("/api/queues/qr/pause").await.status(), 200);
    assert!(app.qr_stats().await.paused);
    assert_eq!(app.admin_post("/api/queues/qr/resume").await.status(), 200);
    assert!(!app.qr_stats().await.paused);

    let flushed = app
        .client
        .delete(app.url("/api/queues/qr/failed"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(flushed.status(), 200);
    assert_eq!(flushed.json::<Value>().await.expect("json")["count"], 0);

    let unknown = app.admin_post("/api/queues/nope/pause").await;
    assert_error(unknown, 404, "not_found").await;
    let bad_limit = app.get(ADMIN_TOKEN, "/api/queues/qr/failed?limit=0").await;
    assert_eq!(bad_limit.status(), 422);
    assert_eq!(
        bad_limit.json::<Value>().await.expect("json")["field"],
        "limit"
    );
    let not_a_number = app
        .get(ADMIN_TOKEN, "/api/queues/qr/failed?limit=ten")
        .await;
    let body = assert_error(not_a_number, 400, "invalid_parameter").await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit")),
        "the message names the parameter: {body}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_queue_list_shows_the_retention_its_workers_wrote() {
    let mut app = TestApp::spawn().await;
    // Listed by the producer before any worker: no retention said yet.
    app.post_person(
        Some(USER_TOKEN),
        json!({"document": "V-44444444", "first_name": "Ana", "last_name": "Paz"}),
    )
    .await;
    assert_eq!(app.queue_listed("qr").await["retention"], Value::Null);
    app.start_qr_worker().await;
    let retention = eventually("the qr-worker wrote its retention", async || {
        let r = app.queue_listed("qr").await["retention"].clone();
        (!r.is_null()).then_some(r)
    })
    .await;
    // The worker's defaults: what the code kept before it was configurable.
    assert_eq!(
        retention,
        json!({
            "completed": 1000,
            "completed_max_age_ms": null,
            "dead_letters": 10000,
            "dead_letters_max_age_ms": null,
        })
    );
    app.cleanup().await;
}
