//! The one error type of the gateway: each variant is an HTTP response.
//!
//! 4xx bodies name the field and the rule; 5xx bodies stay generic. The detail
//! travels on the response as an [`ErrorDetail`] extension and is logged once, by
//! [`crate::middleware::log_errors`], with the request id.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: `validation_failed`, `invalid_json`,
    /// `invalid_parameter`, `unauthorized`, `forbidden`, `too_many_failures`, `not_found`, `qr_failed`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `unavailable`,
    /// `busy`, `timeout`, `internal`.
    pub error: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The 409 of a Wispro sync that is already queued or running: the error body
/// (`error` is `conflict`) and the id of the active run, to follow at
/// `/api/sync-runs/{run_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "error": "conflict",
    "message": "sync run 7 is already queued or running; follow it at /api/sync-runs/7",
    "run_id": 7
}))]
pub struct SyncConflict {
    #[serde(flatten)]
    pub body: ErrorBody,
    /// The active run.
    pub run_id: i64,
}

#[derive(Debug)]
pub enum ApiError {
    /// 422: a field breaks a rule.
    Validation { field: String, message: String },
    /// 400: the body is not the JSON expected.
    InvalidJson {
        field: Option<String>,
        message: String,
    },
    /// 400: a path or query parameter does not parse; the message names it.
    InvalidParameter(String),
    /// 400 `invalid_parameter`: a query parameter parses but breaks its rule
    /// (a limit out of range, a filter value not allowed, a cursor of another
    /// list); `field` names it.
    ParameterRule { field: String, message: String },
    /// 401
    Unauthorized,
    /// 401 `unauthorized` of a bank notification whose signature or secret
    /// does not check out; the message says what to send.
    BadSignature(String),
    /// 403
    Forbidden,
    /// 429 `too_many_failures` with `Retry-After`: this client address sent
    /// `API_AUTH_MAX_FAILURES` wrong keys within `API_AUTH_FAILURE_WINDOW`.
    TooManyFailures { retry_after: Duration },
    /// 404
    NotFound(String),
    /// 404: the person exists but generating their QR code failed.
    QrFailed(String),
    /// 409: `field` already has this value.
    Conflict { field: String, message: String },
    /// 409: a Wispro sync run (this id) is already queued or running.
    SyncActive(i64),
    /// 413
    PayloadTooLarge,
    /// 413: a named limit was passed (`PHOTO_MAX_FILE_BYTES`, ...); the message says which.
    TooLarge(String),
    /// 415: the body or a part of it is of a type not accepted; the message says which are.
    UnsupportedMediaType(String),
    /// 503: a dependency is down; the request did nothing. `what` is shown to the
    /// client, `source` only logged.
    Unavailable { what: String, source: anyhow::Error },
    /// 503 `busy` with `Retry-After`: a named limit of work at once is reached
    /// (`PHOTO_MAX_CONCURRENT_UPLOADS`); nothing was read or stored.
    Busy {
        message: String,
        retry_after: Duration,
    },
    /// 503: the request did not finish within `API_REQUEST_TIMEOUT`.
    Timeout(Duration),
    /// 500: logged with its detail; the client sees a generic message.
    Internal(anyhow::Error),
}

/// The detail of an error response, for the log only (never in the body): left on
/// the response by `ApiError::into_response`, taken off by the logging middleware.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// 400 naming query parameter `field` and the rule it breaks.
    pub fn parameter(field: &str, message: impl Into<String>) -> Self {
        ApiError::ParameterRule {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<queue_core::Error> for ApiError {
    fn from(e: queue_core::Error) -> Self {
        use queue_core::Error as E;
        match e {
            E::NoSuchQueue(_) | E::NoSuchDeadLetter { .. } => ApiError::NotFound(e.to_string()),
            E::InvalidQueueName(_) => ApiError::validation("queue", e.to_string()),
            E::InvalidCursor(_) => ApiError::validation("after", e.to_string()),
            // A job in a state the action does not apply to (promote an active
            // job, delete a completed one): the operator's to see, not a fault.
            E::Undecodable { .. } | E::JobState { .. } => ApiError::Conflict {
                field: "id".into(),
                message: e.to_string(),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<ops::AuditUnavailable> for ApiError {
    fn from(e: ops::AuditUnavailable) -> Self {
        ApiError::Unavailable {
            what: "the audit log".into(),
            source: e.into(),
        }
    }
}

impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        match e {
            ops::Error::Queue(e) => e.into(),
            ops::Error::Audit(e) => e.into(),
            ops::Error::Store(e) => e.into(),
            e @ (ops::Error::NoSuchKey(_) | ops::Error::NoSuchJob { .. }) => {
                ApiError::NotFound(e.to_string())
            }
        }
    }
}

/// How an error ends an action in the audit log: its code and message, as
/// the client sees them (a 5xx's detail stays in the log).
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, body, _) = self.parts();
        write!(f, "{} {}: {}", status.as_u16(), body.error, body.message)
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    /// The status, the body the client sees and the detail for the log.
    fn parts(&self) -> (StatusCode, ErrorBody, String) {
        let body = |error: &'static str, message: &str, field: Option<&String>| ErrorBody {
            error,
            message: message.to_owned(),
            field: field.cloned(),
        };
        match self {
            ApiError::Validation { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                body("validation_failed", message, Some(field)),
                format!("{field}: {message}"),
            ),
            ApiError::InvalidJson { field, message } => (
                StatusCode::BAD_REQUEST,
                body("invalid_json", message, field.as_ref()),
                match field {
                    Some(f) => format!("{f}: {message}"),
                    None => message.clone(),
                },
            ),
            ApiError::InvalidParameter(message) => (
                StatusCode::BAD_REQUEST,
                body("invalid_parameter", message, None),
                message.clone(),
            ),
            ApiError::ParameterRule { field, message } => (
                StatusCode::BAD_REQUEST,
                body("invalid_parameter", message, Some(field)),
                format!("{field}: {message}"),
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                body(
                    "unauthorized",
                    "send Authorization: Bearer <key>: a valid API key or token \
                     (not expired, not revoked)",
                    None,
                ),
                "no valid bearer key".into(),
            ),
            ApiError::BadSignature(message) => (
                StatusCode::UNAUTHORIZED,
                body("unauthorized", message, None),
                message.clone(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                body("forbidden", "this key's role may not do this", None),
                "the key's role may not do this".into(),
            ),
            ApiError::TooManyFailures { retry_after } => {
                let message = format!(
                    "too many wrong keys from this address; try again in {}s",
                    seconds_up(*retry_after)
                );
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    body("too_many_failures", &message, None),
                    message,
                )
            }
            ApiError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                body("not_found", message, None),
                message.clone(),
            ),
            ApiError::QrFailed(message) => (
                StatusCode::NOT_FOUND,
                body("qr_failed", message, None),
                message.clone(),
            ),
            ApiError::Conflict { field, message } => (
                StatusCode::CONFLICT,
                body("conflict", message, Some(field)),
                format!("{field}: {message}"),
            ),
            ApiError::SyncActive(run_id) => {
                let message = format!(
                    "sync run {run_id} is already queued or running; follow it at /api/sync-runs/{run_id}"
                );
                (
                    StatusCode::CONFLICT,
                    body("conflict", &message, None),
                    message,
                )
            }
            ApiError::PayloadTooLarge => {
                let message = "the request body is larger than the limit";
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    body("payload_too_large", message, None),
                    message.into(),
                )
            }
            ApiError::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body("payload_too_large", message, None),
                message.clone(),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body("unsupported_media_type", message, None),
                message.clone(),
            ),
            ApiError::Unavailable { what, source } => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    "unavailable",
                    &format!("{what} is unavailable; nothing was stored, try again"),
                    None,
                ),
                format!("{source:#}"),
            ),
            ApiError::Busy { message, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                body("busy", message, None),
                message.clone(),
            ),
            ApiError::Timeout(limit) => {
                let limit = humantime::format_duration(*limit);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    body(
                        "timeout",
                        &format!(
                            "the request did not finish within {limit}; it may still take effect, \
                             so check before repeating it"
                        ),
                        None,
                    ),
                    format!("the request did not finish within {limit} (API_REQUEST_TIMEOUT)"),
                )
            }
            ApiError::Internal(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal", "internal error", None),
                format!("{e:#}"),
            ),
        }
    }
}

/// Whole seconds, rounded up and at least 1: a client that waits a
/// `Retry-After` is not refused again for the fraction cut off.
fn seconds_up(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body, detail) = self.parts();
        let mut res = match self {
            ApiError::SyncActive(run_id) => {
                (status, Json(SyncConflict { body, run_id })).into_response()
            }
            _ => (status, Json(body)).into_response(),
        };
        let retry_after = match self {
            ApiError::Busy { retry_after, .. } | ApiError::TooManyFailures { retry_after } => {
                Some(retry_after)
            }
            _ => None,
        };
        if let Some(after) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds_up(after)));
        }
        // A bank notification is not authenticated by a bearer key.
        if matches!(self, ApiError::Unauthorized) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res.extensions_mut().insert(ErrorDetail(detail));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn a_5xx_body_is_generic_and_the_detail_rides_on_the_response_for_the_log() {
        let res =
            ApiError::Internal(anyhow::anyhow!("connection to 10.0.0.7 refused")).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = res
            .extensions()
            .get::<ErrorDetail>()
            .expect("detail")
            .0
            .clone();
        assert!(detail.contains("10.0.0.7"), "{detail}");
        let body = body_of(res).await;
        assert!(!body.contains("10.0.0.7"), "{body}");
        assert!(body.contains(r#""error":"internal""#), "{body}");

        let res = ApiError::Unavailable {
            what: "the job queue".into(),
            source: anyhow::anyhow!("redis at 10.0.0.8 timed out"),
        }
        .into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_of(res).await;
        assert!(!body.contains("10.0.0.8"), "{body}");
        assert!(body.contains("the job queue is unavailable"), "{body}");
    }

    #[tokio::test]
    async fn an_active_sync_run_is_a_409_error_body_naming_the_run() {
        let res = ApiError::SyncActive(7).into_response();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert!(res.extensions().get::<ErrorDetail>().is_some());
        let body: serde_json::Value = serde_json::from_str(&body_of(res).await).expect("json");
        assert_eq!(body["error"], "conflict");
        assert_eq!(body["run_id"], 7);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("/api/sync-runs/7")),
            "{body}"
        );
        assert!(body.get("field").is_none(), "{body}");
    }

    #[tokio::test]
    async fn too_many_wrong_keys_is_a_429_json_body_with_retry_after() {
        let err = ApiError::TooManyFailures {
            retry_after: Duration::from_millis(41_500),
        };
        assert_eq!(
            err.to_string(),
            "429 too_many_failures: too many wrong keys from this address; try again in 42s"
        );
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "42");
        let body: serde_json::Value = serde_json::from_str(&body_of(res).await).expect("json");
        assert_eq!(body["error"], "too_many_failures");
    }

    #[tokio::test]
    async fn a_timeout_is_a_503_json_body_naming_the_limit() {
        let res = ApiError::Timeout(Duration::from_millis(250)).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(&body_of(res).await).expect("json");
        assert_eq!(body["error"], "timeout");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("250ms")),
            "{body}"
        );
    }
}
