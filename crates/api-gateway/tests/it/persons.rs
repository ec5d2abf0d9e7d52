//! Registration end to end: HTTP -> PostgreSQL + Redis -> qr-worker -> file.

use qr_worker::testing::decode_qr_png;
use queue_core::testing::eventually;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, USER_TOKEN, WRONG_TOKEN, assert_error, assert_unauthorized,
};

fn ana(document: &str) -> Value {
    json!({"document": document, "first_name": "Ana", "last_name": "Pérez", "email": "ana@example.com"})
}

#[tokio::test]
async fn a_registration_answers_201_at_once_and_the_qr_appears_at_its_path_encoding_its_content() {
    let mut app = TestApp::spawn().await;
    let res = app.post_person(Some(USER_TOKEN), ana("V-12345678")).await;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers().get("x-request-id").is_some(),
        "request id echoed"
    );
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let person: Value = res.json().await.expect("json");
    assert_eq!(person["document"], "V-12345678");
    assert_eq!(person["first_name"], "Ana");
    assert_eq!(person["qr_status"], "pending");
    assert_eq!(person["qr_content"], "PERSON:V-12345678");
    assert_eq!(person["qr_path"], "qr/V-12345678.png");
    assert!(person["created_at"].is_string() && person["updated_at"].is_string());
    assert_eq!(location, format!("/api/persons/{}", person["id"]));
    // The worker is not running yet: the job waits, nothing is rendered.
    assert_eq!(app.qr_stats().await.waiting, 1);
    let pending = app.get(USER_TOKEN, &format!("{location}/qr")).await;
    assert_eq!(pending.status(), 202);
    assert_eq!(
        pending.json::<Value>().await.expect("json")["qr_status"],
        "pending"
    );

    app.start_qr_worker().await;
    let file = app.file("qr/V-12345678.png");
    let png = eventually("the QR file", async || std::fs::read(&file).ok()).await;
    assert_eq!(decode_qr_png(&png), "PERSON:V-12345678");

    let ready = eventually("status ready", async || {
        let p: Value = app
            .get(USER_TOKEN, &location)
            .await
            .json()
            .await
            .expect("json");
        (p["qr_status"] == "ready").then_some(p)
    })
    .await;
    assert_eq!(ready["qr_error"], Value::Null);
    let served = app.get(USER_TOKEN, &format!("{location}/qr")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    let body = served.bytes().await.expect("body");
    assert_eq!(decode_qr_png(&body), "PERSON:V-12345678");
    app.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_document_is_409_and_enqueues_nothing() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_person(Some(USER_TOKEN), ana("E-87654321"))
            .await
            .status(),
        201
    );
    let res = app.post_person(Some(ADMIN_TOKEN), ana("E-87654321")).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["field"], "document");
    assert_eq!(
        app.qr_stats().await.waiting,
        1,
        "only the first registration enqueued a job"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_input_is_a_4xx_json_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"first_name": "Ana", "last_name": "P"}),
            400,
            "document",
        ),
        (
            json!({"document": 12345678, "first_name": "Ana", "last_name": "P"}),
            400,
            "document",
        ),
        (
            json!({"document": "V-1234", "first_name": "Ana", "last_name": "P", "age": 3}),
            400,
            "age",
        ),
        (
            json!({"document": "V1", "first_name": "Ana", "last_name": "P"}),
            422,
            "document",
        ),
        (
            json!({"document": "V-12/34", "first_name": "Ana", "last_name": "P"}),
            422,
            "document",
        ),
        (
            json!({"document": "V-1234", "first_name": "  ", "last_name": "P"}),
            422,
            "first_name",
        ),
        (
            json!({"document": "V-1234", "first_name": "Ana", "last_name": "P", "email": "nope"}),
            422,
            "email",
        ),
    ];
    for (body, status, field) in cases {
        let res = app.post_person(Some(USER_TOKEN), body.clone()).await;
        assert_eq!(res.status(), status, "{body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["field"], field, "{body} -> {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
    }
    let not_json = app
        .post_raw("/api/persons", "application/json", "{not json")
        .await;
    assert_error(not_json, 400, "invalid_json").await;
    let too_big = app
        .post_raw(
            "/api/persons",
            "application/json",
            format!(r#"{{"document":"{}"}}"#, "x".repeat(64 * 1024)),
        )
        .await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        app.qr_stats().await.waiting,
        0,
        "no bad request enqueued a job"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_the_wrong_role_is_403() {
    let app = TestApp::spawn().await;
    assert_unauthorized(app.post_person(None, ana("V-11111111")).await).await;
    let wrong = app.post_person(Some(WRONG_TOKEN), ana("V-11111111")).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(app.get(USER_TOKEN, "/api/queues").await.status(), 403);
    assert_eq!(app.get(ADMIN_TOKEN, "/api/queues").await.status(), 200);
    // An admin may do what a user may.
    assert_eq!(
        app.post_person(Some(ADMIN_TOKEN), ana("V-11111111"))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.get(USER_TOKEN, "/api/persons/999999").await.status(),
        404
    );
    let not_a_number = app.get(USER_TOKEN, "/api/persons/abc").await;
    assert_error(not_a_number, 400, "invalid_parameter").await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoints() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/persons",
        "/api/persons/{id}/qr",
        "/api/queues/{queue}/failed/{id}/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["PersonResponse"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every operation documents the 503 the request timeout answers.
    assert!(doc["components"]["responses"]["Timeout"].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"]["503"].is_object(),
                "{method} {path} documents no 503"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn clients_that_hang_up_mid_request_never_leave_a_person_without_a_job() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    // Each client sends a whole registration and disconnects without reading the
    // answer: the server may be anywhere between the INSERT and the XADD.
    for i in 0..40 {
        let body = format!(r#"{{"document":"H-{i:04}","first_name":"A","last_name":"B"}}"#);
        let request = format!(
            "POST /api/persons HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {USER_TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        drop(stream);
    }
    let db = app.db();
    // Every stored person has exactly one job, once the in-flight requests settle.
    eventually("each stored person to have its job", async || {
        let persons: i64 = sqlx_count(&db.pool).await;
        let stats = app.qr_stats().await;
        (persons > 0 && stats.waiting == persons as u64).then_some(())
    })
    .await;
    app.cleanup().await;
}

async fn sqlx_count(pool: &store::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM persons")
        .fetch_one(pool)
        .await
        .expect("count persons")
}
