//! Companies end to end: HTTP -> PostgreSQL + the `context` queue. A context
//! longer than `CONTEXT_MIN_LENGTH` characters is `pending` with one condensation
//! job waiting; one of that length or shorter is `skipped` with none.

use jobs::v1::CondenseCompanyContext;
use serde_json::{Value, json};
use store::companies::{self, ContextStatus};

use crate::helpers::{
    ADMIN_TOKEN, Logs, TestApp, USER_TOKEN, WRONG_TOKEN, assert_created, assert_error,
    assert_unauthorized,
};

/// A context of exactly `chars` characters (two bytes each in UTF-8).
fn context_of(chars: usize) -> String {
    "ñ".repeat(chars)
}

async fn context_jobs_anywhere(app: &TestApp) -> u64 {
    let queue = jobs::CONTEXT.open(&app.redis.broker).expect("queue");
    let s = app.redis.stats(&queue).await;
    s.waiting + s.active + s.delayed + s.failed
}

fn id_of(body: &Value) -> i64 {
    body["id"].as_i64().expect("id")
}

#[tokio::test]
async fn a_long_context_answers_201_pending_with_one_condensation_job_waiting() {
    let app = TestApp::spawn().await;
    // Longer than the default threshold of 1500 characters.
    let context = format!("SECRET-PLAN {}", context_of(2000));
    let logs = Logs::default();
    let capture = logs.capture();
    let res = app
        .post_company(
            Some(USER_TOKEN),
            json!({"name": "  Acme Logistics ", "context": context}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = res.json().await.expect("json");
    drop(capture);
    let id = id_of(&body);
    assert_eq!(location, format!("/api/companies/{id}"));
    assert_eq!(body["name"], "Acme Logistics", "the name is trimmed");
    assert_eq!(body["context"], context.as_str());
    assert_eq!(body["context_original"], context.as_str());
    assert_eq!(body["context_status"], "pending");
    assert_eq!(body["context_error"], Value::Null);
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());

    let jobs = app.waiting_jobs::<CondenseCompanyContext>().await;
    assert_eq!(jobs.len(), 1, "exactly one condensation job waits");
    let (envelope, payload) = &jobs[0];
    assert_eq!(envelope.kind, "context.condense");
    assert_eq!(payload.company_id, id);
    assert_eq!(envelope.unique_key, format!("context:company:{id}"));
    assert_eq!(context_jobs_anywhere(&app).await, 1);

    let got = app.get(USER_TOKEN, &location).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.expect("json"), body, "round trip");

    let stored = logs.lines_with("context condensation enqueued");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    for needle in [
        format!("company.id={id}"),
        format!("context.length_chars={}", context.chars().count()),
        "context.status=\"pending\"".to_owned(),
    ] {
        assert!(stored[0].contains(&needle), "{needle}: {}", stored[0]);
    }
    assert!(
        logs.lines_with("SECRET-PLAN").is_empty(),
        "the text is never logged"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_short_context_is_skipped_enqueues_nothing_and_round_trips() {
    let app = TestApp::spawn().await;
    let context = "Small bakery.\nTwo shops, open every day.";
    let res = app
        .post_company(
            Some(ADMIN_TOKEN),
            json!({"name": "Pan", "context": context}),
        )
        .await;
    assert_eq!(res.status(), 201, "an admin may do what a user may");
    let location = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["context_status"], "skipped");
    assert_eq!(body["context"], context);
    assert_eq!(body["context_original"], context);
    assert!(
        app.waiting_jobs::<CondenseCompanyContext>()
            .await
            .is_empty()
    );
    assert_eq!(context_jobs_anywhere(&app).await, 0);

    let got: Value = app
        .get(USER_TOKEN, &location)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(got, body);
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let row = companies::get(&mut conn, id_of(&body))
        .await
        .expect("get")
        .expect("the company is stored");
    drop(conn);
    assert_eq!(row.context_status, ContextStatus::Skipped);
    assert_eq!(row.name, "Pan");
    app.cleanup().await;
}

#[tokio::test]
async fn context_min_length_sets_the_boundary_and_only_a_longer_context_is_pending() {
    let app = TestApp::spawn_with(|c| c.context_min_length = 10).await;
    let at = app
        .post_company(
            Some(USER_TOKEN),
            json!({"name": "At", "context": context_of(10)}),
        )
        .await;
    assert_eq!(at.status(), 201);
    let at: Value = at.json().await.expect("json");
    assert_eq!(
        at["context_status"], "skipped",
        "exactly CONTEXT_MIN_LENGTH characters (20 bytes) is not longer"
    );
    let over = app
        .post_company(
            Some(USER_TOKEN),
            json!({"name": "Over", "context": context_of(11)}),
        )
        .await;
    assert_eq!(over.status(), 201);
    let over: Value = over.json().await.expect("json");
    assert_eq!(over["context_status"], "pending");
    let jobs = app.waiting_jobs::<CondenseCompanyContext>().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1.company_id, id_of(&over));
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_input_is_a_4xx_json_naming_the_field() {
    // The production body limit, so the longest context is a matter of rules.
    let app = TestApp::spawn_with(|c| {
        c.body_limit_bytes = api_gateway::config::DEFAULT_BODY_LIMIT_BYTES
            .try_into()
            .expect("nz");
    })
    .await;
    let cases = [
        (json!({"context": "c"}), 400, "name"),
        (json!({"name": "Acme"}), 400, "context"),
        (json!({"name": 5, "context": "c"}), 400, "name"),
        (json!({"name": "Acme", "context": ["c"]}), 400, "context"),
        (json!({"name": "Acme", "context": null}), 400, "context"),
        (
            json!({"name": "Acme", "context": "c", "summary": "s"}),
            400,
            "summary",
        ),
        (json!({"name": " \t ", "context": "c"}), 422, "name"),
        (json!({"name": "", "context": "c"}), 422, "name"),
        (
            json!({"name": "a".repeat(201), "context": "c"}),
            422,
            "name",
        ),
        (json!({"name": "Ac\u{1b}me", "context": "c"}), 422, "name"),
        (json!({"name": "Acme", "context": ""}), 422, "context"),
        (json!({"name": "Acme", "context": " \n\t "}), 422, "context"),
        (
            json!({"name": "Acme", "context": "a\u{0}b"}),
            422,
            "context",
        ),
        (
            json!({"name": "Acme", "context": context_of(100_001)}),
            422,
            "context",
        ),
    ];
    for (body, status, field) in cases {
        let res = app.post_company(Some(USER_TOKEN), body.clone()).await;
        let shown: String = body.to_string().chars().take(120).collect();
        assert_eq!(res.status(), status, "{shown}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["field"], field, "{shown} -> {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
    }
    assert_eq!(context_jobs_anywhere(&app).await, 0, "nothing enqueued");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM companies")
        .fetch_one(&app.db().pool)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing stored");

    // The limits themselves are accepted: 200 characters of name, 100,000 of
    // context, each escaped as a surrogate pair (12 bytes: the largest body a
    // valid company can take).
    let escaped = r"\ud83d\ude00";
    let res = app
        .post_raw(
            "/api/companies",
            "application/json",
            format!(
                r#"{{"name":"{}","context":"{}"}}"#,
                escaped.repeat(200),
                escaped.repeat(100_000)
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["context_status"], "pending");
    assert_eq!(
        body["context"].as_str().map(|c| c.chars().count()),
        Some(100_000)
    );

    let too_big = app
        .post_raw(
            "/api/companies",
            "application/json",
            format!(
                r#"{{"name":"Acme","context":"{}"}}"#,
                "x".repeat(api_gateway::config::DEFAULT_BODY_LIMIT_BYTES)
            ),
        )
        .await;
    assert_error(too_big, 413, "payload_too_large").await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_company_is_404_and_requests_without_a_valid_token_are_401() {
    let app = TestApp::spawn().await;
    let res = app.get(USER_TOKEN, "/api/companies/999999").await;
    let body = assert_error(res, 404, "not_found").await;
    assert!(body["message"].is_string(), "{body}");
    let not_a_number = app.get(USER_TOKEN, "/api/companies/abc").await;
    assert_error(not_a_number, 400, "invalid_parameter").await;

    let company = json!({"name": "Acme", "context": "c"});
    assert_unauthorized(app.post_company(None, company.clone()).await).await;
    let wrong = app.post_company(Some(WRONG_TOKEN), company).await;
    assert_eq!(wrong.status(), 401);
    let unauthenticated = app.get_anonymous("/api/companies/1").await;
    assert_eq!(unauthenticated.status(), 401);
    app.cleanup().await;
}

#[tokio::test]
async fn a_company_stored_while_redis_fails_answers_201_and_stays_pending() {
    let (app, _redis) = TestApp::spawn_with_redis_down(|c| c.context_min_length = 10).await;

    let logs = Logs::default();
    let capture = logs.capture();
    let res = app
        .post_company(
            Some(USER_TOKEN),
            json!({"name": "Acme", "context": context_of(50)}),
        )
        .await;
    let body = assert_created(res).await;
    drop(capture);
    assert_eq!(body["context_status"], "pending");
    let id = id_of(&body);
    let mut conn = app.db().pool.acquire().await.expect("conn");
    let row = companies::get(&mut conn, id)
        .await
        .expect("get")
        .expect("the row is kept");
    drop(conn);
    assert_eq!(row.context_status, ContextStatus::Pending);
    assert_eq!(row.context_original, context_of(50));

    let failures = logs.lines_with("enqueueing the context condensation failed");
    assert_eq!(failures.len(), 1, "logged once: {failures:#?}");
    assert!(
        failures[0].contains("WARN")
            && failures[0].contains(&format!("company.id={id}"))
            && failures[0].contains("context.length_chars=50"),
        "{}",
        failures[0]
    );
    assert!(
        logs.lines_with("ERROR").is_empty() && logs.lines_with("request failed").is_empty(),
        "a company whose job follows later is no error"
    );
    assert_eq!(
        app.get(USER_TOKEN, &format!("/api/companies/{id}"))
            .await
            .json::<Value>()
            .await
            .expect("json")["context_status"],
        "pending"
    );
    app.cleanup().await;
}
