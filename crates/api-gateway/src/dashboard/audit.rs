//! `GET /dashboard/audit`: who changed what, newest first.

use axum::response::{IntoResponse, Response};
use maud::html;

use super::session::Session;

pub(super) async fn page(session: Session) -> Response {
    let body = html! {
        h1 { "Audit log" }
        p { "Every action that changes state is listed here." }
    };
    super::page("Audit log", &session, body).into_response()
}
