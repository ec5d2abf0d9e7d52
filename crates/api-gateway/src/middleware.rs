//! The gateway's own middleware: the request timeout and the one place errors are
//! logged.

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
