//! Health, readiness and metrics answer on `HEALTH_ADDR`, as every worker's do,
//! not on the public API port.

use reqwest::StatusCode;

use crate::helpers::TestApp;

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
    let live = app
        .client
        .get(app.health_url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app
        .client
        .get(app.health_url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(
        body["checks"],
        serde_json::json!({"redis": "ok", "postgres": "ok", "enqueue": "ok"}),
        "{body}"
    );
    let metrics = app
        .client
        .get(app.health_url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(metrics.status(), StatusCode::OK);
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
