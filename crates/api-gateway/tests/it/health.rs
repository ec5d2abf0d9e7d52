//! Health, readiness and metrics answer on `HEALTH_ADDR`, as every worker's do,
//! not on the public API port.

use reqwest::StatusCode;

use crate::helpers::{TestApp, USER_TOKEN};

#[tokio::test]
async fn the_api_port_serves_neither_metrics_nor_readiness_details() {
    let app = TestApp::spawn().await;
    for path in ["/metrics", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{path} on the API port"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_health_port_serves_liveness_readiness_with_the_enqueue_breaker_and_metrics_without_a_token()
 {
    let app = TestApp::spawn().await;
    let live = app.health_get("/healthz").await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app.health_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(
        body["checks"],
        serde_json::json!({"redis": "ok", "postgres": "ok", "enqueue": "ok"}),
        "{body}"
    );
    let registered = app
        .post_person(
            Some(USER_TOKEN),
            serde_json::json!({"document": "V-1000", "first_name": "Ana", "last_name": "Rey"}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let metrics = app.health_get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.expect("text");
    // The recorder is the process's, shared with the tests running beside
    // this one: at least this registration's enqueue.
    let ok_enqueues: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"api_enqueue_total{queue="qr",outcome="ok"} "#))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ok enqueue on qr counted: {metrics}"));
    assert!(ok_enqueues >= 1, "{metrics}");
    // The API port keeps a bare liveness answer for load balancers that probe it.
    let live = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(live.status(), StatusCode::OK);
    app.cleanup().await;
}
