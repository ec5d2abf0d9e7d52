//! The `audit_log` table: who did what to what, when, and how it ended.
//! Written through `ops::Auditor`, which records an action before it runs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::Result;

/// The outcome of an action recorded but not finished (yet, or ever: the
/// process died, or the outcome could not be written).
pub const PENDING: &str = "pending";
/// The outcome of an action that succeeded; a failed one's is its error.
pub const OK: &str = "ok";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `ops-alice (rsq_ab12cd34)`, `bootstrap-admin (API_ADMIN_TOKEN)`, `queuectl:root`.
    pub actor: String,
    /// `queue.retry`, `key.create`, ...
    pub action: String,
    /// `qr/1733-0`, `key rsq_ab12cd34 (ops-alice)`, ...
    pub target: String,
    /// `pending`, `ok`, or the error.
    pub outcome: String,
    pub detail: Option<String>,
}

/// Records an action about to run, `pending`; its id, for [`finish`].
pub async fn start(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO audit_log (actor, action, target, outcome, detail)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        actor,
        action,
        target,
        PENDING,
        detail,
    )
    .fetch_one(conn)
    .await?)
}

/// Sets the outcome of the entry `id` (cut to [`crate::MAX_ERROR_LEN`]).
pub async fn finish(conn: &mut PgConnection, id: i64, outcome: &str) -> Result<()> {
    crate::execute(
        conn,
        sqlx::query!(
            "UPDATE audit_log SET outcome = $2 WHERE id = $1",
            id,
            crate::error_text(outcome),
        ),
    )
    .await?;
    Ok(())
}

/// Entries newest first: those older than `before_id` (None: from the
/// newest), at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    Ok(sqlx::query_as!(
        AuditEntry,
        "SELECT id, at, actor, action, target, outcome, detail FROM audit_log
          WHERE $1::BIGINT IS NULL OR id < $1
          ORDER BY id DESC LIMIT $2",
        before_id,
        limit,
    )
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn entries_are_listed_newest_first_in_pages_with_their_outcome() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let mut ids = Vec::new();
        for i in 0..3 {
            let target = format!("qr/{i}-0");
            let id = start(
                &mut conn,
                "ops-alice (rsq_ab12cd34)",
                "queue.retry",
                &target,
                None,
            )
            .await
            .expect("start");
            ids.push(id);
        }
        finish(&mut conn, ids[0], OK).await.expect("finish");
        finish(&mut conn, ids[1], &"x".repeat(5000))
            .await
            .expect("finish");

        let page = list(&mut conn, None, 2).await.expect("list");
        assert_eq!(
            page.iter().map(|e| e.id).collect::<Vec<_>>(),
            [ids[2], ids[1]]
        );
        assert_eq!(page[0].outcome, PENDING);
        assert!(page[1].outcome.len() <= crate::MAX_ERROR_LEN + 3, "cut");
        let older = list(&mut conn, Some(ids[1]), 2).await.expect("list");
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].outcome, OK);
        assert_eq!(older[0].target, "qr/0-0");
        assert_eq!(older[0].actor, "ops-alice (rsq_ab12cd34)");
        drop(conn);
        db.cleanup().await;
    }
}
