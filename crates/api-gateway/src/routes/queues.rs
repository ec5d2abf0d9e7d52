//! Operations on queues, over the same `queue_core::Admin` as `queuectl`; those
//! that change state go through `crate::actions`, which records them in the
//! audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::actions;
use crate::auth::OperatorCaller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{ApiPath, ApiQuery};

/// The queue API under `/api/queues`; every route needs an operator or admin key.
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
    /// What the queue keeps, as its workers wrote it when they started (read
    /// only: set by `{P}_RETAIN_*`); null before any worker of it started.
    pub retention: Option<RetentionResponse>,
}

/// What a queue keeps of its settled jobs; see `queue_core::Retention`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionResponse {
    /// Completions kept, the newest.
    #[schema(example = 1000)]
    pub completed: u64,
    /// Completions older than this are removed by the daily cleanup; null: no age limit.
    pub completed_max_age_ms: Option<u64>,
    /// Dead letters kept at most, the newest; null: no cap.
    #[schema(example = 10000)]
    pub dead_letters: Option<u64>,
    /// Dead letters older than this are removed by the daily cleanup; null: no age limit.
    #[schema(example = 2_592_000_000_u64)]
    pub dead_letters_max_age_ms: Option<u64>,
}

impl From<queue_core::Retention> for RetentionResponse {
    fn from(r: queue_core::Retention) -> Self {
        let ms = |d: Option<std::time::Duration>| {
            d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        Self {
            completed: r.completed as u64,
            completed_max_age_ms: ms(r.completed_max_age),
            dead_letters: (r.dead_letters > 0).then_some(r.dead_letters as u64),
            dead_letters_max_age_ms: ms(r.dead_letters_max_age),
        }
    }
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
            retention: s.retention.map(Into::into),
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

/// The queue of a route: `queue_core::keys::validate_queue_name`'s rule, declared.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// Queue name: 1 to 100 characters of A-Z a-z 0-9 . _ -
    #[param(
        pattern = r"^[A-Za-z0-9._-]{1,100}$",
        min_length = 1,
        max_length = 100,
        example = "qr"
    )]
    pub queue: String,
}

/// A dead letter of a queue: the path of a route on one dead letter, declared
/// as `params(QueuePath, DeadLetterId)`.
#[derive(Debug, Deserialize)]
pub struct DeadLetterPath {
    pub queue: String,
    pub id: String,
}

/// The dead letter of a route; its queue is a [`QueuePath`].
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeadLetterId {
    /// Dead-letter id (`ms-seq`, as listed) or job id.
    #[param(example = "1700000000000-0")]
    pub id: String,
}

impl DeadLetterPath {
    /// The id, or 404 for an entry id no stream can hold: Redis refuses an `ms-seq`
    /// id whose parts overflow 64 bits instead of finding nothing.
    fn id(&self) -> Result<&str, ApiError> {
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let looks_like_entry_id = self
            .id
            .split_once('-')
            .is_some_and(|(ms, seq)| digits(ms) && digits(seq));
        if looks_like_entry_id && entry_id(&self.id, usize::MAX).is_none() {
            return Err(ApiError::NotFound(format!(
                "no dead letter {} in queue {}",
                self.id, self.queue
            )));
        }
        Ok(&self.id)
    }
}

/// Default and largest `limit`.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000, example = 50, nullable = false)]
    pub limit: Option<u32>,
    /// Only dead letters older than this one: a dead-letter id, as in `next`.
    #[param(
        pattern = r"^[0-9]{1,19}-[0-9]{1,19}$",
        example = "1700000000000-0",
        nullable = false
    )]
    pub before: Option<String>,
}

impl PageQuery {
    /// The page size, or 422 naming the parameter; `before` is checked too.
    fn validate(&self) -> Result<usize, ApiError> {
        let limit = page_limit(self.limit)?;
        // Redis answers an error, not an empty page, for an id it cannot parse.
        if let Some(before) = &self.before
            && entry_id(before, 19).is_none()
        {
            return Err(ApiError::validation(
                "before",
                "must be a dead-letter id like 1700000000000-0 (as in `next`)",
            ));
        }
        Ok(limit)
    }
}

/// A page's `limit` parameter: 1 to 1000, 50 when not given; else 422 naming it.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(usize::try_from(limit).expect("a u32 fits in usize"))
}

/// A stream entry id `ms-seq`: each part at most `max_digits` digits and within
/// 64 bits, as Redis requires.
fn entry_id(id: &str, max_digits: usize) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let part = |p: &str| {
        (!p.is_empty() && p.len() <= max_digits && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u64>().ok())
            .flatten()
    };
    Some((part(ms)?, part(seq)?))
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

/// 403 of every route here: they all need an operator or admin key.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "A user key: queues need an operator or admin key (`forbidden`)"
)]
pub struct Forbidden(pub ErrorBody);

/// What an operation on a named queue may answer besides 403.
#[derive(utoipa::IntoResponses)]
pub enum QueueErrors {
    #[response(status = 404, description = "No such queue (`not_found`)")]
    NotFound(ErrorBody),
    #[response(status = 422, description = "Invalid queue name (`validation_failed`)")]
    InvalidName(ErrorBody),
}

/// What an operation on one dead letter may answer besides 403 (and 409 for a retry).
#[derive(utoipa::IntoResponses)]
pub enum DeadLetterErrors {
    #[response(
        status = 404,
        description = "No such queue or dead letter (`not_found`)"
    )]
    NotFound(ErrorBody),
    #[response(status = 422, description = "Invalid queue name (`validation_failed`)")]
    InvalidName(ErrorBody),
}

#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, description = "Stats of every queue", body = [QueueStatsResponse]), Forbidden),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _operator: OperatorCaller,
) -> Result<Json<Vec<QueueStatsResponse>>, ApiError> {
    let stats = state.admin.stats_all().await?;
    Ok(Json(stats.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/queues/{queue}/failed", tag = "queues",
    params(QueuePath, PageQuery),
    responses((status = 200, description = "A page of dead letters, newest first (`items` is empty when there are none)", body = DeadLetterPage),
        Forbidden,
        (status = 404, description = "No such queue (`not_found`)", body = ErrorBody),
        (status = 422, description = "Invalid queue name, `limit` out of range or `before` not a dead-letter id (`validation_failed`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn failed(
    State(state): State<AppState>,
    _operator: OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = page.validate()?;
    let q = state.admin.open(&path.queue).await?;
    // Nothing is older than the first id there is (and Redis refuses to look).
    if page.before.as_deref().and_then(|b| entry_id(b, 19)) == Some((0, 0)) {
        return Ok(Json(DeadLetterPage {
            items: Vec::new(),
            next: None,
        }));
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
    params(QueuePath, DeadLetterId),
    responses((status = 200, description = "Back on its lane as attempt 1", body = Retried),
        (status = 409, description = "The dead letter cannot be decoded, so it cannot be retried (`conflict`)", body = ErrorBody),
        Forbidden, DeadLetterErrors),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<DeadLetterPath>,
) -> Result<Json<Retried>, ApiError> {
    let entry_id = actions::retry_failed(&state, &who, &path.queue, path.id()?).await?;
    tracing::info!(queue.name = %path.queue, dead_letter.id = %path.id, "dead letter retried");
    Ok(Json(Retried { entry_id }))
}

#[utoipa::path(post, path = "/api/queues/{queue}/failed/retry-all", tag = "queues",
    params(QueuePath),
    responses((status = 200, description = "How many dead letters went back on their lanes", body = Count),
        Forbidden, QueueErrors),
    security(("bearer" = [])))]
pub async fn retry_all(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
) -> Result<Json<Count>, ApiError> {
    let count = actions::retry_all_failed(&state, &who, &path.queue).await?;
    tracing::info!(queue.name = %path.queue, count, "all dead letters retried");
    Ok(Json(Count { count }))
}

#[utoipa::path(delete, path = "/api/queues/{queue}/failed", tag = "queues",
    params(QueuePath),
    responses((status = 200, description = "Dead letters deleted; the list stays, empty", body = Count),
        Forbidden, QueueErrors),
    security(("bearer" = [])))]
pub async fn flush(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
) -> Result<Json<Count>, ApiError> {
    let count = actions::flush_failed(&state, &who, &path.queue).await?;
    tracing::info!(queue.name = %path.queue, count, "dead letters flushed");
    Ok(Json(Count { count }))
}

#[utoipa::path(delete, path = "/api/queues/{queue}/failed/{id}", tag = "queues",
    params(QueuePath, DeadLetterId),
    responses((status = 204, description = "Deleted"), Forbidden, DeadLetterErrors),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<DeadLetterPath>,
) -> Result<StatusCode, ApiError> {
    actions::delete_failed(&state, &who, &path.queue, path.id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/queues/{queue}/pause", tag = "queues",
    params(QueuePath),
    responses((status = 200, description = "No job starts from now on", body = Paused),
        Forbidden, QueueErrors),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
) -> Result<Json<Paused>, ApiError> {
    actions::pause(&state, &who, &path.queue).await?;
    tracing::info!(queue.name = %path.queue, "queue paused");
    Ok(Json(Paused { paused: true }))
}

#[utoipa::path(post, path = "/api/queues/{queue}/resume", tag = "queues",
    params(QueuePath),
    responses((status = 200, description = "Jobs start again", body = Paused),
        Forbidden, QueueErrors),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    OperatorCaller(who): OperatorCaller,
    ApiPath(path): ApiPath<QueuePath>,
) -> Result<Json<Paused>, ApiError> {
    actions::resume(&state, &who, &path.queue).await?;
    tracing::info!(queue.name = %path.queue, "queue resumed");
    Ok(Json(Paused { paused: false }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: Option<u32>, before: Option<&str>) -> PageQuery {
        PageQuery {
            limit,
            before: before.map(Into::into),
        }
    }

    fn field_of(r: Result<usize, ApiError>) -> String {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_page_defaults_to_50_and_accepts_what_the_document_declares() {
        assert_eq!(page(None, None).validate().expect("valid"), 50);
        assert_eq!(page(Some(1), None).validate().expect("valid"), 1);
        assert_eq!(
            page(Some(1000), Some("0-0")).validate().expect("valid"),
            1000
        );
        let widest = "9999999999999999999-9999999999999999999";
        assert_eq!(page(None, Some(widest)).validate().expect("valid"), 50);
    }

    #[test]
    fn a_limit_out_of_range_or_a_before_that_is_no_entry_id_names_the_parameter() {
        assert_eq!(field_of(page(Some(0), None).validate()), "limit");
        assert_eq!(field_of(page(Some(1001), None).validate()), "limit");
        for before in [
            "",
            "5",
            "1-",
            "-1",
            "a-1",
            "+1-1",
            "1-2-3",
            "12345678901234567890-0",
        ] {
            assert_eq!(
                field_of(page(None, Some(before)).validate()),
                "before",
                "{before:?}"
            );
        }
    }

    #[test]
    fn an_entry_id_beyond_64_bits_is_no_dead_letter_but_a_job_id_passes() {
        let path = |id: &str| DeadLetterPath {
            queue: "qr".into(),
            id: id.into(),
        };
        assert!(matches!(
            path("99999999999999999999999-0").id(),
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(
            path("1700000000000-3").id().expect("entry id"),
            "1700000000000-3"
        );
        assert_eq!(path("01JB-job").id().expect("job id"), "01JB-job");
    }
}
