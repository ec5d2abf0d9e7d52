//! Path and query extractors whose rejections are `ApiError`s, so a malformed
//! parameter (`/api/persons/abc`, `?limit=x`) is a JSON 400 like every other error,
//! and is logged like one.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::extract::Path`; a value that does not parse is 400 `invalid_parameter`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            // A parameter the route does not have is our bug, not the client's.
            Err(e) if e.status().is_server_error() => {
                Err(ApiError::Internal(anyhow::anyhow!(e.body_text())))
            }
            Err(e) => Err(ApiError::InvalidParameter(e.body_text())),
        }
    }
}

/// Like `axum::extract::Query`; a value that does not parse is 400
/// `invalid_parameter`, the message naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::InvalidParameter(e.body_text()))
    }
}
