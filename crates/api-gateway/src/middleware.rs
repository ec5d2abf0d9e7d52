//! The gateway's own middleware: the request timeout and the one place errors are
//! logged.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorDetail};

/// Answers 503 `timeout` when the handler has not finished within `limit`
/// (`API_REQUEST_TIMEOUT`). Work handed to its own task (a registration's insert
/// and enqueue) still completes; only the wait is cut short.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// Holds each request until one of `API_MAX_CONCURRENT_REQUESTS` slots is free,
/// before its body is read: a waiting request costs its connection, not its
/// body, so the memory the gateway needs follows from the configured limits
/// however many clients send at once. Inside the request timeout, so a wait
/// that outlasts it is answered 503 `timeout`. `api_requests_in_flight` and
/// `api_requests_waiting` show the slots.
pub async fn limit_concurrency(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    let permit = match slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            let waiting = metrics::gauge!("api_requests_waiting");
            waiting.increment(1.0);
            let _waited = DecrementOnDrop(waiting);
            slots
                .acquire_owned()
                .await
                .expect("the request semaphore is never closed")
        }
    };
    let in_flight = metrics::gauge!("api_requests_in_flight");
    in_flight.increment(1.0);
    let _left = DecrementOnDrop(in_flight);
    let res = next.run(req).await;
    drop(permit);
    res
}

/// Decrements a gauge when dropped, also when the request's future is
/// (a client that hung up, the request timeout).
struct DecrementOnDrop(metrics::Gauge);

impl Drop for DecrementOnDrop {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Logs each error response once, from the [`ErrorDetail`] its `ApiError` left on
/// it: 5xx at error level (the body the client saw is generic, the detail is
/// here), 4xx at debug (the client was told what was wrong).
pub async fn log_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut res = next.run(req).await;
    if let Some(ErrorDetail(detail)) = res.extensions_mut().remove::<ErrorDetail>() {
        let status = res.status().as_u16();
        if res.status().is_server_error() {
            tracing::error!(request.id = %request_id, http.status = status, error = %detail, "request failed");
        } else {
            tracing::debug!(request.id = %request_id, http.status = status, error = %detail, "request refused");
        }
    }
    res
}
