//! `GET /dashboard`: every queue's counts, live, and its charts.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use queue_core::admin::HISTORY_MAX_MINUTES;
use serde::Deserialize;

use super::charts::{self, Range};
use super::live::QueueLive;
use super::session::{Session, error_response};
use crate::AppState;
use crate::error::ApiError;

/// A count cell the live stream keeps current.
pub(super) fn live_cell(queue: &str, field: &str, value: impl std::fmt::Display) -> Markup {
    html! { span data-queue=(queue) data-field=(field) { (value) } }
}

#[derive(Debug, Deserialize)]
pub(super) struct OverviewQuery {
    #[serde(default)]
    range: Range,
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let stats = match state.admin.stats_all().await {
        Ok(stats) => stats,
        Err(e) => return error_response(ApiError::from(e)),
    };
    let mut histories = Vec::with_capacity(stats.len());
    for s in &stats {
        let history = async {
            let queue = state.admin.open(&s.name).await?;
            state.admin.history(&queue, HISTORY_MAX_MINUTES).await
        };
        match history.await {
            Ok(h) => histories.push((s.name.as_str(), h)),
            Err(e) => return error_response(ApiError::from(e)),
        }
    }
    let body = html! {
        h1 { "Queues" }
        @if stats.is_empty() {
            p { "No queue has been created yet: they appear once a worker or the gateway opens them." }
        } @else {
            div.table-scroll {
                table.queues data-live-table {
                    caption.visually-hidden { "Every queue's jobs by state" }
                    thead { tr {
                        th scope="col" { "Queue" }
                        th scope="col" .num { "Waiting" }
                        th scope="col" .num { "Active" }
                        th scope="col" .num { "Delayed" }
                        th scope="col" .num { "Failed" }
                        th scope="col" .num { "Completed" }
                        th scope="col" .num { "Lag" }
                        th scope="col" .num { "Oldest waiting" }
                        th scope="col" { "State" }
                        th scope="col" .num { "Consumers" }
                    } }
                    tbody {
                        @for s in &stats {
                            @let q = s.name.as_str();
                            @let l = QueueLive::from(s);
                            tr {
                                th scope="row" { a href={ "/dashboard/queues/" (q) } { (q) } }
                                td.num { (live_cell(q, "waiting", l.waiting)) }
                                td.num { (live_cell(q, "active", l.active)) }
                                td.num { a href={ "/dashboard/queues/" (q) "?state=delayed" } { (live_cell(q, "delayed", l.delayed)) } }
                                td.num.failed { a href={ "/dashboard/queues/" (q) "?state=failed" } { (live_cell(q, "failed", l.failed)) } }
                                td.num { (live_cell(q, "completed", l.completed)) }
                                td.num { (live_cell(q, "lag", &l.lag)) }
                                td.num { (live_cell(q, "oldest_waiting", &l.oldest_waiting)) }
                                td { (live_cell(q, "paused", &l.paused)) }
                                td.num { (live_cell(q, "consumers", l.consumers)) }
                            }
                        }
                    }
                }
            }
            p.live-status data-live-status aria-live="polite" {}
            h2 #charts { "Throughput, failures and wait" }
            nav.tabs aria-label="Chart range" {
                ul { @for r in Range::ALL {
                    li { a href={ "/dashboard?range=" (r.as_str()) "#charts" }
                        aria-current=[(r == q.range).then_some("page")] { (r.label()) } }
                } }
            }
            @for (queue, history) in &histories {
                section.queue-charts aria-labelledby={ "charts-" (queue) } {
                    h3 id={ "charts-" (queue) } { a href={ "/dashboard/queues/" (queue) } { (queue) } }
                    div.charts { (charts::figures(queue, history, q.range)) }
                }
            }
        }
    };
    super::page("Overview", &session, body).into_response()
}
