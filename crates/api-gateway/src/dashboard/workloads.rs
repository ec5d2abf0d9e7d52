//! `/dashboard/workloads`: our own workloads as an operator follows them. Sync
//! runs and their progress; payments flagged for an operator, their check
//! history, "Resume checking" and "Resolve by hand"; photo batches with thumbnails and the bibs
//! found drawn over them; companies whose context failed, with their error and
//! "Retry".
//!
//! The actions are the API's (`routes::payments::resume_checks`,
//! `routes::payments::resolve_by_hand`,
//! `routes::companies::retry_failed_context`), audited alike; each has a
//! confirmation page (a GET that changes nothing) whose form posts the
//! session's CSRF token, and the outcome is shown on the page it returns to.
//! A page whose work is still moving (a run under way, a batch not settled)
//! reloads its figures every few seconds (`assets/workloads.js`) while it is
//! visible, and stops once they settle.

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use store::companies::Company;
use store::payments::{CheckOutcome, Payment};
use store::photos::{BatchProgress, Detection, Photo, PhotoDetection, ProcessingStatus};
use store::sync_runs::{SyncRun, SyncStatus};

use super::session::{CsrfForm, Session, csrf_field, error_response};
use crate::AppState;
use crate::error::ApiError;
use crate::routes::RerunBy;

/// Rows per list page.
const PAGE: i64 = 25;
/// Photos per batch page.
const PHOTOS_PAGE: i64 = 60;
/// Rows per section of the workloads' front page.
const SUMMARY: i64 = 5;
/// How often a page whose work is moving reloads its figures, in seconds.
const POLL_SECONDS: u32 = 3;

const CSS: &str = include_str!("assets/workloads.css");
const JS: &str = include_str!("assets/workloads.js");
const CSS_PATH: &str = "/dashboard/assets/workloads.css";
const JS_PATH: &str = "/dashboard/assets/workloads.js";

/// The workload pages, under `/dashboard/workloads`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/workloads", get(index))
        .route("/dashboard/workloads/sync-runs", get(sync_runs))
        .route("/dashboard/workloads/sync-runs/{id}", get(sync_run))
        .route("/dashboard/workloads/payments", get(flagged_payments))
        .route("/dashboard/workloads/payments/{id}", get(payment))
        .route(
            "/dashboard/workloads/payments/{id}/resume",
            get(confirm_resume).post(resume),
        )
        .route(
            "/dashboard/workloads/payments/{id}/resolve",
            get(confirm_resolve).post(resolve),
        )
        .route("/dashboard/workloads/photos", get(batches))
        .route("/dashboard/workloads/photos/batches/{id}", get(batch))
        .route("/dashboard/workloads/photos/{id}/thumbnail", get(thumbnail))
        .route("/dashboard/workloads/companies", get(failed_companies))
        .route(
            "/dashboard/workloads/companies/{id}/retry",
            get(confirm_retry).post(retry),
        )
        .route(CSS_PATH, get(css))
        .route(JS_PATH, get(js))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // Linked without a version: the dashboard's pages change with the binary,
    // so the browser asks again after an hour at most.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A workload page: the dashboard's layout with this module's assets.
fn page(title: &str, session: &Session, body: Markup) -> Response {
    super::page(
        title,
        session,
        html! {
            link rel="stylesheet" href=(CSS_PATH);
            script defer src=(JS_PATH) {}
            nav.tabs aria-label="Workloads" {
                ul {
                    @for (label, path) in SECTIONS {
                        li { a href=(path) aria-current=[(label == title).then_some("page")] { (label) } }
                    }
                }
            }
            (body)
        },
    )
    .into_response()
}

const SECTIONS: [(&str, &str); 5] = [
    ("All workloads", "/dashboard/workloads"),
    ("Sync runs", "/dashboard/workloads/sync-runs"),
    ("Flagged payments", "/dashboard/workloads/payments"),
    ("Photo batches", "/dashboard/workloads/photos"),
    ("Failed contexts", "/dashboard/workloads/companies"),
];

/// The id in a page's path; a 400 page naming it when it is not a number.
struct Id(i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<i64>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Id(id)),
            Err(e) => Err(error_response(ApiError::InvalidParameter(format!(
                "the id in the path must be a number: {e}"
            )))),
        }
    }
}

/// `?before=ID` (older rows) or `?after=ID` (later photos of a batch); a 400
/// page naming them when they are not numbers.
#[derive(Debug, Default, Deserialize)]
struct Paging {
    before: Option<i64>,
    after: Option<i64>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<Paging>::from_request_parts(parts, state).await {
            Ok(Query(paging)) => Ok(paging),
            Err(e) => Err(error_response(ApiError::InvalidParameter(format!(
                "`before` and `after` must be numbers: {e}"
            )))),
        }
    }
}

fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// "Older" under a list whose page was full: the next page starts before its last row.
fn older_link(path: &str, last_id: Option<i64>, full: bool) -> Markup {
    html! {
        @if let (Some(last), true) = (last_id, full) {
            p.pager { a href={ (path) "?before=" (last) } { "Older →" } }
        }
    }
}

/// An element whose content `workloads.js` reloads from the same page every
/// few seconds while `moving`.
fn live_region(id: &str, moving: bool, body: Markup) -> Markup {
    html! {
        div id=(id) data-poll=[moving.then_some(POLL_SECONDS)] aria-live="polite" { (body) }
    }
}

// ---- the front page ----------------------------------------------------------

async fn index(session: Session, State(state): State<AppState>) -> Response {
    let loaded = async {
        let mut conn = state.conn().await?;
        let runs = store::sync_runs::recent(&mut conn, None, SUMMARY).await?;
        let payments = store::payments::flagged(&mut conn, None, SUMMARY).await?;
        let batches = store::photos::recent_batches(&mut conn, None, SUMMARY).await?;
        let companies = store::companies::context_failed(&mut conn, None, SUMMARY).await?;
        Ok::<_, ApiError>((runs, payments, batches, companies))
    };
    let (runs, payments, batches, companies) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return error_response(e),
    };
    let body = html! {
        h1 { "All workloads" }
        section {
            h2 { a href="/dashboard/workloads/sync-runs" { "Sync runs" } }
            (runs_table(&runs))
        }
        section {
            h2 { a href="/dashboard/workloads/payments" { "Payments flagged for an operator" } }
            (payments_table(&payments))
        }
        section {
            h2 { a href="/dashboard/workloads/photos" { "Photo batches" } }
            (batches_table(&batches))
        }
        section {
            h2 { a href="/dashboard/workloads/companies" { "Companies whose context failed" } }
            (companies_table(&companies))
        }
    };
    page("All workloads", &session, body)
}

// ---- sync runs ---------------------------------------------------------------

fn run_status(status: SyncStatus) -> Markup {
    let (label, class) = match status {
        SyncStatus::Queued => ("queued", "badge"),
        SyncStatus::Running => ("running", "badge running"),
        SyncStatus::Completed => ("completed", "badge ok"),
        SyncStatus::Failed => ("failed", "badge failed"),
    };
    html! { span class=(class) { (label) } }
}

fn pages(run: &SyncRun) -> Markup {
    html! {
        @match run.total_pages {
            Some(total) => {
                progress value=(run.pages_done) max=(total.max(1)) aria-label="Pages done" {}
                " " (run.pages_done) " / " (total)
            }
            None => { (run.pages_done) " / ?" }
        }
    }
}

fn runs_table(runs: &[SyncRun]) -> Markup {
    html! {
        @if runs.is_empty() {
            p { "No sync run yet: an admin starts one with POST /api/sync-runs." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" { "Run" }
                    th scope="col" { "Status" }
                    th scope="col" { "Pages" }
                    th scope="col" .num { "Created" }
                    th scope="col" .num { "Updated" }
                    th scope="col" .num { "Skipped" }
                    th scope="col" .num { "Errors" }
                    th scope="col" { "Requested by" }
                    th scope="col" { "Started" }
                } }
                tbody {
                    @for run in runs {
                        tr {
                            th scope="row" { a href={ "/dashboard/workloads/sync-runs/" (run.id) } { "#" (run.id) } }
                            td { (run_status(run.status)) }
                            td { (pages(run)) }
                            td.num { (run.created) }
                            td.num { (run.updated) }
                            td.num { (run.skipped) }
                            td.num { (run.errors) }
                            td { (run.requested_by) }
                            td { (maybe_time(run.started_at)) }
                        }
                    }
                }
            } }
        }
    }
}

async fn sync_runs(session: Session, State(state): State<AppState>, paging: Paging) -> Response {
    let runs = async {
        Ok::<_, ApiError>(
            store::sync_runs::recent(&mut *state.conn().await?, paging.before, PAGE).await?,
        )
    };
    let runs = match runs.await {
        Ok(runs) => runs,
        Err(e) => return error_response(e),
    };
    let moving = runs
        .iter()
        .any(|r| matches!(r.status, SyncStatus::Queued | SyncStatus::Running));
    let body = html! {
        h1 { "Sync runs" }
        p.hint { "Wispro customer syncs, newest first. Skips and errors are counted; "
            "the run's page keeps the first reasons." }
        (live_region("runs", moving, runs_table(&runs)))
        (older_link("/dashboard/workloads/sync-runs", runs.last().map(|r| r.id), runs.len() as i64 == PAGE))
    };
    page("Sync runs", &session, body)
}

fn run_facts(run: &SyncRun) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd { (run_status(run.status)) }
            dt { "Pages" } dd { (pages(run)) " (" (run.per_page) " customers a page)" }
            dt { "Created" } dd { (run.created) }
            dt { "Updated" } dd { (run.updated) }
            dt { "Skipped" } dd { (run.skipped) }
            dt { "Errors" } dd { (run.errors) }
            @if let Some(failure) = &run.failure {
                dt { "Failure" } dd.error { (failure) }
            }
            dt { "Requested by" } dd { (run.requested_by) }
            dt { "Queued" } dd { (time(run.created_at)) }
            dt { "Started" } dd { (maybe_time(run.started_at)) }
            dt { "Finished" } dd { (maybe_time(run.finished_at)) }
            dt { "Last moved" } dd { (time(run.updated_at)) }
        }
        h2 { "Reasons" }
        @if run.error_samples.0.is_empty() {
            p { "No customer was skipped or failed." }
        } @else {
            p.hint { "Why customers were skipped or failed, first first (the first "
                (store::sync_runs::MAX_ERROR_SAMPLES) " are kept), and the run's own notes." }
            ol.reasons {
                @for reason in &run.error_samples.0 {
                    li { (reason) }
                }
            }
        }
    }
}

async fn sync_run(session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    let run = async {
        store::sync_runs::get(&mut *state.conn().await?, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no sync run with id {id}")))
    };
    let run = match run.await {
        Ok(run) => run,
        Err(e) => return error_response(e),
    };
    let moving = matches!(run.status, SyncStatus::Queued | SyncStatus::Running);
    let title = format!("Sync run #{id}");
    let body = html! {
        h1 { (title) }
        (live_region("run", moving, run_facts(&run)))
    };
    page(&title, &session, body)
}

// ---- flagged payments ----------------------------------------------------------

fn amount(p: &Payment) -> String {
    format!(
        "{} {}",
        store::payments::format_amount(p.amount_cents),
        p.currency.as_str()
    )
}

fn payments_table(payments: &[Payment]) -> Markup {
    html! {
        @if payments.is_empty() {
            p { "No payment is waiting for an operator." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" { "Payment" }
                    th scope="col" .num { "Amount" }
                    th scope="col" { "Status" }
                    th scope="col" .num { "Checks" }
                    th scope="col" { "Why it stopped" }
                    th scope="col" { "Flagged" }
                } }
                tbody {
                    @for p in payments {
                        tr {
                            th scope="row" { a href={ "/dashboard/workloads/payments/" (p.id) } { (p.qr_id) } }
                            td.num { (amount(p)) }
                            td { (p.status.as_str()) }
                            td.num { (p.checks_made) }
                            td { (p.operator_reason.as_deref().unwrap_or("")) }
                            td { (time(p.updated_at)) }
                        }
                    }
                }
            } }
        }
    }
}

async fn flagged_payments(
    session: Session,
    State(state): State<AppState>,
    paging: Paging,
) -> Response {
    let payments = async {
        Ok::<_, ApiError>(
            store::payments::flagged(&mut *state.conn().await?, paging.before, PAGE).await?,
        )
    };
    let payments = match payments.await {
        Ok(p) => p,
        Err(e) => return error_response(e),
    };
    let body = html! {
        h1 { "Flagged payments" }
        p.hint { "Payments whose checks stopped without a final status (the check limit, "
            "or checks failing): open one to see its checks and resume them." }
        (payments_table(&payments))
        (older_link("/dashboard/workloads/payments", payments.last().map(|p| p.id), payments.len() as i64 == PAGE))
    };
    page("Flagged payments", &session, body)
}

fn resumable(p: &Payment) -> bool {
    p.needs_operator && !p.status.is_final()
}

async fn payment(session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    let loaded = async {
        let mut conn = state.conn().await?;
        let payment = store::payments::get(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no payment with id {id}")))?;
        let checks = store::payments::checks(&mut conn, id).await?;
        Ok::<_, ApiError>((payment, checks))
    };
    let (p, checks) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return error_response(e),
    };
    let title = format!("Payment {}", p.qr_id);
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "Amount" } dd { (amount(&p)) }
            dt { "Description" } dd { (p.description) }
            dt { "Status" } dd { (p.status.as_str()) }
            dt { "Checks made" } dd { (p.checks_made)
                @if p.checks_base > 0 { " (" (p.checks_made - p.checks_base) " since it was last resumed)" } }
            dt { "Next check" } dd { (maybe_time(p.next_check_at)) }
            dt { "Flagged for an operator" } dd { @if p.needs_operator { strong { "yes" } } @else { "no" } }
            @if let Some(reason) = &p.operator_reason {
                dt { "Why it stopped" } dd.error { (reason) }
            }
            dt { "Expires" } dd { (time(p.expires_at)) }
            dt { "Paid" } dd { (maybe_time(p.paid_at)) }
            dt { "Created" } dd { (time(p.created_at)) }
        }
        @if resumable(&p) {
            p.actions {
                a.button href={ "/dashboard/workloads/payments/" (p.id) "/resume" } { "Resume checking…" }
                " "
                a.button.secondary href={ "/dashboard/workloads/payments/" (p.id) "/resolve" } { "Resolve by hand…" }
            }
        }
        @if !p.operator_history.0.is_empty() {
            h2 { "Earlier flags" }
            ul {
                @for past in &p.operator_history.0 {
                    li { (past.error.as_deref().unwrap_or("(no reason)"))
                        @if let Some(r) = &past.resolution {
                            " — resolved by hand as " strong { (r.status) } " by " (r.by) " "
                            (time(past.reopened_at)) ": " q { (r.reason) }
                        } @else {
                            " — resumed " (time(past.reopened_at))
                        } }
                }
            }
        }
        h2 { "Check history" }
        @if checks.is_empty() {
            p { "No check was made yet." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" .num { "#" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Bank status" }
                    th scope="col" { "Error" }
                    th scope="col" { "Due" }
                    th scope="col" { "Checked" }
                } }
                tbody {
                    @for c in &checks {
                        tr {
                            td.num { (c.check_number) }
                            td { @match c.outcome {
                                CheckOutcome::Ok => { "ok" }
                                CheckOutcome::Failed => { span.error { "failed" } }
                            } }
                            td { (c.status.map(|s| s.as_str()).unwrap_or("—"))
                                 @if c.changed { " (changed)" } }
                            td { (c.error.as_deref().unwrap_or("")) }
                            td { (maybe_time(c.due_at)) }
                            td { (time(c.checked_at)) }
                        }
                    }
                }
            } }
        }
    };
    page(&title, &session, body)
}

/// The confirmation page of an action on payment `id` (`title`, and `heading`
/// before its QR id): its `form` (given the page to return to) when it is
/// flagged, else why there is nothing to `do_what`.
async fn confirm_flagged(
    session: Session,
    state: &AppState,
    id: i64,
    (title, heading, do_what): (&str, &str, &str),
    form: impl FnOnce(&str) -> Markup,
) -> Response {
    let p = async {
        store::payments::get(&mut *state.conn().await?, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no payment with id {id}")))
    };
    let p = match p.await {
        Ok(p) => p,
        Err(e) => return error_response(e),
    };
    let back = format!("/dashboard/workloads/payments/{id}");
    let body = html! {
        h1 { (heading) " " (p.qr_id) "?" }
        @if resumable(&p) {
            p { "Its checks stopped: " strong { (p.operator_reason.as_deref().unwrap_or("flagged")) } }
            (form(&back))
        } @else {
            p { "It is not flagged for an operator (it is " (p.status.as_str()) "): there is nothing to " (do_what) "." }
            p { a href=(back) { "Back to the payment" } }
        }
    };
    page(title, &session, body)
}

async fn confirm_resume(session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    let csrf = csrf_field(&session);
    let texts = ("Resume checking", "Resume checking payment", "resume");
    confirm_flagged(session, &state, id, texts, |back| {
        html! {
            p { "The bank is asked about it again now, and up to the check limit after that. "
                "If its last check is still in the dead-letter stream, that check is retried "
                "instead, so no second check runs beside it." }
            form.confirm method="post" action={ (back) "/resume" } {
                (csrf)
                button type="submit" { "Resume checking" }
                " "
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    })
    .await
}

async fn confirm_resolve(session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    let csrf = csrf_field(&session);
    let texts = ("Resolve by hand", "Resolve by hand: payment", "resolve");
    confirm_flagged(session, &state, id, texts, |back| {
        html! {
            p { "It gets the status you choose and is not checked again; nothing is asked of "
                "the bank. Completed books its movement. The reason is kept in its history "
                "and the audit log." }
            form.confirm method="post" action={ (back) "/resolve" } {
                (csrf)
                label for="status" { "Status" }
                select #status name="status" {
                    option value="completed" { "completed (paid: book its movement)" }
                    option value="cancelled" { "cancelled" }
                    option value="expired" { "expired" }
                }
                label for="reason" { "Reason" }
                textarea #reason name="reason" required maxlength=(crate::routes::payments::MAX_REASON_CHARS) rows="3" {}
                button type="submit" { "Resolve by hand" }
                " "
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    })
    .await
}

/// The form of "Resolve by hand".
#[derive(Debug, Deserialize)]
struct ResolveForm {
    status: Option<String>,
    reason: Option<String>,
}

async fn resolve(
    session: Session,
    State(state): State<AppState>,
    Id(id): Id,
    CsrfForm(form): CsrfForm<ResolveForm>,
) -> Response {
    let outcome = async {
        let (status, reason) = crate::routes::payments::validate_resolution(
            crate::routes::payments::ResolvePayment {
                status: form.status,
                reason: form.reason,
            },
        )?;
        let p = crate::routes::payments::resolve_by_hand(
            &state,
            &session.principal,
            id,
            status,
            &reason,
        )
        .await?;
        Ok(format!(
            "Payment {} was resolved by hand as {}.",
            p.qr_id, p.status
        ))
    };
    done(
        &session,
        &state,
        outcome.await,
        &format!("/dashboard/workloads/payments/{id}"),
    )
    .await
}

/// The form of an action: its CSRF field only.
#[derive(Debug, Deserialize)]
struct ActionForm {}

fn rerun_outcome(by: RerunBy) -> &'static str {
    match by {
        RerunBy::DeadLetterRetried => "its dead-lettered job was retried",
        RerunBy::JobEnqueued => "it was reopened and its job enqueued",
    }
}

/// After an action: its outcome (or its refusal) shown on `back`; a 5xx as an error page.
async fn done(
    session: &Session,
    state: &AppState,
    outcome: Result<String, ApiError>,
    back: &str,
) -> Response {
    let message = match outcome {
        Ok(message) => message,
        Err(
            e @ (ApiError::Conflict { .. } | ApiError::NotFound(_) | ApiError::Validation { .. }),
        ) => {
            let res = e.into_response();
            match res.extensions().get::<crate::error::ErrorDetail>() {
                Some(detail) => format!("Nothing was done: {}", detail.0),
                None => "Nothing was done.".into(),
            }
        }
        Err(e) => return error_response(e),
    };
    if let Err(e) = session.flash(state, &message).await {
        return error_response(e);
    }
    Redirect::to(back).into_response()
}

async fn resume(
    session: Session,
    State(state): State<AppState>,
    Id(id): Id,
    CsrfForm(ActionForm {}): CsrfForm<ActionForm>,
) -> Response {
    let outcome = crate::routes::payments::resume_checks(&state, &session.principal, id)
        .await
        .map(|r| {
            format!(
                "Payment {} is checked again: {}.",
                r.qr_id,
                rerun_outcome(r.resumed_by)
            )
        });
    done(
        &session,
        &state,
        outcome,
        &format!("/dashboard/workloads/payments/{id}"),
    )
    .await
}

// ---- photo batches ---------------------------------------------------------------

fn batches_table(batches: &[BatchProgress]) -> Markup {
    html! {
        @if batches.is_empty() {
            p { "No photo was uploaded yet." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" { "Batch" }
                    th scope="col" { "Uploaded" }
                    th scope="col" { "Done" }
                    th scope="col" .num { "Pending" }
                    th scope="col" .num { "Processing" }
                    th scope="col" .num { "Completed" }
                    th scope="col" .num { "Failed" }
                } }
                tbody {
                    @for b in batches {
                        tr {
                            th scope="row" { a href={ "/dashboard/workloads/photos/batches/" (b.id) } { "#" (b.id) } }
                            td { (time(b.created_at)) }
                            td { (batch_progress(b)) }
                            td.num { (b.pending) }
                            td.num { (b.processing) }
                            td.num { (b.completed) }
                            td.num.failed { (b.failed) }
                        }
                    }
                }
            } }
        }
    }
}

fn batch_progress(b: &BatchProgress) -> Markup {
    let settled = b.completed + b.failed;
    html! {
        progress value=(settled) max=(b.total.max(1)) aria-label="Photos settled" {}
        " " (settled) " / " (b.total)
    }
}

fn unsettled(b: &BatchProgress) -> bool {
    b.pending + b.processing > 0
}

async fn batches(session: Session, State(state): State<AppState>, paging: Paging) -> Response {
    let batches = async {
        Ok::<_, ApiError>(
            store::photos::recent_batches(&mut *state.conn().await?, paging.before, PAGE).await?,
        )
    };
    let batches = match batches.await {
        Ok(b) => b,
        Err(e) => return error_response(e),
    };
    let body = html! {
        h1 { "Photo batches" }
        (live_region("batches", batches.iter().any(unsettled), batches_table(&batches)))
        (older_link("/dashboard/workloads/photos", batches.last().map(|b| b.id), batches.len() as i64 == PAGE))
    };
    page("Photo batches", &session, body)
}

/// A photo's card: its thumbnail with the bibs found drawn as boxes over it
/// (an SVG in the photo's own pixel space, stretched over the thumbnail, so
/// the boxes scale with it), or its state when it has none.
fn photo_card(photo: &Photo, found: &[&Detection]) -> Markup {
    let status = match photo.processing_status {
        ProcessingStatus::Pending => "pending",
        ProcessingStatus::Processing => "processing",
        ProcessingStatus::Completed => "completed",
        ProcessingStatus::Failed => "failed",
    };
    let name = photo
        .original_name
        .clone()
        .or_else(|| photo.source_url.clone())
        .unwrap_or_default();
    html! {
        figure.photo data-photo=(photo.id) {
            @match (&photo.thumbnail_path, photo.width, photo.height) {
                (Some(_), Some(w), Some(h)) => {
                    div.thumb {
                        img src={ "/dashboard/workloads/photos/" (photo.id) "/thumbnail" }
                            alt={ "Photo " (photo.id) } loading="lazy" width=(w) height=(h);
                        svg.boxes viewBox={ "0 0 " (w) " " (h) } preserveAspectRatio="none"
                            role="img" aria-label={ (found.len()) " bibs found" } {
                            @for d in found {
                                g.bib {
                                    rect x=(d.box_x) y=(d.box_y) width=(d.box_width) height=(d.box_height) {}
                                    text x=(d.box_x) y=(d.box_y) dy="-0.3em" { (d.number) }
                                }
                            }
                        }
                    }
                }
                _ => { div.thumb.empty { span { (status) } } }
            }
            figcaption {
                strong { "#" (photo.id) } " " span.muted { (name) } br;
                span class={ "badge " (status) } { (status) }
                @if !found.is_empty() {
                    " Bibs: "
                    @for (i, d) in found.iter().enumerate() {
                        @if i > 0 { ", " }
                        span.bib-number { (d.number) } " (" (format!("{:.0}%", d.confidence * 100.0)) ")"
                    }
                } @else if photo.processing_status == ProcessingStatus::Completed {
                    " No bib found."
                }
                @if let Some(error) = &photo.processing_error {
                    br; span.error { (error) }
                }
            }
        }
    }
}

fn batch_body(progress: &BatchProgress, photos: &[Photo], detections: &[PhotoDetection]) -> Markup {
    html! {
        dl.facts {
            dt { "Uploaded" } dd { (time(progress.created_at)) }
            dt { "Done" } dd { (batch_progress(progress)) }
            dt { "Pending" } dd { (progress.pending) }
            dt { "Processing" } dd { (progress.processing) }
            dt { "Completed" } dd { (progress.completed) }
            dt { "Failed" } dd { (progress.failed) }
        }
        div.photo-grid {
            @for photo in photos {
                @let found: Vec<&Detection> = detections
                    .iter()
                    .filter(|d| d.photo_id == photo.id)
                    .map(|d| &d.detection)
                    .collect();
                (photo_card(photo, &found))
            }
        }
    }
}

async fn batch(
    session: Session,
    State(state): State<AppState>,
    Id(id): Id,
    paging: Paging,
) -> Response {
    let loaded = async {
        let mut conn = state.conn().await?;
        let progress = store::photos::batch_progress(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no photo batch with id {id}")))?;
        let photos = store::photos::batch_photos(&mut conn, id, paging.after, PHOTOS_PAGE).await?;
        let ids: Vec<i64> = photos.iter().map(|p| p.id).collect();
        let detections = store::photos::detections_of(&mut conn, &ids).await?;
        Ok::<_, ApiError>((progress, photos, detections))
    };
    let (progress, photos, detections) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return error_response(e),
    };
    let title = format!("Photo batch #{id}");
    let path = format!("/dashboard/workloads/photos/batches/{id}");
    let body = html! {
        h1 { (title) }
        (live_region("batch", unsettled(&progress), batch_body(&progress, &photos, &detections)))
        @if let (Some(last), true) = (photos.last(), photos.len() as i64 == PHOTOS_PAGE) {
            p.pager { a href={ (path) "?after=" (last.id) } { "More photos →" } }
        }
    };
    page(&title, &session, body)
}

async fn thumbnail(_session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    match crate::routes::photos::thumbnail_jpeg(&state, id).await {
        Ok(res) => res,
        Err(e) => error_response(e),
    }
}

// ---- failed company contexts ---------------------------------------------------------

fn companies_table(companies: &[Company]) -> Markup {
    html! {
        @if companies.is_empty() {
            p { "No company's context condensation has failed." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" { "Company" }
                    th scope="col" { "Error" }
                    th scope="col" .num { "Earlier failures" }
                    th scope="col" { "Failed" }
                    th scope="col" { span.visually-hidden { "Action" } }
                } }
                tbody {
                    @for c in companies {
                        tr {
                            th scope="row" { (c.name) " " span.muted { "#" (c.id) } }
                            td.error { (c.context_error.as_deref().unwrap_or("")) }
                            td.num { (c.context_error_history.0.len()) }
                            td { (time(c.updated_at)) }
                            td { a.button href={ "/dashboard/workloads/companies/" (c.id) "/retry" } { "Retry…" } }
                        }
                    }
                }
            } }
        }
    }
}

async fn failed_companies(
    session: Session,
    State(state): State<AppState>,
    paging: Paging,
) -> Response {
    let companies = async {
        Ok::<_, ApiError>(
            store::companies::context_failed(&mut *state.conn().await?, paging.before, PAGE)
                .await?,
        )
    };
    let companies = match companies.await {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    let body = html! {
        h1 { "Failed contexts" }
        p.hint { "Companies whose context could not be condensed: the original text is in use. "
            "Retry once the cause (the LLM server, its limits) is fixed." }
        (companies_table(&companies))
        (older_link("/dashboard/workloads/companies", companies.last().map(|c| c.id), companies.len() as i64 == PAGE))
    };
    page("Failed contexts", &session, body)
}

async fn confirm_retry(session: Session, State(state): State<AppState>, Id(id): Id) -> Response {
    let c = async {
        store::companies::get(&mut *state.conn().await?, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no company with id {id}")))
    };
    let c = match c.await {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    let failed = c.context_status == store::companies::ContextStatus::Failed;
    let body = html! {
        h1 { "Retry the context of " (c.name) "?" }
        @if failed {
            p { "It failed with: " strong.error { (c.context_error.as_deref().unwrap_or("(no error kept)")) } }
            p { "Its context (" (c.context_original.chars().count()) " characters) is condensed again; "
                "the original stays in use meanwhile, and this error is kept in its history. "
                "If its condensation is still in the dead-letter stream, that job is retried instead." }
            form.confirm method="post" action={ "/dashboard/workloads/companies/" (id) "/retry" } {
                (csrf_field(&session))
                button type="submit" { "Retry" }
                " "
                a.button.secondary href="/dashboard/workloads/companies" { "Cancel" }
            }
        } @else {
            p { "Its context has not failed: there is nothing to retry." }
            p { a href="/dashboard/workloads/companies" { "Back to the failed contexts" } }
        }
    };
    page("Retry a context", &session, body)
}

async fn retry(
    session: Session,
    State(state): State<AppState>,
    Id(id): Id,
    CsrfForm(ActionForm {}): CsrfForm<ActionForm>,
) -> Response {
    let outcome = crate::routes::companies::retry_failed_context(&state, &session.principal, id)
        .await
        .map(|r| {
            format!(
                "The context of company #{} is condensed again: {}.",
                r.company_id,
                rerun_outcome(r.retried_by)
            )
        });
    done(&session, &state, outcome, "/dashboard/workloads/companies").await
}
