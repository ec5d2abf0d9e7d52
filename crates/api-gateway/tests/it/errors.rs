//! Errors are logged once, by the middleware, and a slow request is cut short by
//! the request timeout with the usual JSON error body.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use queue_core::testing::{PATIENCE, eventually};

use crate::helpers::{Logs, TestApp, USER_TOKEN};

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {USER_TOKEN}"))
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn errors_are_logged_once_by_the_middleware_and_a_5xx_body_stays_generic() {
    let app = TestApp::spawn().await;
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-44444444", "first_name": "Ana", "last_name": "Rey"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    // Ready in the database, but no file in storage: a real inconsistency the
    // gateway cannot serve, so GET .../qr is a 500.
    let db = app.db();
    let mut conn = db.pool.acquire().await.expect("conn");
    assert!(
        store::persons::mark_qr_ready(&mut conn, id)
            .await
            .expect("mark ready")
    );
    drop(conn);

    let state = api_gateway::connect(app.config.clone())
        .await
        .expect("connect");
    let logs = Logs::default();
    let _capture = logs.capture();
    let service = api_gateway::app(state);

    let res = service
        .clone()
        .oneshot(get(&format!("/api/persons/{id}/qr")))
        .await
        .expect("response");
    assert_eq!(res.status(), 500);
    let request_id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        body,
        json!({"error": "internal", "message": "internal error"}),
        "the detail stays out of the body"
    );
    let errors = logs.lines_with("ERROR");
    assert_eq!(errors.len(), 1, "one error line per failure: {errors:#?}");
    assert!(
        errors[0].contains("qr/V-44444444.png is missing") && errors[0].contains(&request_id),
        "the line carries the detail and the request id: {}",
        errors[0]
    );

    // A client error is logged too, at debug level only, with what the client was told.
    let res = service
        .oneshot(get("/api/persons/999999"))
        .await
        .expect("response");
    assert_eq!(res.status(), 404);
    let refused = logs.lines_with("request refused");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0].contains("DEBUG") && refused[0].contains("no person with id 999999"),
        "{}",
        refused[0]
    );
    assert_eq!(logs.lines_with("ERROR").len(), 1, "a 404 is no error");
    drop(_capture);
    app.cleanup().await;
}

#[tokio::test]
async fn a_registration_outlasting_the_request_timeout_is_answered_503_and_still_completes() {
    let app = TestApp::spawn_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let db = app.db();
    // The test's own database is made slow for real: while this transaction holds
    // a SHARE lock on `persons`, every INSERT waits (reads still pass).
    let mut lock = db.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE persons IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock persons");

    // Without the timeout the answer would wait for the lock, which is released
    // only after it: the deadline turns that into a failure instead of a hang.
    let res = tokio::time::timeout(
        PATIENCE,
        app.post_person(
            Some(USER_TOKEN),
            json!({"document": "V-55555555", "first_name": "Leo", "last_name": "Paz"}),
        ),
    )
    .await
    .expect("the gateway answers while the lock is held");
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("x-request-id").is_some());
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("300ms")),
        "the message names the limit: {body}"
    );
    let pending = app.get(USER_TOKEN, "/api/persons/1").await;
    assert_eq!(
        pending.status(),
        404,
        "nothing stored while the lock is held"
    );

    lock.rollback().await.expect("release the lock");
    // Only the wait was cut short: the registration finishes, row and job together.
    eventually(
        "the registration to complete after the timeout",
        async || {
            let persons: i64 = sqlx::query_scalar("SELECT count(*) FROM persons")
                .fetch_one(&db.pool)
                .await
                .expect("count");
            (persons == 1 && app.qr_stats().await.waiting == 1).then_some(())
        },
    )
    .await;
    app.cleanup().await;
}
