use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use upstream_sim::{SimConfig, SimState, router};

use crate::{http, json, start};

#[tokio::test]
async fn stopping_the_simulator_ends_a_hung_request() {
    let sim = start().await;
    sim.bank().set_hang(true);
    let url = format!("{}/bank/qr/any/status", sim.url());
    let hung = tokio::spawn(async move { http().get(url).send().await });
    // Wait until the request has arrived and hangs.
    let deadline = Instant::now() + Duration::from_secs(3);
    while sim.bank().stats().requests == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    sim.stop().await;
    let answer = hung.await.expect("joined");
    assert!(started.elapsed() < Duration::from_secs(3));
    if let Ok(response) = answer {
        assert_eq!(response.status(), 503);
    }
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let sim = start().await;
    let (code, body) = json(
        http()
            .get(format!("{}/healthz", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
    let (code, body) = json(
        http()
            .get(format!("{}/nowhere", sim.url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    sim.stop().await;
}

#[tokio::test]
async fn the_router_serves_without_a_port() {
    let state = SimState::new(SimConfig::default(), CancellationToken::new());
    state.llm().fail_next(1);
    let response = router(state.clone())
        .oneshot(
            Request::post("/chat")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"message":"hola"}"#))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    assert!(response.status().is_server_error());
    let response = router(state.clone())
        .oneshot(
            Request::post("/chat")
                .body(Body::from(r#"{"message":"hola"}"#))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(body["response"], "hola");
    assert_eq!(state.llm().stats().total.requests, 2);
}
