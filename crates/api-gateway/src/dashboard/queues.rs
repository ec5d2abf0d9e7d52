//! A queue's page (its jobs by state, paged, a search by job id), a job's page,
//! and the operator's actions on them, each with a confirmation step when it
//! destroys something (a page of its own, so it works without JavaScript).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use queue_core::{JobDetail, JobState, JobSummary, Queue};
use serde::Deserialize;

use super::format;
use super::live::QueueLive;
use super::overview::live_cell;
use super::session::{CsrfForm, FRAGMENT_HEADER, Session, csrf_field, error_response, urlencode};
use crate::error::ApiError;
use crate::{AppState, actions};

/// Jobs per page of a listing.
const PAGE_SIZE: usize = 25;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    after: Option<String>,
    /// A job id to look for.
    job: Option<String>,
}

fn queue_path(queue: &str) -> String {
    format!("/dashboard/queues/{}", urlencode(queue))
}

/// A job's page: by job id, or by entry id for an entry that does not decode.
fn job_handle(job: &JobSummary) -> &str {
    match (&job.id, &job.entry_id) {
        (id, Some(entry)) if id.is_empty() => entry,
        (id, _) => id,
    }
}

fn job_path(queue: &str, handle: &str) -> String {
    format!("{}/jobs/{}", queue_path(queue), urlencode(handle))
}

async fn open(state: &AppState, queue: &str) -> Result<Queue, Response> {
    state
        .admin
        .open(queue)
        .await
        .map_err(|e| error_response(e.into()))
}

fn ms(ms: Option<u64>) -> String {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .map_or_else(String::new, format::time_ms)
}

pub(super) async fn page(
    session: Session,
    State(state): State<AppState>,
    Path(queue_name): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let queue = match open(&state, &queue_name).await {
        Ok(queue) => queue,
        Err(page) => return page,
    };
    let job_state: JobState = match q.state.as_deref().unwrap_or("failed").parse() {
        Ok(s) => s,
        Err(message) => return error_response(ApiError::validation("state", message)),
    };
    if let Some(id) = q.job.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        return match state.admin.find_job(&queue, id).await {
            Ok(Some(job)) => {
                Redirect::to(&job_path(&queue_name, job_handle(&job.summary))).into_response()
            }
            Ok(None) => {
                let body = html! {
                    h1 { "Queue " (queue_name) }
                    p.flash.error role="alert" { "No job " code { (id) } " in queue " (queue_name) "." }
                    (search_form(&queue_name, Some(id)))
                    p { a href=(queue_path(&queue_name)) { "Back to the queue" } }
                };
                let mut res = super::page("Job not found", &session, body).into_response();
                *res.status_mut() = axum::http::StatusCode::NOT_FOUND;
                res
            }
            Err(e) => error_response(e.into()),
        };
    }
    let (stats, jobs) = tokio::join!(
        state.admin.stats(&queue),
        state
            .admin
            .jobs(&queue, job_state, q.after.as_deref(), PAGE_SIZE)
    );
    let stats = match stats {
        Ok(s) => s,
        Err(e) => return error_response(e.into()),
    };
    let jobs = match jobs {
        Ok(j) => j,
        Err(queue_core::Error::InvalidCursor(c)) => {
            return error_response(ApiError::validation(
                "after",
                format!("{c:?} is not a cursor of this listing; start from the first page"),
            ));
        }
        Err(e) => return error_response(e.into()),
    };
    let list = job_list(&session, &queue_name, job_state, &jobs, q.after.is_some());
    if headers.contains_key(FRAGMENT_HEADER) {
        // The script refreshing the list takes just that.
        return list.into_response();
    }
    let live = QueueLive::from(&stats);
    let q_name = queue_name.as_str();
    let here = match &q.after {
        Some(after) => format!(
            "{}?state={job_state}&after={}",
            queue_path(q_name),
            urlencode(after)
        ),
        None => format!("{}?state={job_state}", queue_path(q_name)),
    };
    let body = html! {
        p.crumbs { a href="/dashboard" { "Queues" } " / " }
        h1 { "Queue " (q_name) " "
            @if stats.paused { span.badge.paused { "paused" } } }
        dl.facts {
            dt { "Lag" } dd { (live_cell(q_name, "lag", &live.lag)) }
            dt { "Oldest waiting" } dd { (live_cell(q_name, "oldest_waiting", &live.oldest_waiting)) }
            dt { "Consumers" } dd { (live_cell(q_name, "consumers", live.consumers)) }
            dt { "State" } dd { (live_cell(q_name, "paused", &live.paused)) }
        }
        div.actions {
            @if stats.paused {
                (action_button(&session, &format!("{}/resume", queue_path(q_name)), &here, "Resume", ""))
            } @else {
                (action_button(&session, &format!("{}/pause", queue_path(q_name)), &here, "Pause", "secondary"))
            }
            @if stats.failed > 0 {
                a.button.secondary href={ (queue_path(q_name)) "/confirm?action=retry-all&back=" (urlencode(&here)) } { "Retry all failed…" }
                a.button.danger href={ (queue_path(q_name)) "/confirm?action=flush&back=" (urlencode(&here)) } { "Flush failed…" }
            }
        }
        nav.tabs aria-label="Jobs by state" {
            ul {
                @for s in JobState::ALL {
                    @let count = match s {
                        JobState::Waiting => live.waiting,
                        JobState::Active => live.active,
                        JobState::Delayed => live.delayed,
                        JobState::Failed => live.failed,
                        JobState::Completed => live.completed,
                    };
                    li {
                        a href={ (queue_path(q_name)) "?state=" (s) }
                            aria-current=[(s == job_state).then_some("page")] {
                            (capitalized(s)) " " (live_cell(q_name, s.as_str(), count))
                        }
                    }
                }
            }
        }
        (search_form(q_name, None))
        (list)
        p.live-status data-live-status aria-live="polite" {}
    };
    super::page(&format!("Queue {q_name}"), &session, body).into_response()
}

fn capitalized(s: JobState) -> &'static str {
    match s {
        JobState::Waiting => "Waiting",
        JobState::Active => "Active",
        JobState::Delayed => "Delayed",
        JobState::Failed => "Failed",
        JobState::Completed => "Completed",
    }
}

fn search_form(queue: &str, value: Option<&str>) -> Markup {
    html! {
        form.search method="get" action=(queue_path(queue)) role="search" {
            div {
                label for="job-search" { "Find a job by id" }
                input #job-search type="search" name="job" value=[value] spellcheck="false"
                    placeholder="0193…";
            }
            button.secondary type="submit" { "Find" }
        }
    }
}

/// A form of one button that POSTs an action and comes back to `back`.
fn action_button(session: &Session, action: &str, back: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(session))
            input type="hidden" name="back" value=(back);
            button class=(class) type="submit" { (label) }
        }
    }
}

fn job_list(
    session: &Session,
    queue: &str,
    state: JobState,
    page: &queue_core::JobPage,
    paged: bool,
) -> Markup {
    let back = format!("{}?state={state}", queue_path(queue));
    html! {
        div #job-list data-live-list {
            @if page.jobs.is_empty() {
                p { "No " (state) " jobs." }
            } @else {
                div.table-scroll {
                    table {
                        caption.visually-hidden { (capitalized(state)) " jobs of " (queue) }
                        thead { tr {
                            th scope="col" { "Job" }
                            th scope="col" { "Kind" }
                            th scope="col" .num { "Attempt" }
                            @match state {
                                JobState::Waiting => { th scope="col" { "Enqueued" } }
                                JobState::Active => { th scope="col" { "Consumer" } th scope="col" { "Enqueued" } }
                                JobState::Delayed => { th scope="col" { "Due" } }
                                JobState::Failed => { th scope="col" { "Failed" } th scope="col" { "Error" } }
                                JobState::Completed => { th scope="col" { "Completed" } }
                            }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for job in &page.jobs {
                                @let handle = job_handle(job);
                                tr data-job=(handle) {
                                    td { a.mono href=(job_path(queue, handle)) {
                                        @if job.id.is_empty() { "(undecodable) " (handle) } @else { (job.id) } } }
                                    td { (job.kind) }
                                    td.num { (job.attempts.map(|a| a.to_string()).unwrap_or_default()) }
                                    @match state {
                                        JobState::Waiting => { td { (ms(job.enqueued_at_ms)) } }
                                        JobState::Active => { td { (job.consumer.as_deref().unwrap_or("")) } td { (ms(job.enqueued_at_ms)) } }
                                        JobState::Delayed => { td { (ms(job.due_at_ms)) } }
                                        JobState::Failed => { td { (ms(job.finished_at_ms)) } td.error { (job.error.as_deref().unwrap_or("")) } }
                                        JobState::Completed => { td { (ms(job.finished_at_ms)) } }
                                    }
                                    td { div.actions { (job_actions(session, queue, job, &back)) } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if paged { a href=(back) { "First page" } }
                @if let Some(next) = &page.next {
                    a href={ (back) "&after=" (urlencode(next)) } rel="next" { "Next page" }
                }
            }
        }
    }
}

/// What can be done to a job in its state: retry a failed one, run a delayed
/// one now, delete (after confirming) a waiting, delayed or failed one.
fn job_actions(session: &Session, queue: &str, job: &JobSummary, back: &str) -> Markup {
    let handle = job_handle(job);
    let path = job_path(queue, handle);
    html! {
        @if job.state == JobState::Failed && !job.id.is_empty() {
            a.button href=(confirm_path(queue, "retry", handle, back))
                aria-label={ "Retry job " (handle) "…" } { "Retry…" }
        }
        @if job.state == JobState::Delayed {
            (action_button(session, &format!("{path}/promote"), back, "Run now", "secondary"))
        }
        @if matches!(job.state, JobState::Waiting | JobState::Delayed | JobState::Failed) {
            a.button.danger href=(confirm_path(queue, "delete", handle, back))
                aria-label={ "Delete job " (handle) "…" } { "Delete…" }
        }
    }
}

fn confirm_path(queue: &str, action: &str, job: &str, back: &str) -> String {
    format!(
        "{}/confirm?action={action}&job={}&back={}",
        queue_path(queue),
        urlencode(job),
        urlencode(back)
    )
}

pub(super) async fn job_page(
    session: Session,
    State(state): State<AppState>,
    Path((queue_name, id)): Path<(String, String)>,
) -> Response {
    let queue = match open(&state, &queue_name).await {
        Ok(queue) => queue,
        Err(page) => return page,
    };
    let job = match state.admin.find_job(&queue, &id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return error_response(ApiError::NotFound(format!(
                "no job {id} in queue {queue_name} (completed jobs are kept for a while only)"
            )));
        }
        Err(e) => return error_response(e.into()),
    };
    let back = job_path(&queue_name, &id);
    let s = &job.summary;
    let body = html! {
        p.crumbs { a href="/dashboard" { "Queues" } " / "
            a href={ (queue_path(&queue_name)) "?state=" (s.state) } { (queue_name) } " / " }
        h1 { "Job " span.mono { (if s.id.is_empty() { id.as_str() } else { s.id.as_str() }) } }
        div.actions { (job_actions(&session, &queue_name, s, &back)) }
        h2 { "Facts" }
        (facts(&queue_name, &job))
        @if let Some(error) = job.last_error.as_deref().or(s.error.as_deref()) {
            h2 { "Last error" }
            pre.error { (error) }
        }
        h2 { "Payload" }
        (payload(&job))
        h2 { "Headers" }
        @if job.headers.is_empty() {
            p { "None." }
        } @else {
            div.table-scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in &job.headers { tr { td.mono { (k) } td.mono { (v) } } } }
            } }
        }
    };
    super::page(&format!("Job {id}"), &session, body).into_response()
}

fn facts(queue: &str, job: &JobDetail) -> Markup {
    let s = &job.summary;
    let row = |label: &str, value: Option<String>| {
        html! { @if let Some(v) = value { dt { (label) } dd { (v) } } }
    };
    let time = |v: Option<u64>| v.map(|v| ms(Some(v)));
    html! {
        dl.facts {
            dt { "State" } dd { strong data-job-state { (s.state) } }
            dt { "Queue" } dd { (queue) " (" (s.lane) " lane)" }
            dt { "Kind" } dd { (s.kind) }
            (row("Attempt", s.attempts.map(|a| match job.max_attempts {
                Some(max) => format!("{a} of {max}"),
                None => a.to_string(),
            })))
            (row("Enqueued", time(s.enqueued_at_ms)))
            (row("Ready since", time(job.available_at_ms)))
            (row("Due", time(s.due_at_ms)))
            (row("Finished", time(s.finished_at_ms)))
            (row("Held by", s.consumer.clone()))
            (row("Idle", job.idle_ms.map(format::age_ms)))
            (row("Deliveries", job.deliveries.map(|d| d.to_string())))
            (row("Run took", job.duration_ms.map(format::age_ms)))
            (row("Unique key", job.unique_key.clone()))
            (row("Entry", job.entry_id.clone()))
            (row("Failed from entry", job.origin.clone()))
            (row("Trace id", job.trace_id.clone()))
        }
    }
}

fn payload(job: &JobDetail) -> Markup {
    if job.payload.is_empty() {
        return html! { p { "Not kept for this state (" (job.payload_bytes) " bytes)." } };
    }
    match jobs::payload_json(&job.summary.kind, &job.payload) {
        Ok(json) => {
            let pretty = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
            html! {
                p.hint { (job.payload_bytes) " bytes of protobuf, decoded:" }
                pre.payload.mono { (pretty) }
            }
        }
        // A kind the catalogue does not know, or bytes that do not decode: the bytes.
        Err(e) => {
            let shown = &job.payload[..job.payload.len().min(1024)];
            let hex: String = shown
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            html! {
                p.error { "The payload cannot be shown as JSON: " (e) "." }
                p { (job.payload_bytes) " bytes of protobuf"
                    @if job.undecodable { " (the entry does not decode)" } ":" }
                pre.mono { (hex) @if shown.len() < job.payload.len() { " …" } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmQuery {
    action: String,
    job: Option<String>,
    back: Option<String>,
}

/// `GET /dashboard/queues/{queue}/confirm?action=flush|delete&job=`: what the
/// action destroys, a button that does it and one that does not.
pub(super) async fn confirm(
    session: Session,
    State(state): State<AppState>,
    Path(queue_name): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    let queue = match open(&state, &queue_name).await {
        Ok(queue) => queue,
        Err(page) => return page,
    };
    let back = safe_back(q.back.as_deref(), &queue_name);
    let (title, what, action) = match (q.action.as_str(), q.job.as_deref()) {
        ("flush", _) => {
            let failed = match state.admin.stats(&queue).await {
                Ok(s) => s.failed,
                Err(e) => return error_response(e.into()),
            };
            (
                format!("Flush the failed jobs of {queue_name}?"),
                html! { p { "This deletes all " strong { (failed) } " failed jobs of queue "
                strong { (queue_name) } " for good; they cannot be retried afterwards." } },
                format!("{}/flush", queue_path(&queue_name)),
            )
        }
        ("retry-all", _) => (
            format!("Retry every failed job of {queue_name}?"),
            html! { p { "Every failed job of queue " strong { (queue_name) }
            " runs again from its first attempt." } },
            format!("{}/retry-all", queue_path(&queue_name)),
        ),
        ("delete", Some(job)) => (
            format!("Delete job {job}?"),
            html! { p { "This deletes job " code { (job) } " of queue " strong { (queue_name) }
            " for good: it will not run." } },
            format!("{}/delete", job_path(&queue_name, job)),
        ),
        ("retry", Some(job)) => (
            format!("Retry job {job}?"),
            html! { p { "Job " code { (job) } " of queue " strong { (queue_name) }
            " runs again from its first attempt." } },
            format!("{}/retry", job_path(&queue_name, job)),
        ),
        _ => {
            return error_response(ApiError::validation(
                "action",
                "must be flush or retry-all, or delete or retry with a job",
            ));
        }
    };
    let body = html! {
        h1 { (title) }
        (what)
        div.actions {
            form method="post" action=(action) {
                (csrf_field(&session))
                input type="hidden" name="back" value=(back);
                @if q.action.starts_with("retry") {
                    button type="submit" autofocus { "Yes, retry" }
                } @else {
                    button.danger type="submit" autofocus { "Yes, delete" }
                }
            }
            a.button.secondary href=(back) { "Cancel" }
        }
    };
    super::page(&title, &session, body).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    back: Option<String>,
}

/// Where to go after an action: a dashboard page, else the queue's.
fn safe_back(back: Option<&str>, queue: &str) -> String {
    match back {
        Some(b) if b.starts_with("/dashboard/") && !b.contains("//") && !b.contains('\\') => {
            b.to_owned()
        }
        _ => queue_path(queue),
    }
}

/// Shows the outcome on the next page and goes there.
async fn done(
    state: &AppState,
    session: &Session,
    back: &str,
    outcome: Result<String, String>,
) -> Response {
    let message = match outcome {
        Ok(m) => m,
        Err(m) => format!("{}{m}", super::session::FLASH_ERROR),
    };
    if let Err(e) = session.flash(state, &message).await {
        return error_response(e);
    }
    Redirect::to(back).into_response()
}

/// The message of a refused action: what the operator can act on.
fn refusal(e: ApiError) -> Result<String, String> {
    let res = e.into_response();
    let detail = res.extensions().get::<crate::error::ErrorDetail>().cloned();
    match (res.status().is_client_error(), detail) {
        (true, Some(d)) => Err(d.0),
        _ => Err("the action failed on our side (logged); try again".into()),
    }
}

/// `POST /dashboard/queues/{queue}/{action}`: `pause`, `resume`, `retry-all`
/// (the failed jobs) or `flush` (them).
pub(super) async fn queue_action(
    session: Session,
    State(state): State<AppState>,
    Path((queue, action)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (who, q) = (&session.principal, queue.as_str());
    let outcome = match action.as_str() {
        "pause" => Box::pin(actions::pause(&state, who, q))
            .await
            .map(|()| format!("Paused queue {q}: workers take no new jobs.")),
        "resume" => Box::pin(actions::resume(&state, who, q))
            .await
            .map(|()| format!("Resumed queue {q}.")),
        "retry-all" => Box::pin(actions::retry_all_failed(&state, who, q))
            .await
            .map(|n| format!("Retried {n} failed jobs of {q}.")),
        "flush" => Box::pin(actions::flush_failed(&state, who, q))
            .await
            .map(|n| format!("Deleted {n} failed jobs of {q}.")),
        _ => return error_response(ApiError::NotFound(format!("no action {action}"))),
    };
    let back = safe_back(form.back.as_deref(), q);
    done(&state, &session, &back, outcome.or_else(refusal)).await
}

/// `POST /dashboard/queues/{queue}/jobs/{id}/{action}`: `retry` (a failed
/// job), `promote` (a delayed one: it runs now) or `delete` (a waiting,
/// delayed or failed one; then back to the queue, the job's page is gone).
pub(super) async fn job_action(
    session: Session,
    State(state): State<AppState>,
    Path((queue, id, action)): Path<(String, String, String)>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (who, q) = (&session.principal, queue.as_str());
    let mut back = safe_back(form.back.as_deref(), q);
    let outcome = match action.as_str() {
        "retry" => Box::pin(actions::retry_failed(&state, who, q, &id))
            .await
            .map(|entry| format!("Retried job {id}: waiting again (entry {entry}).")),
        "promote" => Box::pin(actions::promote(&state, who, q, &id))
            .await
            .map(|()| format!("Job {id} runs now: it is waiting for a worker.")),
        "delete" => {
            if back.starts_with(&job_path(q, &id)) {
                back = queue_path(q);
            }
            Box::pin(actions::delete_job(&state, who, q, &id))
                .await
                .map(|()| format!("Deleted job {id}."))
        }
        _ => return error_response(ApiError::NotFound(format!("no action {action}"))),
    };
    done(&state, &session, &back, outcome.or_else(refusal)).await
}
