//! A JSON body extractor whose rejections name the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but a body that does not deserialize is a 400 whose JSON
/// names the field (`first_name`, `email`, ...) and the problem.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::InvalidJson {
                field: None,
                message: "send a JSON body with Content-Type: application/json".into(),
            });
        }
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| invalid_json(&e.path().to_string(), &e.into_inner()))
    }
}

/// The raw body, within the body limit (413 `payload_too_large` past it), for
/// a route that must see the bytes as sent (a signed bank notification).
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::InvalidJson {
                        field: None,
                        message: format!("could not read the body: {e}"),
                    }
                }
            })
    }
}

/// Whether the request says its body is JSON (`application/json`, `...+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// The 400 of a body that does not deserialize, naming the field at `path`
/// (what `serde_path_to_error` tracked) or the one serde's message names.
pub fn invalid_json(path: &str, inner: &serde_json::Error) -> ApiError {
    // `missing field `x`` has no path yet: the field is in the message.
    let field = if path == "." || path.is_empty() {
        missing_field(&inner.to_string())
    } else {
        Some(path.to_owned())
    };
    ApiError::InvalidJson {
        field,
        message: inner.to_string(),
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::missing_field;

    #[test]
    fn the_missing_field_is_read_from_serdes_message() {
        assert_eq!(
            missing_field("missing field `document` at line 1 column 2").as_deref(),
            Some("document")
        );
        assert_eq!(missing_field("expected value at line 1 column 1"), None);
    }
}
