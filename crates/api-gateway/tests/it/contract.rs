//! What `/openapi.json` promises: every status a route answers is declared, with
//! the one error schema, and a parameter breaking a declared rule is a 4xx naming
//! it, never a 5xx. `scripts/schemathesis.sh` fuzzes the same promises.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, USER_TOKEN};

/// Registers a person, so the `qr` queue exists.
async fn with_qr_queue(app: &TestApp) {
    let res = app
        .post_person(
            Some(USER_TOKEN),
            json!({"document": "V-31313131", "first_name": "Eva", "last_name": "Mora"}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn an_invalid_queue_name_is_a_422_naming_the_queue_field() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::POST, "/api/queues/no%20spaces/pause"),
        (Method::GET, "/api/queues/%7Bbraces%7D/failed"),
        (Method::DELETE, "/api/queues/caf%C3%A9/failed/1-0"),
    ] {
        let (status, body) = send(&app, method.clone(), path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 422, "{method} {path}: {body}");
        assert_eq!(body["error"], "validation_failed", "{body}");
        assert_eq!(body["field"], "queue", "{body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_before_that_is_no_dead_letter_id_is_a_422_naming_it_and_never_reaches_redis() {
    let app = TestApp::spawn().await;
    with_qr_queue(&app).await;
    for before in ["abc", "5", "1-2-3", "99999999999999999999-0"] {
        let path = format!("/api/queues/qr/failed?before={before}");
        let (status, body) = send(&app, Method::GET, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 422, "{before}: {body}");
        assert_eq!(body["field"], "before", "{body}");
    }
    // Ids Redis would refuse in an exclusive range, answered without asking it.
    for before in ["0-0", "9999999999999999999-9999999999999999999"] {
        let path = format!("/api/queues/qr/failed?before={before}");
        let (status, body) = send(&app, Method::GET, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{before}: {body}");
        assert_eq!(body["items"], json!([]), "{body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_entry_id_beyond_64_bits_is_no_dead_letter_rather_than_a_server_error() {
    let app = TestApp::spawn().await;
    with_qr_queue(&app).await;
    let path = "/api/queues/qr/failed/99999999999999999999999-0";
    for method in [Method::DELETE, Method::POST] {
        let path = if method == Method::POST {
            format!("{path}/retry")
        } else {
            path.to_owned()
        };
        let (status, body) = send(&app, method, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "not_found", "{body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_qr_of_an_unknown_person_is_a_404_in_the_error_schema() {
    let app = TestApp::spawn().await;
    let (status, body) = send(
        &app,
        Method::GET,
        "/api/persons/424242/qr",
        Some(USER_TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(body["message"].is_string(), "{body}");
    app.cleanup().await;
}

/// Every operation of the served document, its path filled with the examples
/// (with `%FF`, not UTF-8, for the last path parameter when `garbled`).
async fn operations(app: &TestApp, garbled: bool) -> (Value, Vec<(Method, String, Value)>) {
    let doc = app.openapi().await;
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let mut path = template.clone();
            let path_params: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .collect();
            if garbled && path_params.is_empty() {
                continue;
            }
            for (i, p) in path_params.iter().enumerate() {
                let example = match &p["example"] {
                    _ if garbled && i + 1 == path_params.len() => "%FF".to_owned(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let name = p["name"].as_str().expect("name");
                path = path.replace(&format!("{{{name}}}"), &example);
            }
            let method = method.to_uppercase().parse().expect("method");
            out.push((method, path, op["responses"].clone()));
        }
    }
    (doc, out)
}

#[tokio::test]
async fn the_refusals_of_every_operation_are_declared_in_the_served_document() {
    // One wrong token per operation, all from here: more than the slow-down
    // lets through by default (its own 429 is declared too, and tested in keys).
    // The bank's notification is on, so it refuses a missing signature (401)
    // rather than answering that it is off (503).
    let app = TestApp::spawn_with(|c| {
        c.auth.max_failures = 1000.try_into().expect("nonzero");
        c.payments.notify.secret = Some(api_gateway::config::Secret::new(
            "bank-notify-secret-0123456789",
        ));
    })
    .await;
    with_qr_queue(&app).await;
    let (doc, operations) = operations(&app, false).await;
    assert_eq!(operations.len(), 44);
    for (method, path, responses) in &operations {
        let workload_action = (path.starts_with("/api/payments/")
            && (path.ends_with("/resume") || path.ends_with("/resolve")))
            || path.ends_with("/context/retry");
        let refused_to_users = ["/api/queues", "/api/users", "/api/sync-runs", "/api/admin/"]
            .iter()
            .any(|p| path.starts_with(p))
            || workload_action;
        let mut refusals = vec![(None, 401), (Some("not-a-token-0123456789"), 401)];
        if refused_to_users {
            refusals.push((Some(USER_TOKEN), 403));
        }
        for (token, expected) in refusals {
            let (status, body) = send(&app, method.clone(), path, token).await;
            assert_eq!(status, expected, "{method} {path}: {body}");
            let declared = &responses[status.to_string()];
            assert!(
                declared.is_object(),
                "{method} {path} answers {status} but does not declare it"
            );
            assert_eq!(
                error_schema(&doc, declared),
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{body}"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_declared_400_naming_it() {
    let app = TestApp::spawn().await;
    let (doc, operations) = operations(&app, true).await;
    assert_eq!(operations.len(), 29, "the operations with path parameters");
    for (method, path, responses) in &operations {
        let (status, body) = send(&app, method.clone(), path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"], "invalid_parameter", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{body}"
        );
        assert_eq!(
            error_schema(&doc, &responses["400"]),
            "#/components/schemas/ErrorBody",
            "{method} {path} declares its 400"
        );
    }
    app.cleanup().await;
}

/// The schema `$ref` of a declared response, following a shared response's `$ref`.
fn error_schema(doc: &Value, response: &Value) -> Value {
    let response = match response["$ref"].as_str() {
        Some(r) => &doc["components"]["responses"][r.rsplit('/').next().expect("name")],
        None => response,
    };
    response["content"]["application/json"]["schema"]["$ref"].clone()
}
