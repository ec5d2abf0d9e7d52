//! A queue's jobs: listed by state, one by id in any state, a delayed one
//! promoted, a waiting or delayed one deleted, and the queue's per-minute
//! history; over `queue_core::Admin`, the moves through `crate::actions` (audited).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::queues::{Forbidden, QueuePath, page_limit};
use crate::AppState;
use crate::actions;
use crate::auth::OperatorCaller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues/{queue}/jobs", get(list))
        .route("/api/queues/{queue}/jobs/{id}", get(show).delete(delete))
        .route("/api/queues/{queue}/jobs/{id}/promote", post(promote))
        .route("/api/queues/{queue}/history", get(history))
}

/// Where a job is (`queue_core::JobState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// In its lane, not yet delivered to a worker.
    Waiting,
    /// Delivered to a worker, not yet settled.
    Active,
    /// Scheduled for later, or a retry waiting out its backoff.
    Delayed,
    /// A dead letter.
    Failed,
    /// Among the last completions kept.
    Completed,
}

impl From<JobState> for queue_core::JobState {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Waiting => Self::Waiting,
            JobState::Active => Self::Active,
            JobState::Delayed => Self::Delayed,
            JobState::Failed => Self::Failed,
            JobState::Completed => Self::Completed,
        }
    }
}

impl From<queue_core::JobState> for JobState {
    fn from(s: queue_core::JobState) -> Self {
        match s {
            queue_core::JobState::Waiting => Self::Waiting,
            queue_core::JobState::Active => Self::Active,
            queue_core::JobState::Delayed => Self::Delayed,
            queue_core::JobState::Failed => Self::Failed,
            queue_core::JobState::Completed => Self::Completed,
        }
    }
}

/// One job of a listing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    /// Job id (empty for an entry that does not decode: use `entry_id`).
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub enqueued_at_ms: Option<u64>,
    /// When a delayed job is due.
    pub due_at_ms: Option<u64>,
    /// The attempt it is on, failed on or completed on.
    pub attempts: Option<u32>,
    /// The worker that holds an active job.
    pub consumer: Option<String>,
    /// A dead letter's error, else the previous attempt's.
    pub error: Option<String>,
    /// `high`, `normal` or `low` (empty for a completion).
    pub lane: String,
    /// Its stream entry (lane, dead-letter or done stream); also accepted in
    /// place of the job id.
    pub entry_id: Option<String>,
    /// When it failed or completed.
    pub finished_at_ms: Option<u64>,
}

impl From<queue_core::JobSummary> for JobSummary {
    fn from(j: queue_core::JobSummary) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            state: j.state.into(),
            enqueued_at_ms: j.enqueued_at_ms,
            due_at_ms: j.due_at_ms,
            attempts: j.attempts,
            consumer: j.consumer,
            error: j.error,
            lane: j.lane,
            entry_id: j.entry_id,
            finished_at_ms: j.finished_at_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// Everything known about one job.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobSummary,
    /// The envelope's headers (`traceparent`, `idempotency-key`, ...).
    pub headers: BTreeMap<String, String>,
    /// The payload decoded as its kind's message, with the proto's field
    /// names; null when it is not kept (a completion) or does not decode.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// Why `payload` is null.
    pub payload_error: Option<String>,
    pub payload_bytes: usize,
    /// The trace id of the `traceparent` header.
    pub trace_id: Option<String>,
    /// Runs allowed (null: the worker's default).
    pub max_attempts: Option<u32>,
    /// When this attempt became ready to run.
    pub available_at_ms: Option<u64>,
    /// The previous attempt's error (a dead letter's: its final one).
    pub last_error: Option<String>,
    /// The unique-until-settled key it holds.
    pub unique_key: Option<String>,
    /// Active: ms since its worker last read, claimed or heart-beat it.
    pub idle_ms: Option<u64>,
    /// Active: times it was delivered.
    pub deliveries: Option<u64>,
    /// Completed: how long its run took.
    pub duration_ms: Option<u64>,
    /// Failed: the lane entry it had when it failed.
    pub origin: Option<String>,
    /// Its entry holds no envelope that decodes.
    pub undecodable: bool,
}

impl From<queue_core::JobDetail> for JobDetail {
    fn from(d: queue_core::JobDetail) -> Self {
        let (payload, payload_error) = if d.undecodable {
            (
                None,
                Some("the entry's envelope does not decode".to_owned()),
            )
        } else if d.summary.state == queue_core::JobState::Completed {
            (None, Some("a completion keeps no payload".to_owned()))
        } else {
            match jobs::payload_json(&d.summary.kind, &d.payload) {
                Ok(json) => (Some(json), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        Self {
            job: d.summary.into(),
            headers: d.headers.into_iter().collect(),
            payload,
            payload_error,
            payload_bytes: d.payload_bytes,
            trace_id: d.trace_id,
            max_attempts: d.max_attempts,
            available_at_ms: d.available_at_ms,
            last_error: d.last_error,
            unique_key: d.unique_key,
            idle_ms: d.idle_ms,
            deliveries: d.deliveries,
            duration_ms: d.duration_ms,
            origin: d.origin,
            undecodable: d.undecodable,
        }
    }
}

/// One minute of a queue's history.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MinuteStats {
    /// Unix time in minutes.
    pub minute: u64,
    pub completed: u64,
    /// Runs that failed (each retry and each dead letter).
    pub failed: u64,
    pub dead_lettered: u64,
    /// Sum of the runs' waits, ready to started.
    pub wait_ms_total: u64,
    /// Runs in `wait_ms_total`.
    pub waited: u64,
}

impl From<queue_core::MinuteStats> for MinuteStats {
    fn from(m: queue_core::MinuteStats) -> Self {
        Self {
            minute: m.minute,
            completed: m.completed,
            failed: m.failed,
            dead_lettered: m.dead_lettered,
            wait_ms_total: m.wait_ms_total,
            waited: m.waited,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct History {
    /// Oldest first, the current minute last; a quiet minute is all zeros.
    pub minutes: Vec<MinuteStats>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Which jobs (default `waiting`).
    #[param(inline, nullable = false)]
    pub state: Option<JobState>,
    /// The `next` of the previous page, as it was.
    #[param(
        pattern = r"^[0-9:-]{1,80}$",
        example = "0:1700000000000-0",
        nullable = false
    )]
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000, example = 50, nullable = false)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many minutes back, 1 to 1440 (default 60).
    #[param(minimum = 1, maximum = 1440, example = 60, nullable = false)]
    pub minutes: Option<u32>,
}

/// A job of a queue: the path of a route on one job, declared as
/// `params(QueuePath, JobId)`.
#[derive(Debug, Deserialize)]
pub struct JobPath {
    pub queue: String,
    pub id: String,
}

/// The job of a route; its queue is a [`QueuePath`].
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// Job id, or an entry id as listed in `entry_id`.
    #[param(
        min_length = 1,
        max_length = 200,
        example = "0191d5a4-7b7c-7c1e-9f00-1234567890ab"
    )]
    pub id: String,
}

/// Longest job id looked up (ids are UUIDs unless a producer chose its own).
const MAX_JOB_ID: usize = 200;

impl JobPath {
    fn id(&self) -> Result<&str, ApiError> {
        if self.id.is_empty() || self.id.len() > MAX_JOB_ID {
            return Err(ApiError::validation(
                "id",
                format!("must be 1 to {MAX_JOB_ID} bytes"),
            ));
        }
        Ok(&self.id)
    }
}

/// What a route on one job may answer besides 403 (and 409).
#[derive(utoipa::IntoResponses)]
pub enum JobErrors {
    #[response(status = 404, description = "No such queue or job (`not_found`)")]
    NotFound(ErrorBody),
    #[response(
        status = 422,
        description = "Invalid queue name, or an id longer than 200 bytes (`validation_failed`)"
    )]
    Invalid(ErrorBody),
}

#[utoipa::path(get, path = "/api/queues/{queue}/jobs", operation_id = "list_jobs", tag = "queues",
    params(QueuePath, JobsQuery),
    responses((status = 200, description = "A page of the queue's jobs in that state: waiting and active ones lane by lane (high first) in order, delayed ones by due time, failed and completed ones newest first", body = JobPage),
        Forbidden,
        (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
        (status = 422, description = "Invalid queue name, `limit` out of range or `after` not a cursor of this state (`validation_failed`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _operator: OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let q = state.admin.open(&path.queue).await?;
    let job_state = query.state.unwrap_or(JobState::Waiting).into();
    let page = state
        .admin
        .jobs(&q, job_state, query.after.as_deref(), limit)
        .await?;
    Ok(Json(JobPage {
        jobs: page.jobs.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

#[utoipa::path(get, path = "/api/queues/{queue}/jobs/{id}", operation_id = "get_job", tag = "queues",
    params(QueuePath, JobId),
    responses((status = 200, description = "The job, in whatever state it is", body = JobDetail),
        Forbidden, JobErrors),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    _operator: OperatorCaller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = path.id()?;
    let q = state.admin.open(&path.queue).await?;
    let job =
        state.admin.find_job(&q, id).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no job {id:?} in queue {:?}", path.queue))
        })?;
    Ok(Json(job.into()))
}

#[utoipa::path(post, path = "/api/queues/{queue}/jobs/{id}/promote", operation_id = "promote_job", tag = "queues",
    params(QueuePath, JobId),
    responses((status = 204, description = "The delayed job is in its lane, ready to run now"),
        (status = 409, description = "The job is not delayed (`conflict`)", body = ErrorBody),
        (status = 503, description = "The audit log cannot be written, so nothing was done (`unavailable`)", body = ErrorBody),
        Forbidden, JobErrors),
    security(("bearer" = [])))]
pub async fn promote(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<StatusCode, ApiError> {
    actions::promote(&state, &who, &path.queue, path.id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/queues/{queue}/jobs/{id}", operation_id = "delete_job", tag = "queues",
    params(QueuePath, JobId),
    responses((status = 204, description = "The waiting, delayed or failed job is deleted, and the unique key it held released"),
        (status = 409, description = "The job is active (a worker holds it) or completed (`conflict`)", body = ErrorBody),
        (status = 503, description = "The audit log cannot be written, so nothing was done (`unavailable`)", body = ErrorBody),
        Forbidden, JobErrors),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<StatusCode, ApiError> {
    actions::delete_job(&state, &who, &path.queue, path.id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/queues/{queue}/history", operation_id = "queue_history", tag = "queues",
    params(QueuePath, HistoryQuery),
    responses((status = 200, description = "The queue's counts per minute, as the workers recorded them", body = History),
        Forbidden,
        (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
        (status = 422, description = "Invalid queue name or `minutes` out of range (`validation_failed`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    _operator: OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let minutes = query.minutes.unwrap_or(60);
    if !(1..=queue_core::admin::HISTORY_MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::validation(
            "minutes",
            format!(
                "must be between 1 and {}",
                queue_core::admin::HISTORY_MAX_MINUTES
            ),
        ));
    }
    let q = state.admin.open(&path.queue).await?;
    let minutes = state.admin.history(&q, minutes).await?;
    Ok(Json(History {
        minutes: minutes.into_iter().map(Into::into).collect(),
    }))
}
