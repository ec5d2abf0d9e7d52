//! `GET /dashboard/audit`: who changed what, when, and how it ended, newest
//! first (`store::audit`, written by every action of the API, the dashboard
//! and queuectl).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::format;
use super::session::{Session, error_response};
use crate::AppState;
use crate::error::ApiError;

/// Entries per page.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    /// Entries older than this id.
    before: Option<i64>,
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let entries = async {
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        Ok::<_, ApiError>(store::audit::list(&mut conn, q.before, PAGE_SIZE + 1).await?)
    };
    let mut entries = match entries.await {
        Ok(e) => e,
        Err(e) => return error_response(e),
    };
    let more = entries.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    let body = html! {
        h1 { "Audit log" }
        p.hint { "Every action that changes state — from the dashboard, the admin API or queuectl — "
            "with who did it and how it ended." }
        @if entries.is_empty() {
            p { "Nothing yet." }
        } @else {
            div.table-scroll {
                table.audit {
                    caption.visually-hidden { "Audit log, newest first" }
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Who" }
                        th scope="col" { "Action" }
                        th scope="col" { "Target" }
                        th scope="col" { "Outcome" }
                    } }
                    tbody {
                        @for e in &entries {
                            tr data-audit-id=(e.id) {
                                td { (format::time(e.at)) }
                                td { (e.actor) }
                                td.mono { (e.action) }
                                td.mono { (e.target)
                                    @if let Some(d) = &e.detail { br; span.hint { (d) } } }
                                td { @match e.outcome.as_str() {
                                    store::audit::OK => span.badge.ok { "ok" },
                                    store::audit::PENDING => span.badge { "pending" },
                                    error => span.error { (error) },
                                } }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if q.before.is_some() { a href="/dashboard/audit" { "Newest" } }
            @if let (true, Some(last)) = (more, entries.last()) {
                a href={ "/dashboard/audit?before=" (last.id) } rel="next" { "Older" }
            }
        }
    };
    super::page("Audit log", &session, body).into_response()
}
