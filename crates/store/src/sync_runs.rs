//! The `sync_runs` table: one row per run of the Wispro customer sync, at most
//! one active (queued or running) at a time, enforced by the database. A run
//! reads Wispro's pages in passes ([`PassState`]): another pass follows one
//! during which Wispro's customer count changed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Json, Result, StoreError};

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
    pub error_samples: Json<Vec<String>>,
    pub failure: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a run is in its passes over Wispro's pages (`pages_done` counts the
/// pages of the pass under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct PassState {
    /// 1 for the first pass.
    pub pass: i32,
    /// Wispro's `total_records` on the pass's first page; `None` before it.
    pub total_records: Option<i64>,
    /// Whether a later page of the pass gave another `total_records`.
    pub changed: bool,
}

impl PassState {
    /// Takes in the `total_records` of a page just read; true once a page of
    /// the pass gave another count than its first (the pass has to be
    /// followed by another).
    pub fn see(&mut self, total_records: i64) -> bool {
        match self.total_records {
            None => self.total_records = Some(total_records),
            Some(first) => self.changed |= first != total_records,
        }
        self.changed
    }
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

/// A run could not start (or start again).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("sync run {0} is already active")]
    Active(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `sqlx::query_as!` of [`SyncRun`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns with their Rust types, then `$tail` (the
/// checked macros take only literal SQL).
macro_rules! query_runs {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            SyncRun,
            $head
                + r#"id, status AS "status: SyncStatus", requested_by, per_page, total_pages,
                     pages_done, created, updated, skipped, errors,
                     error_samples AS "error_samples: Json<Vec<String>>", failure,
                     started_at, finished_at, created_at, updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}

/// Creates a `queued` run, or names the active one.
pub async fn start(
    conn: &mut PgConnection,
    requested_by: &str,
    per_page: i32,
) -> Result<SyncRun, StartError> {
    let inserted = query_runs!(
        "INSERT INTO sync_runs (requested_by, per_page) VALUES ($1, $2) RETURNING ",
        "",
        requested_by,
        per_page,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx);
    match inserted {
        Ok(run) => Ok(run),
        Err(e) => Err(conflict(conn, e).await),
    }
}

/// `e` as a [`StartError`]: a second active run names the active one. (The
/// active run may end in between: then the caller may try again.)
async fn conflict(conn: &mut PgConnection, e: StoreError) -> StartError {
    match e {
        StoreError::Duplicate { constraint } if constraint == "sync_runs_one_active" => {
            match active(conn).await {
                Ok(Some(run)) => StartError::Active(run.id),
                Ok(None) => StartError::Store(StoreError::Duplicate { constraint }),
                Err(e) => e.into(),
            }
        }
        e => e.into(),
    }
}

/// The active run if it has not moved since `before` (its job may be lost).
pub async fn active_since(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<Option<SyncRun>> {
    Ok(query_runs!(
        "SELECT ",
        " FROM sync_runs WHERE status IN ('queued', 'running') AND updated_at < $1",
        before
    )
    .fetch_optional(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<SyncRun>> {
    Ok(query_runs!("SELECT ", " FROM sync_runs WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// The queued or running run, if any.
pub async fn active(conn: &mut PgConnection) -> Result<Option<SyncRun>> {
    Ok(query_runs!(
        "SELECT ",
        " FROM sync_runs WHERE status IN ('queued', 'running')"
    )
    .fetch_optional(conn)
    .await?)
}

/// Runs newest first: those older than run `before` (None: from the newest),
/// at most `limit` (the dashboard's list of runs).
pub async fn recent(
    conn: &mut PgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SyncRun>> {
    Ok(query_runs!(
        "SELECT ",
        " FROM sync_runs WHERE id < COALESCE($1, 9223372036854775807)
         ORDER BY id DESC LIMIT $2",
        before,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Marks the run running with its page count (again after a resume; the first
/// start time is kept). False when it is no longer active.
pub async fn mark_running(conn: &mut PgConnection, id: i64, total_pages: i32) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE sync_runs SET status = 'running', total_pages = $2,
                started_at = COALESCE(started_at, now()), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
        id,
        total_pages
    );
    crate::changed_one(conn, query).await
}

/// The run's pass state (`None` when the run is gone).
pub async fn pass_state(conn: &mut PgConnection, id: i64) -> Result<Option<PassState>> {
    Ok(sqlx::query_as!(
        PassState,
        "SELECT pass, pass_total_records AS total_records, pass_changed AS changed
         FROM sync_runs WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Adds a finished page's counts and the pass state after it, once: only when
/// `page` follows the last page done in the same pass, so a page counted
/// before a crash is not counted twice. Samples are kept while there is room
/// for them ([`MAX_ERROR_SAMPLES`]). False when nothing was recorded.
pub async fn record_page(
    conn: &mut PgConnection,
    id: i64,
    state: &PassState,
    page: i32,
    counts: &PageCounts,
) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE sync_runs SET pages_done = $2,
                created = created + $3, updated = updated + $4,
                skipped = skipped + $5, errors = errors + $6,
                error_samples = error_samples || (
                    SELECT COALESCE(jsonb_agg(s ORDER BY n), '[]'::jsonb)
                    FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS t(s, n)
                    WHERE n <= $8 - jsonb_array_length(sync_runs.error_samples)
                ),
                pass_total_records = $10, pass_changed = $11,
                updated_at = now()
         WHERE id = $1 AND status = 'running' AND pass = $9 AND pages_done = $2 - 1",
        id,
        page,
        counts.created,
        counts.updated,
        counts.skipped,
        counts.errors,
        Json(&counts.samples) as _,
        MAX_ERROR_SAMPLES,
        state.pass,
        state.total_records,
        state.changed,
    );
    crate::changed_one(conn, query).await
}

/// Ends pass `pass` and starts the next from page 1. False when the run is no
/// longer running in that pass.
pub async fn next_pass(conn: &mut PgConnection, id: i64, pass: i32) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE sync_runs SET pass = pass + 1, pages_done = 0, pass_total_records = NULL,
                pass_changed = false, updated_at = now()
         WHERE id = $1 AND status = 'running' AND pass = $2",
        id,
        pass
    );
    crate::changed_one(conn, query).await
}

/// Adds `note` to the run's samples, room or not (what the run itself says:
/// an earlier failure, passes that ran out).
pub async fn add_note(conn: &mut PgConnection, id: i64, note: &str) -> Result<()> {
    let query = sqlx::query!(
        "UPDATE sync_runs SET error_samples = error_samples || jsonb_build_array($2::text),
                updated_at = now()
         WHERE id = $1",
        id,
        note
    );
    crate::execute(conn, query).await?;
    Ok(())
}

/// Puts a `failed` run back to `running` where it stopped (its pages, pass and
/// counts kept), its failure moved to its samples as `note`: what a dead
/// letter retried by an operator does. False when the run was not `failed`;
/// [`StartError::Active`] when another run is active (one at a time).
pub async fn reopen(conn: &mut PgConnection, id: i64, note: &str) -> Result<bool, StartError> {
    let reopened = sqlx::query!(
        "UPDATE sync_runs SET status = 'running', failure = NULL, finished_at = NULL,
                error_samples = error_samples || jsonb_build_array($2::text),
                updated_at = now()
         WHERE id = $1 AND status = 'failed'",
        id,
        note
    )
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from_sqlx);
    match reopened {
        Ok(r) => Ok(r.rows_affected() == 1),
        Err(e) => Err(conflict(conn, e).await),
    }
}

/// Ends an active run as `completed`, or `failed` with the reason.
pub async fn finish(conn: &mut PgConnection, id: i64, failure: Option<&str>) -> Result<bool> {
    let status = if failure.is_some() {
        SyncStatus::Failed
    } else {
        SyncStatus::Completed
    };
    let query = sqlx::query!(
        "UPDATE sync_runs SET status = $2, failure = $3, finished_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
        id,
        status as _,
        failure
    );
    crate::changed_one(conn, query).await
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
        let state = pass_state(&mut conn, run.id)
            .await
            .expect("q")
            .expect("row");
        let page = |n: usize| PageCounts {
            created: 2,
            updated: 1,
            skipped: 1,
            errors: 1,
            samples: (0..n).map(|i| format!("reason {i}")).collect(),
        };
        assert!(
            record_page(&mut conn, run.id, &state, 1, &page(15))
                .await
                .expect("page 1")
        );
        // Redelivered after a crash: page 1 again is not counted; page 3 before 2 neither.
        assert!(
            !record_page(&mut conn, run.id, &state, 1, &page(15))
                .await
                .expect("again")
        );
        assert!(
            !record_page(&mut conn, run.id, &state, 3, &page(1))
                .await
                .expect("skipped ahead")
        );
        assert!(
            record_page(&mut conn, run.id, &state, 2, &page(15))
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
    #[tokio::test]
    async fn a_pass_that_saw_the_count_change_is_followed_by_another_from_page_one() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let run = start(&mut conn, "admin", 100).await.expect("start");
        assert!(mark_running(&mut conn, run.id, 3).await.expect("running"));
        let mut state = pass_state(&mut conn, run.id)
            .await
            .expect("q")
            .expect("row");
        assert_eq!(
            state,
            PassState {
                pass: 1,
                total_records: None,
                changed: false
            }
        );
        assert!(!state.see(250), "the first page sets the count");
        assert!(
            record_page(&mut conn, run.id, &state, 1, &PageCounts::default())
                .await
                .expect("page 1")
        );
        assert!(state.see(280), "a later page with another count");
        assert!(state.see(250), "and the pass stays changed");
        assert!(
            record_page(&mut conn, run.id, &state, 2, &PageCounts::default())
                .await
                .expect("page 2")
        );
        // What a resumed run reads back.
        assert_eq!(
            pass_state(&mut conn, run.id).await.expect("q"),
            Some(PassState {
                pass: 1,
                total_records: Some(250),
                changed: true
            })
        );
        assert!(next_pass(&mut conn, run.id, 1).await.expect("next pass"));
        assert!(!next_pass(&mut conn, run.id, 1).await.expect("once"));
        let second = pass_state(&mut conn, run.id)
            .await
            .expect("q")
            .expect("row");
        assert_eq!(
            (second.pass, second.total_records, second.changed),
            (2, None, false)
        );
        assert_eq!(
            get(&mut conn, run.id)
                .await
                .expect("q")
                .expect("row")
                .pages_done,
            0
        );
        // A page of the first pass, redelivered late, is not counted in the second.
        assert!(
            !record_page(&mut conn, run.id, &state, 1, &PageCounts::default())
                .await
                .expect("stale")
        );
        assert!(
            record_page(&mut conn, run.id, &second, 1, &PageCounts::default())
                .await
                .expect("page 1 again")
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_failed_run_reopens_where_it_stopped_unless_another_run_is_active() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let run = start(&mut conn, "admin", 100).await.expect("start");
        assert!(mark_running(&mut conn, run.id, 5).await.expect("running"));
        let state = pass_state(&mut conn, run.id)
            .await
            .expect("q")
            .expect("row");
        let samples = PageCounts {
            samples: (0..MAX_ERROR_SAMPLES)
                .map(|i| format!("reason {i}"))
                .collect(),
            ..PageCounts::default()
        };
        assert!(
            record_page(&mut conn, run.id, &state, 1, &samples)
                .await
                .expect("page")
        );
        assert!(
            finish(&mut conn, run.id, Some("wispro: 500"))
                .await
                .expect("fail")
        );
        assert!(
            !reopen(&mut conn, run.id + 1, "n/a")
                .await
                .expect("no such run")
        );

        // Another run started meanwhile: this one stays failed, naming it.
        let other = start(&mut conn, "admin", 100).await.expect("another run");
        match reopen(&mut conn, run.id, "earlier: wispro: 500").await {
            Err(StartError::Active(id)) => assert_eq!(id, other.id),
            r => panic!("reopened beside an active run: {r:?}"),
        }
        assert!(finish(&mut conn, other.id, None).await.expect("finish"));

        assert!(
            reopen(&mut conn, run.id, "earlier: wispro: 500")
                .await
                .expect("reopen")
        );
        let reopened = get(&mut conn, run.id).await.expect("q").expect("row");
        assert_eq!(reopened.status, SyncStatus::Running);
        assert_eq!((reopened.failure, reopened.finished_at), (None, None));
        assert_eq!(reopened.pages_done, 1, "where it stopped");
        assert_eq!(
            reopened.error_samples.0.last().map(String::as_str),
            Some("earlier: wispro: 500"),
            "the earlier failure is kept, room or not"
        );
        // The samples stay full of the first reasons: a new page adds none.
        let more = PageCounts {
            samples: vec!["late reason".into()],
            ..PageCounts::default()
        };
        assert!(
            record_page(&mut conn, run.id, &state, 2, &more)
                .await
                .expect("page")
        );
        let after = get(&mut conn, run.id).await.expect("q").expect("row");
        assert_eq!(after.error_samples.0.len(), MAX_ERROR_SAMPLES as usize + 1);
        assert!(
            !reopen(&mut conn, run.id, "x")
                .await
                .expect("running already")
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn recent_runs_come_newest_first_a_page_at_a_time() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let run = start(&mut conn, "admin", 100).await.expect("start");
            assert!(finish(&mut conn, run.id, None).await.expect("finish"));
            ids.push(run.id);
        }
        let first = recent(&mut conn, None, 2).await.expect("page 1");
        assert_eq!(
            first.iter().map(|r| r.id).collect::<Vec<_>>(),
            [ids[2], ids[1]]
        );
        let next = recent(&mut conn, Some(ids[1]), 2).await.expect("page 2");
        assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0]]);
        assert_eq!(next[0].status, SyncStatus::Completed);
        drop(conn);
        db.cleanup().await;
    }
}
