//! `GET /openapi.json`: the OpenAPI document of every route (no token needed).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;
use crate::openapi::ApiDoc;

/// Serves the document generated once, at router construction.
pub fn router() -> Router<AppState> {
    let doc = ApiDoc::openapi();
    Router::new().route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    )
}
