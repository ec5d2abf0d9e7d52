//! Admin operations on queues, over the same `queue_core::Admin` as `queuectl`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{ApiPath, ApiQuery};

/// The admin queue API under `/api/queues`; every route needs the admin token.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queues", get(list))
        .route("/api/queues/{queue}/failed", get(failed).delete(flush))
        .route("/api/queues/{queue}/failed/retry-all", post(retry_all))
        .route(
            "/api/queues/{queue}/failed/{id}",
            axum::routing::delete(delete),
        )
        .route("/api/queues/{queue}/failed/{id}/retry", post(retry))
        .route("/api/queues/{queue}/pause", post(pause))
        .route("/api/queues/{queue}/resume", post(resume))
}

/// A queue's counts; see `queue_core::QueueStats`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueStatsResponse {
    pub name: String,
    /// Not yet delivered to a worker.
    pub waiting: u64,
    /// Delivered, not yet settled.
    pub active: u64,
    /// Scheduled for later (delays and retry backoffs).
    pub delayed: u64,
    /// Dead letters kept.
    pub failed: u64,
    pub completed: u64,
    pub retried: u64,
    pub reclaimed: u64,
    pub dead_lettered: u64,
    pub failed_runs: u64,
    pub lag: Option<u64>,
    pub oldest_waiting_age_ms: Option<u64>,
    pub paused: bool,
    pub consumers: u64,
}

impl From<queue_core::QueueStats> for QueueStatsResponse {
    fn from(s: queue_core::QueueStats) -> Self {
        Self {
            name: s.name,
            waiting: s.waiting,
            active: s.active,
            delayed: s.delayed,
            failed: s.failed,
            completed: s.completed,
            retried: s.retried,
            reclaimed: s.reclaimed,
            dead_lettered: s.dead_lettered,
            failed_runs: s.failed_runs,
            lag: s.lag,
            oldest_waiting_age_ms: s.oldest_waiting_age_ms,
            paused: s.paused,
            consumers: s.consumers,
        }
    }
}

/// A dead letter; `id` is the handle for retry and delete.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterResponse {
    pub id: String,
    pub job_id: String,
    pub kind: String,
    pub error: String,
    pub attempts: Option<u32>,
    pub failed_at_ms: i64,
    pub lane: String,
    pub enqueued_at_ms: Option<i64>,
    pub payload_bytes: usize,
}

impl From<queue_core::admin::DeadLetter> for DeadLetterResponse {
    fn from(d: queue_core::admin::DeadLetter) -> Self {
        Self {
            id: d.id,
            job_id: d.job_id,
            kind: d.kind,
            error: d.error,
            attempts: d.attempts,
            failed_at_ms: d.failed_at_ms,
            lane: d.lane,
            enqueued_at_ms: d.enqueued_at_ms,
            payload_bytes: d.payload_bytes,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterResponse>,
    /// Pass as `before` for the next (older) page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<usize>,
    /// Only dead letters older than this id.
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retried {
    /// New stream entry id of the job.
    pub entry_id: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Count {
    pub count: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paused {
    pub paused: bool,
}

#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, body = [QueueStatsResponse]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<Vec<QueueStatsResponse>>, ApiError> {
    let stats = state.admin.stats_all().await?;
    Ok(Json(stats.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/queues/{queue}/failed", tag = "queues",
    params(("queue" = String, Path), PageQuery),
    responses((status = 200, body = DeadLetterPage),
        (status = 400, description = "`limit` is not a number (`invalid_parameter`)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, description = "`limit` out of range", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn failed(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let q = state.admin.open(&queue).await?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let p = state
        .admin
        .dead_letters(&q, page.before.as_deref(), limit)
        .await?;
    Ok(Json(DeadLetterPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next: p.next,
    }))
}

#[utoipa::path(post, path = "/api/queues/{queue}/failed/{id}/retry", tag = "queues",
    params(("queue" = String, Path), ("id" = String, Path, description = "Dead-letter id or job id")),
    responses((status = 200, body = Retried), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath((queue, id)): ApiPath<(String, String)>,
) -> Result<Json<Retried>, ApiError> {
    let q = state.admin.open(&queue).await?;
    let entry_id = state.admin.retry_dead(&q, &id).await?;
    tracing::info!(queue.name = %queue, dead_letter.id = %id, "dead letter retried");
    Ok(Json(Retried { entry_id }))
}

#[utoipa::path(post, path = "/api/queues/{queue}/failed/retry-all", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Count), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry_all(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Count>, ApiError> {
    let q = state.admin.open(&queue).await?;
    let count = state.admin.retry_all_dead(&q).await?;
    tracing::info!(queue.name = %queue, count, "all dead letters retried");
    Ok(Json(Count { count }))
}

#[utoipa::path(delete, path = "/api/queues/{queue}/failed", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, description = "Dead letters deleted", body = Count), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn flush(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Count>, ApiError> {
    let q = state.admin.open(&queue).await?;
    let count = state.admin.flush_dead(&q).await?;
    tracing::info!(queue.name = %queue, count, "dead letters flushed");
    Ok(Json(Count { count }))
}

#[utoipa::path(delete, path = "/api/queues/{queue}/failed/{id}", tag = "queues",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath((queue, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let q = state.admin.open(&queue).await?;
    state.admin.delete_dead(&q, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Paused), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Paused>, ApiError> {
    let q = state.admin.open(&queue).await?;
    state.admin.pause(&q).await?;
    tracing::info!(queue.name = %queue, "queue paused");
    Ok(Json(Paused { paused: true }))
}

#[utoipa::path(post, path = "/api/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Paused), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(queue): ApiPath<String>,
) -> Result<Json<Paused>, ApiError> {
    let q = state.admin.open(&queue).await?;
    state.admin.resume(&q).await?;
    tracing::info!(queue.name = %queue, "queue resumed");
    Ok(Json(Paused { paused: false }))
}
