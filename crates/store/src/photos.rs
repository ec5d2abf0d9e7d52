//! The `photos`, `photo_batches` and `photo_detections` tables: race photos
//! uploaded in batches (or given by URL), where their processing stands, and the
//! bib numbers found on them.
//!
//! Status moves are guarded in SQL: `pending -> processing -> completed | failed`,
//! and `processing -> processing` when an attempt is retried. A `completed`
//! photo never moves again, so a late duplicate job changes nothing. A `failed`
//! photo moves only when an operator retries its dead letter (`failed ->
//! processing`, [`start_processing`] with `reopen_failed`); every failure is
//! kept in `error_history`. A photo's detections are replaced in the same transaction that
//! marks it `completed`, so a photo never shows half of a run's detections.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::{Page, Result};

/// Where a photo's processing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ProcessingStatus {
    /// Stored, waiting for the photo-worker.
    Pending,
    /// An attempt is running (or was, and will be retried).
    Processing,
    /// Thumbnail made, detections stored.
    Completed,
    /// Every attempt failed, or the photo cannot be processed: `processing_error` says why.
    Failed,
}

/// A stored photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Photo {
    pub id: i64,
    pub batch_id: i64,
    pub original_name: Option<String>,
    pub content_type: Option<String>,
    /// The original in storage; None for a photo given by URL until it is fetched.
    pub storage_path: Option<String>,
    pub source_url: Option<String>,
    pub thumbnail_path: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub size_bytes: Option<i64>,
    pub processing_status: ProcessingStatus,
    pub processing_error: Option<String>,
    /// Every error that marked the photo `failed`, oldest first (a photo retried
    /// from its dead letter keeps why it failed before).
    pub error_history: Vec<String>,
    /// Attempts started so far.
    pub attempts: i32,
    /// When processing ended (`completed` or `failed`).
    pub processed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`Photo`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns with their Rust types, then `$tail` (the
/// checked macros take only literal SQL).
macro_rules! query_photos {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Photo,
            $head
                + r#"id, batch_id, original_name, content_type, storage_path, source_url,
                     thumbnail_path, width, height, size_bytes,
                     processing_status AS "processing_status: ProcessingStatus",
                     processing_error, error_history, attempts, processed_at, created_at,
                     updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}

/// One upload of one or many photos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Batch {
    pub id: i64,
    pub created_at: DateTime<Utc>,
}

/// A photo to store: either already in storage (`storage_path`) or to be
/// fetched from `source_url`.
#[derive(Debug, Clone, Default)]
pub struct NewPhoto<'a> {
    pub original_name: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub storage_path: Option<&'a str>,
    pub source_url: Option<&'a str>,
    pub size_bytes: Option<i64>,
}

/// A bib found on a photo, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Detection {
    pub number: String,
    /// 0.0 to 1.0.
    pub confidence: f32,
    pub box_x: i32,
    pub box_y: i32,
    pub box_width: i32,
    pub box_height: i32,
}

/// A photo in which a bib was found (search by bib).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BibMatch {
    pub photo_id: i64,
    pub thumbnail_path: Option<String>,
    /// The best confidence of the bib on this photo.
    pub confidence: f32,
    pub processed_at: Option<DateTime<Utc>>,
}

/// How far an upload got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BatchProgress {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub total: i64,
    pub pending: i64,
    pub processing: i64,
    pub completed: i64,
    pub failed: i64,
}

/// What [`start_processing`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The photo is now `processing` (this attempt counted).
    Started(Photo),
    /// Already `completed`, or `failed` and not reopened: nothing to do.
    Settled(Photo),
    /// No such photo (deleted).
    Gone,
}

/// Stores a batch and its photos, all `pending`, in the order given. Run it in
/// a transaction so a batch is stored whole or not at all.
pub async fn insert_batch(
    conn: &mut PgConnection,
    photos: &[NewPhoto<'_>],
) -> Result<(Batch, Vec<Photo>)> {
    let batch = sqlx::query_as!(
        Batch,
        "INSERT INTO photo_batches DEFAULT VALUES RETURNING id, created_at"
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut stored = Vec::with_capacity(photos.len());
    for photo in photos {
        stored.push(
            query_photos!(
                "INSERT INTO photos (batch_id, original_name, content_type, storage_path,
                                     source_url, size_bytes)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
                "",
                batch.id,
                photo.original_name,
                photo.content_type,
                photo.storage_path,
                photo.source_url,
                photo.size_bytes,
            )
            .fetch_one(&mut *conn)
            .await?,
        );
    }
    Ok((batch, stored))
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Photo>> {
    Ok(query_photos!("SELECT ", " FROM photos WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// Moves the photo to `processing` and counts the attempt: from `pending`,
/// from `processing` (a retry or a redelivery), or from `failed` when
/// `reopen_failed` (its dead letter retried by an operator; any other job
/// seeing a failed photo is a stale duplicate). A `completed` photo is left alone.
pub async fn start_processing(
    conn: &mut PgConnection,
    id: i64,
    reopen_failed: bool,
) -> Result<Start> {
    let started = query_photos!(
        "UPDATE photos SET processing_status = 'processing', attempts = attempts + 1,
                processed_at = NULL, updated_at = now()
         WHERE id = $1 AND (processing_status IN ('pending', 'processing')
                            OR (processing_status = 'failed' AND $2)) RETURNING ",
        "",
        id,
        reopen_failed,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(photo) = started {
        return Ok(Start::Started(photo));
    }
    Ok(match get(conn, id).await? {
        Some(photo) => Start::Settled(photo),
        None => Start::Gone,
    })
}

/// Records where the fetched original of a photo given by URL is kept, while
/// it is `processing`. False when nothing moved.
pub async fn set_original(
    conn: &mut PgConnection,
    id: i64,
    storage_path: &str,
    content_type: &str,
    size_bytes: i64,
) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE photos SET storage_path = $2, content_type = $3, size_bytes = $4,
                updated_at = now()
         WHERE id = $1 AND processing_status = 'processing'",
        id,
        storage_path,
        content_type,
        size_bytes,
    );
    crate::changed_one(conn, query).await
}

/// What a finished run stores on a photo.
#[derive(Debug, Clone)]
pub struct Completed<'a> {
    pub thumbnail_path: &'a str,
    pub width: i32,
    pub height: i32,
    pub detections: &'a [Detection],
}

/// Marks a `processing` photo `completed` and replaces its detections, in one
/// transaction (a savepoint when the caller is already in one). False, and
/// nothing written, when the photo is not `processing` (settled meanwhile, or gone).
pub async fn complete(conn: &mut PgConnection, id: i64, done: &Completed<'_>) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let moved = sqlx::query!(
        "UPDATE photos SET processing_status = 'completed', processing_error = NULL,
                thumbnail_path = $2, width = $3, height = $4,
                processed_at = now(), updated_at = now()
         WHERE id = $1 AND processing_status = 'processing'",
        id,
        done.thumbnail_path,
        done.width,
        done.height,
    );
    if !crate::changed_one(&mut tx, moved).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let delete = sqlx::query!("DELETE FROM photo_detections WHERE photo_id = $1", id);
    crate::execute(&mut tx, delete).await?;
    if !done.detections.is_empty() {
        let d = done.detections;
        let insert = sqlx::query!(
            "INSERT INTO photo_detections
                 (photo_id, number, confidence, box_x, box_y, box_width, box_height)
             SELECT $1, * FROM UNNEST($2::text[], $3::real[], $4::int[], $5::int[],
                                      $6::int[], $7::int[])",
            id,
            &d.iter().map(|d| d.number.clone()).collect::<Vec<_>>(),
            &d.iter().map(|d| d.confidence).collect::<Vec<_>>(),
            &d.iter().map(|d| d.box_x).collect::<Vec<_>>(),
            &d.iter().map(|d| d.box_y).collect::<Vec<_>>(),
            &d.iter().map(|d| d.box_width).collect::<Vec<_>>(),
            &d.iter().map(|d| d.box_height).collect::<Vec<_>>(),
        );
        crate::execute(&mut tx, insert).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Records the error of an attempt that will be retried; the status stays.
pub async fn note_error(conn: &mut PgConnection, id: i64, error: &str) -> Result<()> {
    let query = sqlx::query!(
        "UPDATE photos SET processing_error = $2, updated_at = now()
         WHERE id = $1 AND processing_status IN ('pending', 'processing')",
        id,
        error
    );
    crate::execute(conn, query).await?;
    Ok(())
}

/// After the last attempt, or an error no attempt can fix: `failed` with the
/// reason, also added to `error_history`. A settled photo stays as it is.
/// False when nothing moved.
pub async fn mark_failed(conn: &mut PgConnection, id: i64, error: &str) -> Result<bool> {
    let query = sqlx::query!(
        "UPDATE photos SET processing_status = 'failed', processing_error = $2,
                error_history = array_append(error_history, $2::text),
                processed_at = now(), updated_at = now()
         WHERE id = $1 AND processing_status IN ('pending', 'processing')",
        id,
        error
    );
    crate::changed_one(conn, query).await
}

/// A page of photos not settled, by `updated_at`: least recently moved first
/// (through the partial index on unsettled rows), what the reconciler
/// re-enqueues.
pub async fn unsettled_before(conn: &mut PgConnection, page: Page) -> Result<Vec<Photo>> {
    Ok(crate::fetch_page!(
        query_photos,
        " FROM photos WHERE processing_status IN ('pending', 'processing') AND updated_at < $1
           AND (updated_at, id) > (COALESCE($2, '-infinity'::timestamptz), COALESCE($3::bigint, 0))
         ORDER BY updated_at, id LIMIT $4",
        page,
        conn
    )?)
}

/// The bibs found on a photo, most confident first.
pub async fn detections(conn: &mut PgConnection, photo_id: i64) -> Result<Vec<Detection>> {
    Ok(sqlx::query_as!(
        Detection,
        "SELECT number, confidence, box_x, box_y, box_width, box_height
         FROM photo_detections WHERE photo_id = $1 ORDER BY confidence DESC, id",
        photo_id
    )
    .fetch_all(conn)
    .await?)
}

/// The completed photos on which `number` was detected, most confident first
/// (then newest), at most `limit`.
pub async fn by_bib(conn: &mut PgConnection, number: &str, limit: i64) -> Result<Vec<BibMatch>> {
    // `!`: the maximum of a group, which has at least one detection. (The
    // alias carries the override, so ORDER BY names the expression.)
    Ok(sqlx::query_as!(
        BibMatch,
        r#"SELECT p.id AS photo_id, p.thumbnail_path, max(d.confidence) AS "confidence!",
                  p.processed_at
           FROM photo_detections d JOIN photos p ON p.id = d.photo_id
           WHERE d.number = $1 AND p.processing_status = 'completed'
           GROUP BY p.id
           ORDER BY max(d.confidence) DESC, p.id DESC
           LIMIT $2"#,
        number,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// How many photos of a batch stand where; None when there is no such batch.
pub async fn batch_progress(conn: &mut PgConnection, id: i64) -> Result<Option<BatchProgress>> {
    // `!`: a count is never NULL.
    Ok(sqlx::query_as!(
        BatchProgress,
        r#"SELECT b.id, b.created_at, count(p.id) AS "total!",
                  count(p.id) FILTER (WHERE p.processing_status = 'pending') AS "pending!",
                  count(p.id) FILTER (WHERE p.processing_status = 'processing') AS "processing!",
                  count(p.id) FILTER (WHERE p.processing_status = 'completed') AS "completed!",
                  count(p.id) FILTER (WHERE p.processing_status = 'failed') AS "failed!"
           FROM photo_batches b LEFT JOIN photos p ON p.batch_id = b.id
           WHERE b.id = $1
           GROUP BY b.id"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Batches newest first with their progress: those older than batch `before`
/// (None: from the newest), at most `limit`.
pub async fn recent_batches(
    conn: &mut PgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<BatchProgress>> {
    // The page of batches first, then their photos' counts (through
    // photos_by_batch_status), so the cost follows the page, not every batch.
    Ok(sqlx::query_as!(
        BatchProgress,
        r#"SELECT b.id, b.created_at, count(p.id) AS "total!",
                  count(p.id) FILTER (WHERE p.processing_status = 'pending') AS "pending!",
                  count(p.id) FILTER (WHERE p.processing_status = 'processing') AS "processing!",
                  count(p.id) FILTER (WHERE p.processing_status = 'completed') AS "completed!",
                  count(p.id) FILTER (WHERE p.processing_status = 'failed') AS "failed!"
           FROM (SELECT id, created_at FROM photo_batches
                 WHERE id < COALESCE($1, 9223372036854775807)
                 ORDER BY id DESC LIMIT $2) b
           LEFT JOIN photos p ON p.batch_id = b.id
           GROUP BY b.id, b.created_at
           ORDER BY b.id DESC"#,
        before,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// A batch's photos in upload order: those after photo `after` (None: from the
/// first), at most `limit`.
pub async fn batch_photos(
    conn: &mut PgConnection,
    batch_id: i64,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Photo>> {
    Ok(query_photos!(
        "SELECT ",
        " FROM photos WHERE batch_id = $1 AND id > COALESCE($2::bigint, 0) ORDER BY id LIMIT $3",
        batch_id,
        after,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// A bib found on one of several photos.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhotoDetection {
    pub photo_id: i64,
    pub detection: Detection,
}

/// The bibs found on the photos `photo_ids`, by photo, most confident first.
pub async fn detections_of(
    conn: &mut PgConnection,
    photo_ids: &[i64],
) -> Result<Vec<PhotoDetection>> {
    let rows = sqlx::query!(
        "SELECT photo_id, number, confidence, box_x, box_y, box_width, box_height
         FROM photo_detections WHERE photo_id = ANY($1)
         ORDER BY photo_id, confidence DESC, id",
        photo_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PhotoDetection {
            photo_id: r.photo_id,
            detection: Detection {
                number: r.number,
                confidence: r.confidence,
                box_x: r.box_x,
                box_y: r.box_y,
                box_width: r.box_width,
                box_height: r.box_height,
            },
        })
        .collect())
}

/// Removes a photo and its detections (a pending job of it then completes as a no-op).
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<bool> {
    crate::changed_one(conn, sqlx::query!("DELETE FROM photos WHERE id = $1", id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    fn upload(path: &str) -> NewPhoto<'_> {
        NewPhoto {
            original_name: Some("finish.jpg"),
            content_type: Some("image/jpeg"),
            storage_path: Some(path),
            size_bytes: Some(1234),
            ..NewPhoto::default()
        }
    }

    fn detection(number: &str, confidence: f32) -> Detection {
        Detection {
            number: number.into(),
            confidence,
            box_x: 1,
            box_y: 2,
            box_width: 3,
            box_height: 4,
        }
    }

    #[tokio::test]
    async fn a_photo_moves_pending_processing_completed_once_with_its_detections() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let (batch, photos) = insert_batch(&mut conn, &[upload("photos/a.jpg")])
            .await
            .expect("insert");
        let photo = &photos[0];
        assert_eq!(photo.batch_id, batch.id);
        assert_eq!(photo.processing_status, ProcessingStatus::Pending);

        let Start::Started(started) = start_processing(&mut conn, photo.id, false)
            .await
            .expect("start")
        else {
            panic!("the photo starts")
        };
        assert_eq!(
            (started.processing_status, started.attempts),
            (ProcessingStatus::Processing, 1)
        );
        // A retry stays `processing` and counts its attempt.
        note_error(&mut conn, photo.id, "db blip")
            .await
            .expect("note");
        let Start::Started(again) = start_processing(&mut conn, photo.id, false)
            .await
            .expect("retry")
        else {
            panic!("a retry starts again")
        };
        assert_eq!(again.attempts, 2);

        let first = [detection("1234", 0.9), detection("77", 0.6)];
        let done = Completed {
            thumbnail_path: "thumbs/1.jpg",
            width: 800,
            height: 600,
            detections: &first,
        };
        assert!(
            complete(&mut conn, photo.id, &done)
                .await
                .expect("complete")
        );
        let stored = get(&mut conn, photo.id).await.expect("get").expect("row");
        assert_eq!(stored.processing_status, ProcessingStatus::Completed);
        assert_eq!(stored.processing_error, None);
        assert!(stored.processed_at.is_some());
        assert_eq!(stored.thumbnail_path.as_deref(), Some("thumbs/1.jpg"));
        assert_eq!(
            detections(&mut conn, photo.id).await.expect("detections"),
            first
        );

        // Completed: a late duplicate neither restarts, re-completes nor fails it.
        assert!(matches!(
            start_processing(&mut conn, photo.id, false)
                .await
                .expect("late"),
            Start::Settled(_)
        ));
        let other = [detection("999", 0.99)];
        let late = Completed {
            detections: &other,
            ..done
        };
        assert!(!complete(&mut conn, photo.id, &late).await.expect("late"));
        assert!(
            !mark_failed(&mut conn, photo.id, "late")
                .await
                .expect("late")
        );
        assert_eq!(
            detections(&mut conn, photo.id).await.expect("detections"),
            first
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_failed_photo_starts_again_only_when_its_dead_letter_is_retried_and_keeps_its_errors()
    {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let (_, photos) = insert_batch(&mut conn, &[upload("photos/a.jpg")])
            .await
            .expect("insert");
        let id = photos[0].id;
        start_processing(&mut conn, id, false).await.expect("start");
        assert!(mark_failed(&mut conn, id, "disk gone").await.expect("fail"));
        assert!(!mark_failed(&mut conn, id, "again").await.expect("once"));
        let Start::Settled(stale) = start_processing(&mut conn, id, false).await.expect("stale")
        else {
            panic!("a stale duplicate job leaves a failed photo failed")
        };
        assert_eq!(stale.processing_status, ProcessingStatus::Failed);
        let Start::Started(again) = start_processing(&mut conn, id, true).await.expect("retry")
        else {
            panic!("a retried dead letter starts the photo again")
        };
        assert_eq!(
            (again.processing_status, again.attempts, again.processed_at),
            (ProcessingStatus::Processing, 2, None)
        );
        assert_eq!(again.processing_error.as_deref(), Some("disk gone"));
        assert!(
            mark_failed(&mut conn, id, "disk gone again")
                .await
                .expect("fail")
        );
        assert_eq!(
            get(&mut conn, id)
                .await
                .expect("get")
                .expect("row")
                .error_history,
            ["disk gone", "disk gone again"]
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn search_by_bib_finds_completed_photos_most_confident_first() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let (_, photos) = insert_batch(
            &mut conn,
            &[
                upload("photos/a.jpg"),
                upload("photos/b.jpg"),
                upload("photos/c.jpg"),
            ],
        )
        .await
        .expect("insert");
        for (photo, bibs) in photos.iter().zip([
            vec![detection("1234", 0.7), detection("1234", 0.8)],
            vec![detection("1234", 0.95), detection("55", 0.9)],
            vec![detection("1234", 0.99)],
        ]) {
            start_processing(&mut conn, photo.id, false)
                .await
                .expect("start");
            // The third photo never completes: it is not found.
            if photo.id == photos[2].id {
                continue;
            }
            let done = Completed {
                thumbnail_path: "thumbs/x.jpg",
                width: 1,
                height: 1,
                detections: &bibs,
            };
            assert!(
                complete(&mut conn, photo.id, &done)
                    .await
                    .expect("complete")
            );
        }
        let found = by_bib(&mut conn, "1234", 10).await.expect("search");
        let ids: Vec<(i64, f32)> = found.iter().map(|m| (m.photo_id, m.confidence)).collect();
        assert_eq!(ids, vec![(photos[1].id, 0.95), (photos[0].id, 0.8)]);
        assert!(
            by_bib(&mut conn, "4321", 10)
                .await
                .expect("none")
                .is_empty()
        );
        assert_eq!(by_bib(&mut conn, "1234", 1).await.expect("limit").len(), 1);
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_batch_counts_its_photos_by_status_and_the_reconciler_sees_the_unsettled_ones() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let by_url = NewPhoto {
            source_url: Some("https://photos.example.com/a.jpg"),
            ..NewPhoto::default()
        };
        let (batch, photos) = insert_batch(
            &mut conn,
            &[
                upload("photos/a.jpg"),
                upload("photos/b.jpg"),
                by_url,
                upload("photos/d.jpg"),
            ],
        )
        .await
        .expect("insert");
        start_processing(&mut conn, photos[0].id, false)
            .await
            .expect("start");
        start_processing(&mut conn, photos[1].id, false)
            .await
            .expect("start");
        assert!(
            mark_failed(&mut conn, photos[1].id, "corrupt")
                .await
                .expect("fail")
        );
        start_processing(&mut conn, photos[2].id, false)
            .await
            .expect("start");
        assert!(
            set_original(
                &mut conn,
                photos[2].id,
                "photos/url-3.jpg",
                "image/jpeg",
                10
            )
            .await
            .expect("original")
        );
        let done = Completed {
            thumbnail_path: "thumbs/3.jpg",
            width: 1,
            height: 1,
            detections: &[],
        };
        assert!(
            complete(&mut conn, photos[2].id, &done)
                .await
                .expect("complete")
        );
        let progress = batch_progress(&mut conn, batch.id)
            .await
            .expect("progress")
            .expect("the batch");
        assert_eq!(
            (
                progress.total,
                progress.pending,
                progress.processing,
                progress.completed,
                progress.failed
            ),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(
            batch_progress(&mut conn, batch.id + 1000)
                .await
                .expect("none"),
            None
        );

        let cutoff = Utc::now() + chrono::Duration::seconds(1);
        let unsettled: Vec<i64> = unsettled_before(
            &mut conn,
            Page {
                before: cutoff,
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("unsettled")
        .iter()
        .map(|p| p.id)
        .collect();
        assert_eq!(unsettled.len(), 2);
        assert!(unsettled.contains(&photos[0].id) && unsettled.contains(&photos[3].id));
        assert!(delete(&mut conn, photos[3].id).await.expect("delete"));
        assert_eq!(
            start_processing(&mut conn, photos[3].id, false)
                .await
                .expect("gone"),
            Start::Gone
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_batch_lists_its_photos_in_order_with_their_detections_and_batches_their_progress() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let (first, _) = insert_batch(&mut conn, &[upload("photos/x.jpg")])
            .await
            .expect("batch 1");
        let (batch, photos) = insert_batch(
            &mut conn,
            &[
                upload("photos/a.jpg"),
                upload("photos/b.jpg"),
                upload("photos/c.jpg"),
            ],
        )
        .await
        .expect("batch 2");
        let ids: Vec<i64> = photos.iter().map(|p| p.id).collect();
        for id in &ids[..2] {
            assert!(matches!(
                start_processing(&mut conn, *id, false)
                    .await
                    .expect("start"),
                Start::Started(_)
            ));
        }
        let found = [detection("123", 0.9), detection("45", 0.5)];
        assert!(
            complete(
                &mut conn,
                ids[0],
                &Completed {
                    thumbnail_path: "thumbs/a.jpg",
                    width: 640,
                    height: 480,
                    detections: &found,
                },
            )
            .await
            .expect("complete")
        );
        assert!(
            mark_failed(&mut conn, ids[1], "not an image")
                .await
                .expect("fail")
        );

        let listed = batch_photos(&mut conn, batch.id, None, 2)
            .await
            .expect("photos");
        assert_eq!(listed.iter().map(|p| p.id).collect::<Vec<_>>(), ids[..2]);
        assert_eq!(listed[0].thumbnail_path.as_deref(), Some("thumbs/a.jpg"));
        let rest = batch_photos(&mut conn, batch.id, Some(ids[1]), 2)
            .await
            .expect("photos");
        assert_eq!(rest.iter().map(|p| p.id).collect::<Vec<_>>(), ids[2..]);

        let boxes = detections_of(&mut conn, &ids).await.expect("detections");
        assert_eq!(
            boxes
                .iter()
                .map(|d| (d.photo_id, d.detection.number.as_str()))
                .collect::<Vec<_>>(),
            [(ids[0], "123"), (ids[0], "45")]
        );
        assert_eq!(boxes[0].detection, found[0]);

        let batches = recent_batches(&mut conn, None, 10).await.expect("batches");
        assert_eq!(
            batches.iter().map(|b| b.id).collect::<Vec<_>>(),
            [batch.id, first.id]
        );
        assert_eq!(
            (
                batches[0].total,
                batches[0].pending,
                batches[0].processing,
                batches[0].completed,
                batches[0].failed
            ),
            (3, 1, 0, 1, 1)
        );
        let older = recent_batches(&mut conn, Some(batch.id), 10)
            .await
            .expect("older");
        assert_eq!(older.iter().map(|b| b.id).collect::<Vec<_>>(), [first.id]);
        drop(conn);
        db.cleanup().await;
    }
}
