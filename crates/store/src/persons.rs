//! The `persons` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Json, Page, PastError, Result, StoreError};

/// Where a person's QR code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum QrStatus {
    Pending,
    Ready,
    Failed,
}

/// A stored person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub document: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub qr_content: String,
    pub qr_path: String,
    pub qr_status: QrStatus,
    pub qr_error: Option<String>,
    /// Failures that an operator's retry reopened, oldest first.
    pub qr_error_history: Json<Vec<PastError>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A person to insert; the QR content and path are decided by the caller.
#[derive(Debug, Clone)]
pub struct NewPerson<'a> {
    pub document: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: Option<&'a str>,
    pub qr_content: &'a str,
    pub qr_path: &'a str,
}

/// `sqlx::query_as!` of [`Person`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns with their Rust types, then `$tail`. The
/// checked macros take only literal SQL, so the list is spliced in here.
macro_rules! query_persons {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Person,
            $head
                + r#"id, document, first_name, last_name, email, qr_content, qr_path,
                     qr_status AS "qr_status: QrStatus", qr_error,
                     qr_error_history AS "qr_error_history: Json<Vec<PastError>>",
                     created_at, updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}
// Also for `crate::lists`, which pages the same rows.
pub(crate) use query_persons;

/// Inserts a person with `qr_status = pending`; a known document is
/// [`StoreError::Duplicate`].
pub async fn insert(conn: &mut PgConnection, p: &NewPerson<'_>) -> Result<Person> {
    query_persons!(
        "INSERT INTO persons (document, first_name, last_name, email, qr_content, qr_path)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        "",
        p.document,
        p.first_name,
        p.last_name,
        p.email,
        p.qr_content,
        p.qr_path,
    )
    .fetch_one(conn)
    .await
    .map_err(StoreError::from_sqlx)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Person>> {
    Ok(query_persons!("SELECT ", " FROM persons WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// A page of persons still `pending`, by `created_at` (the reconciler's
/// pages of its batch; the scan uses the partial index on pending rows).
pub async fn pending_before(conn: &mut PgConnection, page: Page) -> Result<Vec<Person>> {
    Ok(crate::fetch_page!(
        query_persons,
        " FROM persons WHERE qr_status = 'pending' AND created_at < $1
           AND (created_at, id) > (COALESCE($2, '-infinity'::timestamptz), COALESCE($3::bigint, 0))
         ORDER BY created_at, id LIMIT $4",
        page,
        conn
    )?)
}

/// Removes a person (a pending QR job of theirs then completes as a no-op).
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<bool> {
    crate::changed_one(conn, sqlx::query!("DELETE FROM persons WHERE id = $1", id)).await
}

/// Marks the QR rendered. Idempotent; false when the person does not exist.
pub async fn mark_qr_ready(conn: &mut PgConnection, id: i64) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE persons SET qr_status = 'ready', qr_error = NULL, updated_at = now()
         WHERE id = $1",
        id
    );
    crate::changed_one(conn, query).await
}

/// What the QR worker reads of a person before rendering its QR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrTarget {
    pub id: i64,
    pub qr_path: String,
    pub qr_status: QrStatus,
}

/// The [`QrTarget`] of each of `ids` that exists, in one query (a batch of QR
/// jobs); ids of persons that are gone are missing from the answer.
pub async fn qr_targets(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<QrTarget>> {
    Ok(sqlx::query_as!(
        QrTarget,
        r#"SELECT id, qr_path, qr_status AS "qr_status: QrStatus"
           FROM persons WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(conn)
    .await?)
}

/// [`mark_qr_ready`] for a batch in one statement: the ids that were marked
/// (those that still exist). Idempotent.
pub async fn mark_qr_ready_many(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        "UPDATE persons SET qr_status = 'ready', qr_error = NULL, updated_at = now()
         WHERE id = ANY($1) RETURNING id",
        ids
    )
    .fetch_all(conn)
    .await?)
}

/// Records the last error of a failed rendering. A QR already `ready` stays ready:
/// a late failure of a duplicate delivery must not hide a good file.
pub async fn mark_qr_failed(conn: &mut PgConnection, id: i64, error: &str) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE persons SET qr_status = 'failed', qr_error = $2, updated_at = now()
         WHERE id = $1 AND qr_status <> 'ready'",
        id,
        error
    );
    crate::changed_one(conn, query).await
}

/// Puts a `failed` QR back to `pending` for an operator's retry of its dead
/// letter, its error moved to `qr_error_history` (a [`PastError`]). False when
/// the person is not failed (already reopened by an earlier attempt, ready, or
/// gone).
pub async fn reopen_failed_qr(conn: &mut PgConnection, id: i64) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE persons SET qr_status = 'pending', qr_error = NULL, updated_at = now(),
                qr_error_history = qr_error_history || jsonb_build_array(
                    jsonb_build_object('error', qr_error, 'reopened_at', now()))
         WHERE id = $1 AND qr_status = 'failed'",
        id
    );
    crate::changed_one(conn, query).await
}

/// Records the error of an attempt that will be retried, keeping the status.
pub async fn note_qr_error(conn: &mut PgConnection, id: i64, error: &str) -> Result<()> {
    let query = sqlx::query!(
        "UPDATE persons SET qr_error = $2, updated_at = now()
         WHERE id = $1 AND qr_status = 'pending'",
        id,
        error
    );
    crate::execute(conn, query).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::Postgres;
    use sqlx::pool::PoolConnection;

    use super::*;
    use crate::testing::TestDb;

    fn person<'a>(document: &'a str, path: &'a str) -> NewPerson<'a> {
        NewPerson {
            document,
            first_name: "Ana",
            last_name: "Pérez",
            email: Some("ana@example.com"),
            qr_content: "PERSON:V-1",
            qr_path: path,
        }
    }

    /// Stores the person of `document`, its QR at `qr/<document>.png`.
    async fn stored(conn: &mut PgConnection, document: &str) -> Person {
        let path = format!("qr/{document}.png");
        insert(conn, &person(document, &path))
            .await
            .expect("insert")
    }

    /// A database of the test's own (to clean up) holding the person of `document`.
    async fn with_person(document: &str) -> (TestDb, PoolConnection<Postgres>, Person) {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let p = stored(&mut conn, document).await;
        (db, conn, p)
    }

    #[tokio::test]
    async fn a_person_is_stored_pending_and_a_second_with_the_same_document_is_a_duplicate() {
        let (db, mut conn, p) = with_person("V-1").await;
        assert_eq!(p.qr_status, QrStatus::Pending);
        assert_eq!(p.qr_path, "qr/V-1.png");
        assert_eq!(get(&mut conn, p.id).await.expect("get"), Some(p.clone()));
        let err = insert(&mut conn, &person("V-1", "qr/other.png"))
            .await
            .expect_err("duplicate");
        assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn pending_persons_older_than_the_cutoff_come_oldest_first_in_bounded_batches() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(stored(&mut conn, &format!("P-{i}")).await.id);
        }
        assert!(mark_qr_ready(&mut conn, ids[1]).await.expect("ready"));
        let cutoff = Utc::now() + chrono::Duration::seconds(1);
        let page = async |conn: &mut PgConnection, after, limit| {
            let page = Page {
                before: cutoff,
                after,
                limit,
            };
            pending_before(conn, page)
                .await
                .expect("pending")
                .iter()
                .map(|p| p.id)
                .collect::<Vec<i64>>()
        };
        assert_eq!(
            page(&mut conn, None, 2).await,
            vec![ids[0], ids[2]],
            "ready rows are skipped, the batch is bounded"
        );
        let first = get(&mut conn, ids[2]).await.expect("get").expect("row");
        assert_eq!(
            page(&mut conn, Some((first.created_at, first.id)), 10).await,
            vec![ids[3]],
            "the next page starts after the last row"
        );
        let past = Utc::now() - chrono::Duration::hours(1);
        assert!(
            pending_before(
                &mut conn,
                Page {
                    before: past,
                    after: None,
                    limit: 10
                }
            )
            .await
            .expect("pending")
            .is_empty()
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_reopened_qr_is_pending_again_with_its_error_in_the_history() {
        let (db, mut conn, p) = with_person("V-9").await;
        assert!(!reopen_failed_qr(&mut conn, p.id).await.expect("pending"));
        assert!(
            mark_qr_failed(&mut conn, p.id, "disk full")
                .await
                .expect("failed")
        );
        assert!(reopen_failed_qr(&mut conn, p.id).await.expect("reopen"));
        assert!(!reopen_failed_qr(&mut conn, p.id).await.expect("once"));
        let row = get(&mut conn, p.id).await.expect("get").expect("row");
        assert_eq!((row.qr_status, row.qr_error), (QrStatus::Pending, None));
        let history: Vec<Option<&str>> = row
            .qr_error_history
            .iter()
            .map(|e| e.error.as_deref())
            .collect();
        assert_eq!(history, [Some("disk full")]);
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_batch_reads_and_marks_only_the_persons_that_exist() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let a = stored(&mut conn, "B-1").await;
        let b = stored(&mut conn, "B-2").await;
        assert!(
            mark_qr_failed(&mut conn, b.id, "disk full")
                .await
                .expect("failed")
        );
        let gone = b.id + 1000;
        let mut targets = qr_targets(&mut conn, &[a.id, gone, b.id])
            .await
            .expect("targets");
        targets.sort_by_key(|t| t.id);
        assert_eq!(
            targets,
            [
                QrTarget {
                    id: a.id,
                    qr_path: "qr/B-1.png".into(),
                    qr_status: QrStatus::Pending
                },
                QrTarget {
                    id: b.id,
                    qr_path: "qr/B-2.png".into(),
                    qr_status: QrStatus::Failed
                },
            ]
        );
        let mut marked = mark_qr_ready_many(&mut conn, &[a.id, gone, b.id, a.id])
            .await
            .expect("mark");
        marked.sort_unstable();
        assert_eq!(
            marked,
            [a.id, b.id],
            "each existing person once, the gone one not"
        );
        for id in [a.id, b.id] {
            let row = get(&mut conn, id).await.expect("get").expect("row");
            assert_eq!((row.qr_status, row.qr_error), (QrStatus::Ready, None));
        }
        assert!(
            mark_qr_ready_many(&mut conn, &[])
                .await
                .expect("none")
                .is_empty()
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_late_failure_never_overrides_a_ready_qr() {
        let (db, mut conn, p) = with_person("V-2").await;
        note_qr_error(&mut conn, p.id, "disk full")
            .await
            .expect("note");
        let noted = get(&mut conn, p.id).await.expect("get").expect("row");
        assert_eq!(
            (noted.qr_status, noted.qr_error.as_deref()),
            (QrStatus::Pending, Some("disk full"))
        );
        assert!(mark_qr_ready(&mut conn, p.id).await.expect("ready"));
        assert!(
            !mark_qr_failed(&mut conn, p.id, "late")
                .await
                .expect("failed")
        );
        let ready = get(&mut conn, p.id).await.expect("get").expect("row");
        assert_eq!((ready.qr_status, ready.qr_error), (QrStatus::Ready, None));
        assert!(
            !reopen_failed_qr(&mut conn, p.id).await.expect("reopen"),
            "a ready QR is not reopened"
        );
        assert!(
            !mark_qr_ready(&mut conn, p.id + 1000)
                .await
                .expect("missing")
        );
        drop(conn);
        db.cleanup().await;
    }
}
