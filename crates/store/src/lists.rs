//! The API's lists: persons, companies, payments, users and a batch's photos,
//! each optionally filtered, a page at a time.
//!
//! Keyset pages on `id`: newest first (`id < after`), a batch's photos in
//! upload order (`id > after`). A row inserted after a page was read has a
//! higher id, so it never shifts the pages that follow nor repeats in them; a
//! new row appears at the head of the first page. Every filter combination is
//! a query of its own (no `$1 IS NULL OR ...`), so that each reads a range of
//! its index (migration 0015). The queries that filter by a status run in a
//! transaction that plans them for the values they are sent with
//! ([`planned_per_value`]): a cached generic plan cannot tell a rare status
//! (read through its index) from a common one (read along the primary key,
//! nearly every row matching), and on 100k rows it read the primary key for
//! both, a rare status's page then costing a scan of most of the table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use crate::companies::{Company, ContextStatus, query_companies};
use crate::payments::{Currency, PaymentStatus};
use crate::persons::{Person, QrStatus, query_persons};
use crate::photos::ProcessingStatus;
use crate::users::{User, query_users};
use crate::{Json, PastError, Result};

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// The id of the last row of the previous page (None: the first page).
    pub after: Option<i64>,
    /// At most this many rows.
    pub limit: i64,
}

impl Keyset {
    /// `after` as the bound of a newest-first page: below every id when None.
    fn below(self) -> i64 {
        self.after.unwrap_or(i64::MAX)
    }

    /// `after` as the bound of an oldest-first page.
    fn above(self) -> i64 {
        self.after.unwrap_or(0)
    }
}

/// A read-only transaction whose statements are planned for the parameter
/// values they are sent with, not from a generic plan cached on the
/// connection (`plan_cache_mode`, for this transaction only).
async fn planned_per_value(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>> {
    Ok(conn
        .begin_with("BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan")
        .await?)
}

/// The rows of a list with an optional status filter, newest first, through
/// a module's query macro (`query_persons`): `$all` is the rest of the query
/// after the columns for every row (`$1` the page's bound, `$2` its limit),
/// `$with_status` the one for a status (`$1` the status, then the same two).
macro_rules! status_page {
    ($query:ident, $all:literal, $with_status:literal, $status:expr, $page:expr, $conn:expr) => {{
        let page: Keyset = $page;
        match $status {
            None => {
                $query!("SELECT ", $all, page.below(), page.limit)
                    .fetch_all($conn)
                    .await?
            }
            Some(status) => {
                let mut tx = planned_per_value($conn).await?;
                let rows = $query!(
                    "SELECT ",
                    $with_status,
                    status as _,
                    page.below(),
                    page.limit
                )
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                rows
            }
        }
    }};
}

/// Persons newest first, those with `qr_status` only when given.
pub async fn persons(
    conn: &mut PgConnection,
    qr_status: Option<QrStatus>,
    page: Keyset,
) -> Result<Vec<Person>> {
    Ok(status_page!(
        query_persons,
        " FROM persons WHERE id < $1 ORDER BY id DESC LIMIT $2",
        " FROM persons WHERE qr_status = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        qr_status,
        page,
        conn
    ))
}

/// Companies newest first, those with `context_status` only when given.
pub async fn companies(
    conn: &mut PgConnection,
    context_status: Option<ContextStatus>,
    page: Keyset,
) -> Result<Vec<Company>> {
    Ok(status_page!(
        query_companies,
        " FROM companies WHERE id < $1 ORDER BY id DESC LIMIT $2",
        " FROM companies WHERE context_status = $1 AND id < $2
                  ORDER BY id DESC LIMIT $3",
        context_status,
        page,
        conn
    ))
}

/// A payment as a list shows it: every column but the QR image, which a
/// list never reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: i64,
    pub qr_id: String,
    pub amount_cents: i64,
    pub currency: Currency,
    pub description: String,
    pub status: PaymentStatus,
    pub expires_at: DateTime<Utc>,
    pub checks_made: i32,
    pub next_check_at: Option<DateTime<Utc>>,
    pub needs_operator: bool,
    pub operator_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`PaymentRow`]s: the columns, then `$tail`.
macro_rules! query_payment_rows {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            PaymentRow,
            r#"SELECT id, qr_id, amount_cents, currency AS "currency: Currency", description,
                      status AS "status: PaymentStatus", expires_at, checks_made,
                      next_check_at, needs_operator, operator_reason, paid_at, created_at,
                      updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}

/// Which payments a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    /// Only those flagged for an operator (true) or only the others (false).
    pub needs_operator: Option<bool>,
}

/// Payments newest first, as `filter` narrows them (planned per value: the
/// operator flag reads payments_flagged only when the plan knows it is true).
pub async fn payments(
    conn: &mut PgConnection,
    filter: PaymentFilter,
    page: Keyset,
) -> Result<Vec<PaymentRow>> {
    let (below, limit) = (page.below(), page.limit);
    let mut tx = planned_per_value(conn).await?;
    let rows =
        match (filter.status, filter.needs_operator) {
            (None, None) => {
                query_payment_rows!(
                    " FROM payments WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    below,
                    limit
                )
                .fetch_all(&mut *tx)
                .await?
            }
            // Through payments_flagged (true) or the primary key (false: nearly all).
            (None, Some(flagged)) => query_payment_rows!(
                " FROM payments WHERE needs_operator = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                flagged,
                below,
                limit
            )
            .fetch_all(&mut *tx)
            .await?,
            (Some(status), None) => {
                query_payment_rows!(
                    " FROM payments WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    status as _,
                    below,
                    limit
                )
                .fetch_all(&mut *tx)
                .await?
            }
            (Some(status), Some(flagged)) => {
                query_payment_rows!(
                    " FROM payments WHERE status = $1 AND needs_operator = $2 AND id < $3
                  ORDER BY id DESC LIMIT $4",
                    status as _,
                    flagged,
                    below,
                    limit
                )
                .fetch_all(&mut *tx)
                .await?
            }
        };
    tx.commit().await?;
    Ok(rows)
}

/// Which users a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Users whose `id_number_key` is one of these (see [`matching_keys`]).
    pub id_number_keys: Option<Vec<String>>,
    /// The user linked to this Wispro client id.
    pub id_wispro: Option<String>,
}

/// The identity-number keys a search by the number whose key is `key` finds,
/// by the rule the sync matches customers with (`sync_worker::idnumber`): a V
/// or E number also finds the bare number, a bare number also the V and E
/// ones; a J, G or P number only itself. `key` is as
/// `identity_number_key()` gives it: an optional letter, then digits.
pub fn matching_keys(key: &str) -> Vec<String> {
    let digits = key.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    match &key[..key.len() - digits.len()] {
        "" => vec![key.to_owned(), format!("V{digits}"), format!("E{digits}")],
        "V" | "E" => vec![key.to_owned(), digits.to_owned()],
        _ => vec![key.to_owned()],
    }
}

/// Users newest first, as `filter` narrows them. A number's users are few
/// (through users_by_id_number_key), a Wispro id's at most one.
pub async fn users(
    conn: &mut PgConnection,
    filter: &UserFilter,
    page: Keyset,
) -> Result<Vec<User>> {
    let (below, limit) = (page.below(), page.limit);
    let rows =
        match (&filter.id_number_keys, &filter.id_wispro) {
            (None, None) => {
                query_users!(
                    "SELECT ",
                    " FROM users WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    below,
                    limit
                )
                .fetch_all(conn)
                .await?
            }
            (Some(keys), None) => query_users!(
                "SELECT ",
                " FROM users WHERE id_number_key = ANY($1) AND id < $2 ORDER BY id DESC LIMIT $3",
                keys,
                below,
                limit
            )
            .fetch_all(conn)
            .await?,
            (None, Some(wispro)) => {
                query_users!(
                    "SELECT ",
                    " FROM users WHERE id_wispro = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    wispro,
                    below,
                    limit
                )
                .fetch_all(conn)
                .await?
            }
            (Some(keys), Some(wispro)) => {
                query_users!(
                    "SELECT ",
                    " FROM users WHERE id_wispro = $1 AND id_number_key = ANY($2) AND id < $3
                  ORDER BY id DESC LIMIT $4",
                    wispro,
                    keys,
                    below,
                    limit
                )
                .fetch_all(conn)
                .await?
            }
        };
    Ok(rows)
}

/// A photo as a batch's list shows it: where its processing stands and the
/// bibs found on it, not its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BatchPhotoRow {
    pub id: i64,
    pub original_name: Option<String>,
    pub source_url: Option<String>,
    pub thumbnail_path: Option<String>,
    pub processing_status: ProcessingStatus,
    pub processing_error: Option<String>,
    pub attempts: i32,
    pub processed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The bib numbers detected, most confident first (a number found twice
    /// is listed twice, as its detections are).
    pub numbers: Vec<String>,
}

/// `sqlx::query_as!` of [`BatchPhotoRow`]s: the columns and each photo's
/// detections (read per photo of the page through
/// photo_detections_by_photo), then `$tail` on `photos p`.
macro_rules! query_batch_photos {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            BatchPhotoRow,
            r#"SELECT p.id, p.original_name, p.source_url, p.thumbnail_path,
                      p.processing_status AS "processing_status: ProcessingStatus",
                      p.processing_error, p.attempts, p.processed_at, p.created_at,
                      p.updated_at,
                      ARRAY(SELECT d.number FROM photo_detections d WHERE d.photo_id = p.id
                            ORDER BY d.confidence DESC, d.id) AS "numbers!"
               FROM photos p "#
                + $tail
            $(, $arg)*
        )
    };
}

/// The photos of batch `batch_id` in upload order, those with `status` only
/// when given; None when there is no such batch.
pub async fn batch_photos(
    conn: &mut PgConnection,
    batch_id: i64,
    status: Option<ProcessingStatus>,
    page: Keyset,
) -> Result<Option<Vec<BatchPhotoRow>>> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM photo_batches WHERE id = $1) AS "exists!""#,
        batch_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(None);
    }
    let (above, limit) = (page.above(), page.limit);
    let rows = match status {
        None => {
            query_batch_photos!(
                "WHERE p.batch_id = $1 AND p.id > $2 ORDER BY p.id LIMIT $3",
                batch_id,
                above,
                limit
            )
            .fetch_all(conn)
            .await?
        }
        Some(status) => {
            query_batch_photos!(
                "WHERE p.batch_id = $1 AND p.processing_status = $2 AND p.id > $3
                 ORDER BY p.id LIMIT $4",
                batch_id,
                status as _,
                above,
                limit
            )
            .fetch_all(conn)
            .await?
        }
    };
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_finds_the_keys_the_sync_would_match_it_with() {
        assert_eq!(
            matching_keys("12345678"),
            ["12345678", "V12345678", "E12345678"]
        );
        assert_eq!(matching_keys("V12345678"), ["V12345678", "12345678"]);
        assert_eq!(matching_keys("E12345678"), ["E12345678", "12345678"]);
        assert_eq!(matching_keys("J301234567"), ["J301234567"]);
    }
}
