//! The Wispro customer sync, started and followed by an admin.
//!
//! A start is a `sync_runs` row first and a job second: the row is committed
//! `queued`, then a `wispro.sync` job naming it is enqueued, unique until settled.
//! The database allows one active (queued or running) run at a time, so two
//! concurrent starts cannot both succeed; the second answers 409 with the id of
//! the run it lost to. A failed enqueue still answers 202: the row is the record,
//! and the sync-worker's reconciler re-enqueues runs left queued.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::sync_runs::{self, StartError, SyncRun, SyncStatus};
use tracing::{Instrument, info, warn};

use crate::AppState;
use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorBody, SyncConflict};
use crate::params::ApiPath;

/// Who started a run: the bearer role, as the gateway knows no user identity.
pub const REQUESTED_BY_ADMIN: &str = "admin";

/// How often a start is tried when the run it collided with ended in between.
const START_ATTEMPTS: usize = 3;

/// `POST /api/users/sync-wispro-all`, `GET /api/sync-runs/{id}`; admin only.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/sync-wispro-all", post(start))
        .route("/api/sync-runs/{id}", routing::get(get))
}

/// Where a sync run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncRunStatus {
    /// Waiting for the sync-worker.
    Queued,
    /// Pages are being fetched; `pages_done` of `total_pages`.
    Running,
    /// Every page was done.
    Completed,
    /// Stopped for good; `failure` says why.
    Failed,
}

impl From<SyncStatus> for SyncRunStatus {
    fn from(s: SyncStatus) -> Self {
        match s {
            SyncStatus::Queued => Self::Queued,
            SyncStatus::Running => Self::Running,
            SyncStatus::Completed => Self::Completed,
            SyncStatus::Failed => Self::Failed,
        }
    }
}

/// A run just started.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"run_id": 7, "status": "queued"}))]
pub struct SyncRunStarted {
    pub run_id: i64,
    /// Always `queued`.
    pub status: SyncRunStatus,
}

/// A sync run and its counts so far.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": 7, "status": "running", "requested_by": "admin", "per_page": 100,
    "pages_done": 3, "total_pages": 12, "created": 250, "updated": 40, "skipped": 8,
    "errors": 2, "error_samples": ["customer 913: no document", "customer 77: invalid email"],
    "failure": null, "started_at": "2025-01-01T10:00:05Z", "finished_at": null,
    "created_at": "2025-01-01T10:00:00Z", "updated_at": "2025-01-01T10:03:12Z"
}))]
pub struct SyncRunResponse {
    pub id: i64,
    pub status: SyncRunStatus,
    /// Who started it (`admin`).
    pub requested_by: String,
    /// Customers asked of Wispro per page (`WISPRO_PER_PAGE` at the start).
    pub per_page: i32,
    pub pages_done: i32,
    /// Null until the first page told how many there are.
    pub total_pages: Option<i32>,
    /// Customers created, updated, skipped and failed so far.
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub errors: i32,
    /// The first few reasons of errors and skips (the counters count them all).
    pub error_samples: Vec<String>,
    /// Why the run failed, when it did.
    pub failure: Option<String>,
    /// Null until the worker starts it.
    pub started_at: Option<DateTime<Utc>>,
    /// Null until it completes or fails.
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SyncRun> for SyncRunResponse {
    fn from(r: SyncRun) -> Self {
        Self {
            id: r.id,
            status: r.status.into(),
            requested_by: r.requested_by,
            per_page: r.per_page,
            pages_done: r.pages_done,
            total_pages: r.total_pages,
            created: r.created,
            updated: r.updated,
            skipped: r.skipped,
            errors: r.errors,
            error_samples: r.error_samples.0,
            failure: r.failure,
            started_at: r.started_at,
            finished_at: r.finished_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Starts a sync of every Wispro customer and answers at once.
#[utoipa::path(
    post,
    path = "/api/users/sync-wispro-all",
    tag = "sync",
    responses(
        (status = 202, description = "A run is `queued` and its job enqueued (also when the queue is down: it is enqueued later); `Location` is the run to follow", body = SyncRunStarted,
            headers(("Location" = String, description = "/api/sync-runs/{run_id}"))),
        (status = 403, description = "Not the admin token (`forbidden`)", body = ErrorBody),
        (status = 409, description = "A run is already queued or running (`conflict`); `run_id` names it and nothing was enqueued", body = SyncConflict),
        (status = 503, description = "`timeout`: the request outlasted API_REQUEST_TIMEOUT; the run may still have started. Never because the queue is down: the run is stored and its job follows", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Response, ApiError> {
    // Stored and enqueued in a task of its own, as persons are: a client hanging
    // up drops the handler, and a drop between the INSERT and the XADD would leave
    // the run to the reconciler. The task keeps the request span and its trace.
    let run = tokio::spawn(start_run(state).instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("sync start task failed: {e}")))??;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/sync-runs/{}", run.id))],
        Json(SyncRunStarted {
            run_id: run.id,
            status: run.status.into(),
        }),
    )
        .into_response())
}

/// Commits a queued run, then enqueues its job. A failed enqueue is logged, not
/// answered: the row is the record and the reconciler enqueues it later.
async fn start_run(state: AppState) -> Result<SyncRun, ApiError> {
    let per_page = i32::from(state.config.wispro_per_page);
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    let mut attempt = 1;
    let run = loop {
        match sync_runs::start(&mut conn, REQUESTED_BY_ADMIN, per_page).await {
            Ok(run) => break run,
            Err(StartError::Active(id)) => return Err(ApiError::SyncActive(id)),
            // The run this start collided with ended before it could be named.
            Err(StartError::Store(store::StoreError::Duplicate { .. }))
                if attempt < START_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(StartError::Store(e)) => return Err(e.into()),
        }
    };
    drop(conn);
    // Committed: from here on the start succeeds. The key is unique until the
    // job settles, so a reconciler re-enqueueing this run adds no second job.
    match state.enqueuer.enqueue(jobs::rows::sync_run_job(&run)).await {
        Ok(enqueued) => info!(
            sync_run.id = run.id,
            sync_run.per_page = per_page,
            job.id = enqueued.id(),
            "sync run queued, job enqueued"
        ),
        Err(e) => warn!(
            sync_run.id = run.id,
            sync_run.per_page = per_page,
            error = format!("{:#}", anyhow::Error::from(e)),
            "sync run queued, but enqueueing its job failed; the reconciler will enqueue it"
        ),
    }
    Ok(run)
}

#[utoipa::path(
    get,
    path = "/api/sync-runs/{id}",
    operation_id = "get_sync_run",
    tag = "sync",
    params(("id" = i64, Path, description = "Sync run id", example = 1)),
    responses(
        (status = 200, description = "The run: where it stands and its counts so far", body = SyncRunResponse),
        (status = 403, description = "Not the admin token (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sync run (`not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SyncRunResponse>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    sync_runs::get(&mut conn, id)
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no sync run with id {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_serialized_with_every_documented_field_and_nulls_until_known() {
        let now = Utc::now();
        let run = SyncRun {
            id: 3,
            status: SyncStatus::Queued,
            requested_by: "admin".into(),
            per_page: 100,
            total_pages: None,
            pages_done: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            errors: 0,
            error_samples: sqlx::types::Json(vec!["customer 1: no document".into()]),
            failure: None,
            started_at: None,
            finished_at: None,
            created_at: now,
            updated_at: now,
        };
        let v = serde_json::to_value(SyncRunResponse::from(run)).expect("json");
        assert_eq!(v["status"], "queued");
        assert_eq!(
            v["error_samples"],
            serde_json::json!(["customer 1: no document"])
        );
        for null in ["total_pages", "failure", "started_at", "finished_at"] {
            assert!(v[null].is_null(), "{null}: {v}");
        }
        assert_eq!(v.as_object().expect("object").len(), 16);
    }

    #[test]
    fn every_store_status_has_its_lowercase_name() {
        for (s, name) in [
            (SyncStatus::Queued, "queued"),
            (SyncStatus::Running, "running"),
            (SyncStatus::Completed, "completed"),
            (SyncStatus::Failed, "failed"),
        ] {
            assert_eq!(
                serde_json::to_value(SyncRunStatus::from(s)).expect("json"),
                name
            );
        }
    }
}
