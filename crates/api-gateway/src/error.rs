//! The one error type of the gateway: each variant is an HTTP response.
//!
//! 4xx bodies name the field and the rule; 5xx bodies stay generic and the detail
//! is logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: `validation_failed`, `invalid_json`, `conflict`, ...
    pub error: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
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
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound(String),
    /// 409: `field` already has this value.
    Conflict { field: String, message: String },
    /// 413
    PayloadTooLarge,
    /// 503: a dependency is down; the request did nothing.
    Unavailable(String),
    /// 500: logged with its detail; the client sees a generic message.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
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
            E::Undecodable { .. } => ApiError::Conflict {
                field: "id".into(),
                message: e.to_string(),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Validation { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    error: "validation_failed",
                    message,
                    field: Some(field),
                },
            ),
            ApiError::InvalidJson { field, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error: "invalid_json",
                    message,
                    field,
                },
            ),
            ApiError::Unauthorized => {
                let mut res = (
                    StatusCode::UNAUTHORIZED,
                    Json(ErrorBody {
                        error: "unauthorized",
                        message: "send Authorization: Bearer <token>".into(),
                        field: None,
                    }),
                )
                    .into_response();
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return res;
            }
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                ErrorBody {
                    error: "forbidden",
                    message: "this token's role may not do this".into(),
                    field: None,
                },
            ),
            ApiError::NotFound(message) => (
                StatusCode::NOT_FOUND,
                ErrorBody {
                    error: "not_found",
                    message,
                    field: None,
                },
            ),
            ApiError::Conflict { field, message } => (
                StatusCode::CONFLICT,
                ErrorBody {
                    error: "conflict",
                    message,
                    field: Some(field),
                },
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody {
                    error: "payload_too_large",
                    message: "the request body is larger than the limit".into(),
                    field: None,
                },
            ),
            ApiError::Unavailable(what) => {
                tracing::warn!(dependency = %what, "request refused: dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorBody {
                        error: "unavailable",
                        message: format!("{what} is unavailable; nothing was stored, try again"),
                        field: None,
                    },
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody {
                        error: "internal",
                        message: "internal error".into(),
                        field: None,
                    },
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
