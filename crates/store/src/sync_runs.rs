//! The `sync_runs` table: one row per run of the Wispro customer sync, at most
//! one active (queued or running) at a time, enforced by the database.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Result, StoreError};

/// How many error reasons a run keeps (its counters count them all).
pub const MAX_ERROR_SAMPLES: i32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SyncRun {
    pub id: i64,
    pub status: SyncStatus,
    pub requested_by: String,
    pub per_page: i32,
    pub total_pages: Option<i32>,
    pub pages_done: i32,
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub errors: i32,
    pub error_samples: sqlx::types::Json<Vec<String>>,
    pub failure: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one page of customers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub errors: i32,
    /// Reasons of this page's errors and skips worth showing, oldest first.
    pub samples: Vec<String>,
}

/// A run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("sync run {0} is already active")]
    Active(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

macro_rules! columns {
    () => {
        "id, status, requested_by, per_page, total_pages, pages_done, created, updated, \
         skipped, errors, error_samples, failure, started_at, finished_at, created_at, updated_at"
    };
}

/// Creates a `queued` run, or names the active one.
pub async fn start(
    conn: &mut PgConnection,
    requested_by: &str,
    per_page: i32,
) -> Result<SyncRun, StartError> {
    let inserted = sqlx::query_as::<_, SyncRun>(concat!(
        "INSERT INTO sync_runs (requested_by, per_page) VALUES ($1, $2) RETURNING ",
        columns!()
    ))
    .bind(requested_by)
    .bind(per_page)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx);
    match inserted {
        Ok(run) => Ok(run),
        Err(StoreError::Duplicate { constraint }) if constraint == "sync_runs_one_active" => {
            // The active run may finish in between: then this start may try again.
            match active(conn).await? {
                Some(run) => Err(StartError::Active(run.id)),
                None => Err(StartError::Store(StoreError::Duplicate { constraint })),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The dedup key of a run's job (unique until settled), used by the gateway
/// and the reconciler alike.
pub fn job_key(id: i64) -> String {
    format!("wispro-sync:run:{id}")
}

/// The active run if it has not moved since `before` (its job may be lost).
pub async fn active_since(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<Option<SyncRun>> {
    Ok(sqlx::query_as::<_, SyncRun>(concat!(
        "SELECT ",
        columns!(),
        " FROM sync_runs WHERE status IN ('queued', 'running') AND updated_at < $1"
    ))
    .bind(before)
    .fetch_optional(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<SyncRun>> {
    Ok(sqlx::query_as::<_, SyncRun>(concat!(
        "SELECT ",
        columns!(),
        " FROM sync_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The queued or running run, if any.
pub async fn active(conn: &mut PgConnection) -> Result<Option<SyncRun>> {
    Ok(sqlx::query_as::<_, SyncRun>(concat!(
        "SELECT ",
        columns!(),
        " FROM sync_runs WHERE status IN ('queued', 'running')"
    ))
    .fetch_optional(conn)
    .await?)
}

/// Marks the run running with its page count (again after a resume; the first
/// start time is kept). False when it is no longer active.
pub async fn mark_running(conn: &mut PgConnection, id: i64, total_pages: i32) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE sync_runs SET status = 'running', total_pages = $2,
                started_at = COALESCE(started_at, now()), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id)
    .bind(total_pages)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Adds a finished page's counts, once: only when `page` follows the last
/// page done, so a page counted before a crash is not counted twice. False
/// when nothing was recorded.
pub async fn record_page(
    conn: &mut PgConnection,
    id: i64,
    page: i32,
    counts: &PageCounts,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE sync_runs SET pages_done = $2,
                created = created + $3, updated = updated + $4,
                skipped = skipped + $5, errors = errors + $6,
                error_samples = (
                    SELECT COALESCE(jsonb_agg(s ORDER BY n), '[]'::jsonb) FROM (
                        SELECT s, n FROM jsonb_array_elements(error_samples || $7::jsonb)
                            WITH ORDINALITY AS t(s, n)
                        ORDER BY n LIMIT $8
                    ) kept
                ),
                updated_at = now()
         WHERE id = $1 AND status = 'running' AND pages_done = $2 - 1",
    )
    .bind(id)
    .bind(page)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.skipped)
    .bind(counts.errors)
    .bind(sqlx::types::Json(&counts.samples))
    .bind(MAX_ERROR_SAMPLES)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Ends an active run as `completed`, or `failed` with the reason.
pub async fn finish(conn: &mut PgConnection, id: i64, failure: Option<&str>) -> Result<bool> {
    let status = if failure.is_some() {
        SyncStatus::Failed
    } else {
        SyncStatus::Completed
    };
    let r = sqlx::query(
        "UPDATE sync_runs SET status = $2, failure = $3, finished_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id)
    .bind(status)
    .bind(failure)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn only_one_run_is_active_at_a_time_and_a_second_start_names_it() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let first = start(&mut conn, "admin", 100).await.expect("start");
        assert_eq!(first.status, SyncStatus::Queued);
        match start(&mut conn, "admin", 100).await {
            Err(StartError::Active(id)) => assert_eq!(id, first.id),
            other => panic!("a second active run: {other:?}"),
        }
        assert!(mark_running(&mut conn, first.id, 3).await.expect("running"));
        assert!(matches!(
            start(&mut conn, "other", 100).await,
            Err(StartError::Active(_))
        ));
        assert!(finish(&mut conn, first.id, None).await.expect("finish"));
        let second = start(&mut conn, "admin", 50)
            .await
            .expect("a new run once it ended");
        assert_ne!(second.id, first.id);
        assert!(
            finish(&mut conn, second.id, Some("wispro: 401 Unauthorized"))
                .await
                .expect("fail")
        );
        let failed = get(&mut conn, second.id).await.expect("get").expect("row");
        assert_eq!(failed.status, SyncStatus::Failed);
        assert_eq!(failed.failure.as_deref(), Some("wispro: 401 Unauthorized"));
        assert!(failed.finished_at.is_some());
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_page_is_counted_once_and_in_order_and_samples_are_bounded() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let run = start(&mut conn, "admin", 100).await.expect("start");
        assert!(mark_running(&mut conn, run.id, 3).await.expect("running"));
        let page = |n: usize| PageCounts {
            created: 2,
            updated: 1,
            skipped: 1,
            errors: 1,
            samples: (0..n).map(|i| format!("reason {i}")).collect(),
        };
        assert!(
            record_page(&mut conn, run.id, 1, &page(15))
                .await
                .expect("page 1")
        );
        // Redelivered after a crash: page 1 again is not counted; page 3 before 2 neither.
        assert!(
            !record_page(&mut conn, run.id, 1, &page(15))
                .await
                .expect("again")
        );
        assert!(
            !record_page(&mut conn, run.id, 3, &page(1))
                .await
                .expect("skipped ahead")
        );
        assert!(
            record_page(&mut conn, run.id, 2, &page(15))
                .await
                .expect("page 2")
        );
        let r = get(&mut conn, run.id).await.expect("get").expect("row");
        assert_eq!(
            (r.pages_done, r.created, r.updated, r.skipped, r.errors),
            (2, 4, 2, 2, 2)
        );
        assert_eq!(r.error_samples.0.len(), MAX_ERROR_SAMPLES as usize);
        assert_eq!(
            r.error_samples.0[0], "reason 0",
            "the first reasons are kept"
        );
        // A resumed run keeps its first start time.
        let started = r.started_at;
        assert!(mark_running(&mut conn, run.id, 3).await.expect("resume"));
        assert_eq!(
            get(&mut conn, run.id)
                .await
                .expect("get")
                .expect("row")
                .started_at,
            started
        );
        drop(conn);
        db.cleanup().await;
    }
}
