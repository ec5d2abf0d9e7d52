//! The `companies` table: a company's free-text context, the original always
//! kept, and where its condensation stands.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Json, Page, PastError, Result};

/// Where a company's context condensation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ContextStatus {
    /// Waiting for the LLM.
    Pending,
    /// Short enough to use as it is: no LLM call.
    Skipped,
    /// `context` holds the condensed text.
    Processed,
    /// Every attempt failed: `context` is the original, `context_error` says why.
    Failed,
}

/// A stored company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Company {
    pub id: i64,
    pub name: String,
    /// The text in use.
    pub context: String,
    pub context_original: String,
    pub context_status: ContextStatus,
    pub context_error: Option<String>,
    /// Failures that an operator's retry reopened, oldest first.
    pub context_error_history: Json<Vec<PastError>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`Company`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns with their Rust types, then `$tail` (the
/// checked macros take only literal SQL).
macro_rules! query_companies {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Company,
            $head
                + r#"id, name, context, context_original,
                     context_status AS "context_status: ContextStatus", context_error,
                     context_error_history AS "context_error_history: Json<Vec<PastError>>",
                     created_at, updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}
// Also for `crate::lists`, which pages the same rows.
pub(crate) use query_companies;

/// Inserts a company with its original context in use; `pending` when it is
/// to be condensed, `skipped` otherwise.
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    context: &str,
    status: ContextStatus,
) -> Result<Company> {
    Ok(query_companies!(
        "INSERT INTO companies (name, context, context_original, context_status)
         VALUES ($1, $2, $2, $3) RETURNING ",
        "",
        name,
        context,
        status as _,
    )
    .fetch_one(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Company>> {
    Ok(
        query_companies!("SELECT ", " FROM companies WHERE id = $1", id)
            .fetch_optional(conn)
            .await?,
    )
}

/// A page of companies still `pending`, by `created_at` (through the partial
/// index on pending rows).
pub async fn pending_before(conn: &mut PgConnection, page: Page) -> Result<Vec<Company>> {
    Ok(crate::fetch_page!(
        query_companies,
        " FROM companies WHERE context_status = 'pending' AND created_at < $1
           AND (created_at, id) > (COALESCE($2, '-infinity'::timestamptz), COALESCE($3::bigint, 0))
         ORDER BY created_at, id LIMIT $4",
        page,
        conn
    )?)
}

/// Companies whose context condensation failed, newest first: those older than
/// company `before` (None: from the newest), at most `limit`. Read through the
/// partial index on failed rows.
pub async fn context_failed(
    conn: &mut PgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Company>> {
    Ok(query_companies!(
        "SELECT ",
        " FROM companies WHERE context_status = 'failed'
           AND id < COALESCE($1, 9223372036854775807)
         ORDER BY id DESC LIMIT $2",
        before,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Removes a company (a pending job of its then completes as a no-op).
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<bool> {
    crate::changed_one(
        conn,
        sqlx::query!("DELETE FROM companies WHERE id = $1", id),
    )
    .await
}

/// Puts the condensed text in use. Only a pending company moves: a duplicate
/// delivery finds it processed and changes nothing. False when nothing moved.
pub async fn mark_processed(conn: &mut PgConnection, id: i64, condensed: &str) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE companies SET context = $2, context_status = 'processed',
                context_error = NULL, updated_at = now()
         WHERE id = $1 AND context_status = 'pending'",
        id,
        condensed
    );
    crate::changed_one(conn, query).await
}

/// After the last attempt: the original stays in use and the error is kept. A
/// company already processed stays processed.
pub async fn mark_failed(conn: &mut PgConnection, id: i64, error: &str) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE companies SET context = context_original, context_status = 'failed',
                context_error = $2, updated_at = now()
         WHERE id = $1 AND context_status = 'pending'",
        id,
        error
    );
    crate::changed_one(conn, query).await
}

/// Puts a `failed` context back to `pending` for an operator's retry of its
/// dead letter, its error moved to `context_error_history` (a [`PastError`];
/// the original stays in use). False when the company is not failed.
pub async fn reopen_failed(conn: &mut PgConnection, id: i64) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE companies SET context_status = 'pending', context_error = NULL, updated_at = now(),
                context_error_history = context_error_history || jsonb_build_array(
                    jsonb_build_object('error', context_error, 'reopened_at', now()))
         WHERE id = $1 AND context_status = 'failed'",
        id
    );
    crate::changed_one(conn, query).await
}

/// Records the error of an attempt that will be retried, keeping the status.
pub async fn note_error(conn: &mut PgConnection, id: i64, error: &str) -> Result<()> {
    let query = sqlx::query!(
        "UPDATE companies SET context_error = $2, updated_at = now()
         WHERE id = $1 AND context_status = 'pending'",
        id,
        error
    );
    crate::execute(conn, query).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn a_condensation_replaces_the_text_in_use_once_and_keeps_the_original() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let c = insert(&mut conn, "Acme", "a long story", ContextStatus::Pending)
            .await
            .expect("insert");
        assert_eq!(
            (c.context.as_str(), c.context_original.as_str()),
            ("a long story", "a long story")
        );
        note_error(&mut conn, c.id, "llm down").await.expect("note");
        assert!(
            mark_processed(&mut conn, c.id, "short")
                .await
                .expect("processed")
        );
        let done = get(&mut conn, c.id).await.expect("get").expect("row");
        assert_eq!(done.context_status, ContextStatus::Processed);
        assert_eq!(
            (done.context.as_str(), done.context_original.as_str()),
            ("short", "a long story")
        );
        assert_eq!(done.context_error, None);
        // A duplicate delivery and a late failure change nothing.
        assert!(
            !mark_processed(&mut conn, c.id, "other")
                .await
                .expect("again")
        );
        assert!(!mark_failed(&mut conn, c.id, "late").await.expect("late"));
        assert_eq!(get(&mut conn, c.id).await.expect("get"), Some(done));
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_failed_condensation_keeps_the_original_in_use_with_the_error() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let c = insert(&mut conn, "Acme", "the original", ContextStatus::Pending)
            .await
            .expect("insert");
        assert!(
            mark_failed(&mut conn, c.id, "3 attempts: timeout")
                .await
                .expect("failed")
        );
        let failed = get(&mut conn, c.id).await.expect("get").expect("row");
        assert_eq!(failed.context_status, ContextStatus::Failed);
        assert_eq!(failed.context, "the original");
        assert_eq!(failed.context_error.as_deref(), Some("3 attempts: timeout"));
        assert!(failed.context_error_history.is_empty());
        assert!(reopen_failed(&mut conn, c.id).await.expect("reopen"));
        assert!(!reopen_failed(&mut conn, c.id).await.expect("once"));
        let reopened = get(&mut conn, c.id).await.expect("get").expect("row");
        assert_eq!(
            (reopened.context_status, reopened.context_error.as_deref()),
            (ContextStatus::Pending, None)
        );
        assert_eq!(
            reopened.context_error_history[0].error.as_deref(),
            Some("3 attempts: timeout")
        );
        assert!(
            mark_failed(&mut conn, c.id, "again")
                .await
                .expect("failed again")
        );
        let skipped = insert(&mut conn, "Tiny", "short", ContextStatus::Skipped)
            .await
            .expect("insert");
        let cutoff = Utc::now() + chrono::Duration::seconds(1);
        assert!(
            pending_before(
                &mut conn,
                Page {
                    before: cutoff,
                    after: None,
                    limit: 10
                }
            )
            .await
            .expect("pending")
            .is_empty()
        );
        assert!(
            !mark_processed(&mut conn, skipped.id, "x")
                .await
                .expect("skipped stays")
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn only_failed_contexts_are_listed_newest_first_with_their_error() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let mut failed = Vec::new();
        for name in ["A", "B", "C"] {
            let c = insert(&mut conn, name, "a long story", ContextStatus::Pending)
                .await
                .expect("insert");
            if name != "B" {
                assert!(
                    mark_failed(&mut conn, c.id, &format!("{name}: llm timeout"))
                        .await
                        .expect("fail")
                );
                failed.push(c.id);
            }
        }
        let listed = context_failed(&mut conn, None, 10).await.expect("failed");
        assert_eq!(
            listed.iter().map(|c| c.id).collect::<Vec<_>>(),
            [failed[1], failed[0]]
        );
        assert_eq!(listed[0].context_error.as_deref(), Some("C: llm timeout"));
        let page = context_failed(&mut conn, Some(failed[1]), 10)
            .await
            .expect("page");
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [failed[0]]);
        assert!(reopen_failed(&mut conn, failed[1]).await.expect("reopen"));
        let listed = context_failed(&mut conn, None, 10).await.expect("failed");
        assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [failed[0]]);
        drop(conn);
        db.cleanup().await;
    }
}
