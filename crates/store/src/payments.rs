//! The `payments` table and its bookkeeping: the check history
//! (`payment_checks`), the account movements booked for paid payments
//! (`account_movements`) and the cleanup runs (`payment_cleanup_runs`).
//!
//! Amounts are whole cents (`i64`): BOB and USD have two decimals, and integers
//! add up exactly. [`parse_amount`] and [`format_amount`] convert from and to
//! the decimal strings of the API and the bank ("125.50"), never through a float.
//!
//! Exactly one movement per paid payment: `account_movements.payment_id` is
//! unique and [`book_movement`] inserts with `ON CONFLICT DO NOTHING`, so a
//! second check, a redelivery or a healing pass never books a second one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Json, Page, PastError, Result};

/// Where a payment stands at the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Pending,
    Processing,
    Active,
    /// Paid: a movement is booked.
    Completed,
    Cancelled,
    Expired,
}

impl PaymentStatus {
    /// Completed, cancelled and expired end the checks.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// Every status, in the order a payment usually goes through them.
    pub const ALL: [PaymentStatus; 6] = [
        Self::Pending,
        Self::Processing,
        Self::Active,
        Self::Completed,
        Self::Cancelled,
        Self::Expired,
    ];
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PaymentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a payment status"))
    }
}

/// The currencies a payment QR can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum Currency {
    #[sqlx(rename = "BOB")]
    #[serde(rename = "BOB")]
    Bob,
    #[sqlx(rename = "USD")]
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bob => "BOB",
            Self::Usd => "USD",
        }
    }
}

impl std::str::FromStr for Currency {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "BOB" => Ok(Self::Bob),
            "USD" => Ok(Self::Usd),
            _ => Err("must be BOB or USD"),
        }
    }
}

/// Largest amount accepted, in cents: 12 whole digits, as the bank takes.
pub const MAX_AMOUNT_CENTS: i64 = 99_999_999_999_999;

/// `"125.50"` -> 12550. Digits, optionally a point and one or two decimals,
/// above zero and at most 12 whole digits; anything else (a sign, an exponent,
/// a comma, a third decimal) is refused with the rule it breaks.
pub fn parse_amount(s: &str) -> std::result::Result<i64, &'static str> {
    const RULE: &str =
        "must be a positive decimal string with at most two decimals, such as \"125.50\"";
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => {
            if f.is_empty() {
                return Err(RULE);
            }
            (w, f)
        }
        None => (s, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return Err(RULE);
    }
    if frac.len() > 2 {
        return Err("must have at most two decimals");
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 12 {
        return Err("must be below 1000000000000");
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| RULE)?
    };
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| RULE)? * 10,
        _ => frac.parse().map_err(|_| RULE)?,
    };
    let total = whole * 100 + cents;
    if total <= 0 {
        return Err("must be greater than zero");
    }
    Ok(total)
}

/// 12550 -> `"125.50"`: always two decimals.
pub fn format_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A stored payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Payment {
    pub id: i64,
    pub qr_id: String,
    pub amount_cents: i64,
    pub currency: Currency,
    pub description: String,
    pub status: PaymentStatus,
    pub qr_image_base64: String,
    pub expires_at: DateTime<Utc>,
    pub checks_made: i32,
    pub next_check_at: Option<DateTime<Utc>>,
    pub needs_operator: bool,
    pub operator_reason: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Flags an operator's retry reopened (their reasons), oldest first.
    pub operator_history: Json<Vec<PastError>>,
    /// Checks made when the payment was last reopened: the check limit counts
    /// the checks made since.
    pub checks_base: i32,
}

/// `sqlx::query_as!` of [`Payment`] rows: `$head` (`SELECT ` or
/// `... RETURNING `), the columns with their Rust types, then `$tail` (the
/// checked macros take only literal SQL).
macro_rules! query_payments {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Payment,
            $head
                + r#"id, qr_id, amount_cents, currency AS "currency: Currency", description,
                     status AS "status: PaymentStatus", qr_image_base64, expires_at,
                     checks_made, next_check_at, needs_operator, operator_reason, paid_at,
                     created_at, updated_at,
                     operator_history AS "operator_history: Json<Vec<PastError>>",
                     checks_base"#
                + $tail
            $(, $arg)*
        )
    };
}

/// A payment to store, as the bank created it.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub qr_id: &'a str,
    pub amount_cents: i64,
    pub currency: Currency,
    pub description: &'a str,
    pub status: PaymentStatus,
    pub qr_image_base64: &'a str,
    pub expires_at: DateTime<Utc>,
    /// When its first check is due; None when the bank's first answer is final.
    pub next_check_at: Option<DateTime<Utc>>,
}

/// Stores a payment, with no check made yet; `paid_at` is set when the bank
/// created it `completed` (the caller books its movement in the same
/// transaction, [`book_movement`]).
pub async fn insert(conn: &mut PgConnection, p: &NewPayment<'_>) -> Result<Payment> {
    query_payments!(
        "INSERT INTO payments (qr_id, amount_cents, currency, description, status,
                               qr_image_base64, expires_at, next_check_at, paid_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 CASE WHEN $5 = 'completed' THEN now() END) RETURNING ",
        "",
        p.qr_id,
        p.amount_cents,
        p.currency as _,
        p.description,
        p.status as _,
        p.qr_image_base64,
        p.expires_at,
        p.next_check_at,
    )
    .fetch_one(conn)
    .await
    .map_err(crate::StoreError::from_sqlx)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<Payment>> {
    Ok(
        query_payments!("SELECT ", " FROM payments WHERE id = $1", id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The payment of the bank's QR `qr_id`.
pub async fn get_by_qr_id(conn: &mut PgConnection, qr_id: &str) -> Result<Option<Payment>> {
    Ok(
        query_payments!("SELECT ", " FROM payments WHERE qr_id = $1", qr_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The payment, locked until the end of the caller's transaction: two
/// deliveries of one check apply one after the other, the second seeing the
/// first's result.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Option<Payment>> {
    Ok(
        query_payments!("SELECT ", " FROM payments WHERE id = $1 FOR UPDATE", id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    /// The bank answered a status.
    Ok,
    /// Every attempt at the bank failed.
    Failed,
}

/// One check in a payment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CheckRecord {
    pub check_number: i32,
    pub outcome: CheckOutcome,
    pub status: Option<PaymentStatus>,
    pub changed: bool,
    pub error: Option<String>,
    /// When it was due; `checked_at - due_at` is how late it ran.
    pub due_at: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
}

/// One check to record.
#[derive(Debug, Clone)]
pub struct NewCheck<'a> {
    pub payment_id: i64,
    pub check_number: i32,
    pub outcome: CheckOutcome,
    /// What the bank answered; None for a failed check.
    pub status: Option<PaymentStatus>,
    pub changed: bool,
    pub error: Option<&'a str>,
    pub due_at: Option<DateTime<Utc>>,
}

/// Records a check of a payment; false when it was recorded already (a redelivery).
pub async fn record_check(conn: &mut PgConnection, c: &NewCheck<'_>) -> Result<bool> {
    let query = sqlx::query!(
        "INSERT INTO payment_checks
                (payment_id, check_number, outcome, status, changed, error, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (payment_id, check_number) DO NOTHING",
        c.payment_id,
        c.check_number,
        c.outcome as _,
        c.status as _,
        c.changed,
        c.error,
        c.due_at,
    );
    crate::changed_one(conn, query).await
}

/// A payment's checks, first first.
pub async fn checks(conn: &mut PgConnection, payment_id: i64) -> Result<Vec<CheckRecord>> {
    Ok(sqlx::query_as!(
        CheckRecord,
        r#"SELECT check_number, outcome AS "outcome: CheckOutcome",
                  status AS "status: PaymentStatus", changed, error, due_at, checked_at
           FROM payment_checks WHERE payment_id = $1 ORDER BY check_number"#,
        payment_id
    )
    .fetch_all(conn)
    .await?)
}

/// What a check leaves on the payment row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckApplied {
    pub checks_made: i32,
    pub status: PaymentStatus,
    /// None: no more checks.
    pub next_check_at: Option<DateTime<Utc>>,
    /// Set when the checks stop without a final status.
    pub operator_reason: Option<String>,
}

/// Writes a check's result on the payment row (the caller holds its lock) and
/// answers the row as it is now; `paid_at` is set the first time the status is
/// `completed`.
pub async fn apply_check(
    conn: &mut PgConnection,
    id: i64,
    applied: &CheckApplied,
) -> Result<Payment> {
    Ok(query_payments!(
        "UPDATE payments SET checks_made = $2, status = $3, next_check_at = $4,
                needs_operator = needs_operator OR $5::text IS NOT NULL,
                operator_reason = COALESCE($5::text, operator_reason),
                paid_at = CASE WHEN $3 = 'completed' THEN COALESCE(paid_at, now()) ELSE paid_at END,
                updated_at = now()
         WHERE id = $1 RETURNING ",
        "",
        id,
        applied.checks_made,
        applied.status as _,
        applied.next_check_at,
        applied.operator_reason.as_deref(),
    )
    .fetch_one(conn)
    .await?)
}

/// Reopens a payment flagged for an operator, for an operator's retry of its
/// dead-lettered check: unflagged, its reason moved to `operator_history`, due
/// for a check now, and allowed `PAYMENT_MAX_CHECKS` more checks (from
/// `checks_base`). A payment with a final status is never reopened. The caller
/// holds the row's lock; None when nothing was reopened.
pub async fn reopen_flagged(conn: &mut PgConnection, id: i64) -> Result<Option<Payment>> {
    Ok(query_payments!(
        "UPDATE payments SET needs_operator = false, operator_reason = NULL,
                checks_base = checks_made, next_check_at = now(), updated_at = now(),
                operator_history = operator_history || jsonb_build_array(
                    jsonb_build_object('error', operator_reason, 'reopened_at', now()))
         WHERE id = $1 AND needs_operator
            AND status NOT IN ('completed', 'cancelled', 'expired') RETURNING ",
        "",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// A final status given to a payment by hand, why, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct ByHand<'a> {
    pub status: PaymentStatus,
    pub reason: &'a str,
    /// The audit log's actor.
    pub by: &'a str,
}

/// Which payments [`end_by_hand`] may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Any payment without a final status (a cancel).
    AnyLive,
    /// Only one flagged for an operator (an operator's resolve).
    Flagged,
}

/// Ends a payment's checks with the final status of `by_hand` (no next check:
/// a check already queued finds the row final and does nothing). A flagged
/// payment is unflagged, its reason moved to `operator_history` with the
/// resolution. A payment made `completed` is left without `paid_at`: the
/// caller books it with [`book_completed`] (in the same transaction), and the
/// reconciler's repair scan would book it otherwise. None when the payment is
/// not one `ending` may end (or is gone).
pub async fn end_by_hand(
    conn: &mut PgConnection,
    id: i64,
    by_hand: &ByHand<'_>,
    ending: Ending,
) -> Result<Option<Payment>> {
    Ok(query_payments!(
        "UPDATE payments SET status = $2, next_check_at = NULL,
                needs_operator = false, operator_reason = NULL, updated_at = now(),
                operator_history = CASE WHEN needs_operator
                    THEN operator_history || jsonb_build_array(jsonb_build_object(
                        'error', operator_reason, 'reopened_at', now(),
                        'resolution', jsonb_build_object(
                            'status', $2::text, 'reason', $3::text, 'by', $4::text)))
                    ELSE operator_history END
         WHERE id = $1 AND status NOT IN ('completed', 'cancelled', 'expired')
           AND (needs_operator OR NOT $5) RETURNING ",
        "",
        id,
        by_hand.status as _,
        by_hand.reason,
        by_hand.by,
        ending == Ending::Flagged,
    )
    .fetch_optional(conn)
    .await?)
}

/// Payments flagged for an operator (checks stopped without a final status),
/// newest first: those older than payment `before` (None: from the newest), at
/// most `limit`. Read through the partial index on flagged rows.
pub async fn flagged(
    conn: &mut PgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Payment>> {
    Ok(query_payments!(
        "SELECT ",
        " FROM payments WHERE needs_operator AND id < COALESCE($1, 9223372036854775807)
         ORDER BY id DESC LIMIT $2",
        before,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// A movement booked to the shop's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Movement {
    pub id: i64,
    pub payment_id: i64,
    pub kind: String,
    pub amount_cents: i64,
    pub currency: Currency,
    pub description: String,
    pub booked_at: DateTime<Utc>,
    /// The bank's receipt of the payment (BNB's `voucherId`), when it gave one.
    pub voucher_id: Option<String>,
}

/// Books the movement of a paid payment; false when it was booked already.
pub async fn book_movement(conn: &mut PgConnection, payment: &Payment) -> Result<bool> {
    book_movement_with_voucher(conn, payment, None).await
}

/// [`book_movement`] with the bank's voucher. A movement booked already
/// without one gets it (a check that healed a movement before the bank
/// reported the voucher); one that has a voucher keeps it. True only when
/// the movement was booked now.
pub async fn book_movement_with_voucher(
    conn: &mut PgConnection,
    payment: &Payment,
    voucher_id: Option<&str>,
) -> Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO account_movements (payment_id, amount_cents, currency, description, voucher_id)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (payment_id) DO UPDATE SET voucher_id = EXCLUDED.voucher_id
             WHERE account_movements.voucher_id IS NULL AND EXCLUDED.voucher_id IS NOT NULL
           RETURNING (xmax = 0) AS "inserted!""#,
        payment.id,
        payment.amount_cents,
        payment.currency as _,
        &payment.description,
        voucher_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.unwrap_or(false))
}

/// The movements booked for a payment (at most one).
pub async fn movements(conn: &mut PgConnection, payment_id: i64) -> Result<Vec<Movement>> {
    Ok(sqlx::query_as!(
        Movement,
        r#"SELECT id, payment_id, kind, amount_cents, currency AS "currency: Currency",
                  description, booked_at, voucher_id
           FROM account_movements WHERE payment_id = $1 ORDER BY id"#,
        payment_id
    )
    .fetch_all(conn)
    .await?)
}

/// A page of payments still checked whose next check is overdue, by
/// `next_check_at`: most overdue first (through the partial index).
pub async fn overdue(conn: &mut PgConnection, page: Page) -> Result<Vec<Payment>> {
    Ok(crate::fetch_page!(
        query_payments,
        " FROM payments WHERE next_check_at IS NOT NULL AND next_check_at < $1
           AND (next_check_at, id) > (COALESCE($2, '-infinity'::timestamptz), COALESCE($3::bigint, 0))
         ORDER BY next_check_at, id LIMIT $4",
        page,
        conn
    )?)
}

/// Completed payments never booked, at most `limit`: a state the creating
/// and checking transactions never leave (they set `paid_at` and book the
/// movement together), but a row completed by hand or by an older version
/// might; the reconciler books what is missing ([`book_completed`]). Read
/// through the partial index on completed rows without `paid_at`, so its cost
/// follows the rows to repair, not every payment ever made.
pub async fn completed_without_movement(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<Payment>> {
    Ok(query_payments!(
        "SELECT ",
        " FROM payments WHERE status = 'completed' AND paid_at IS NULL
         ORDER BY id LIMIT $1",
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Books a completed payment found by [`completed_without_movement`]: its
/// movement (if missing) and `paid_at`, in one transaction, so it leaves the
/// repair scan. True when a movement was booked.
pub async fn book_completed(conn: &mut PgConnection, payment: &Payment) -> Result<bool> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let booked = book_movement(&mut tx, payment).await?;
    let query = sqlx::query!(
        "UPDATE payments SET paid_at = COALESCE(paid_at, now()), updated_at = now()
         WHERE id = $1 AND status = 'completed'",
        payment.id
    );
    crate::execute(&mut tx, query).await?;
    tx.commit().await?;
    Ok(booked)
}

/// Deletes check history recorded before `before`; how many rows went.
pub async fn delete_checks_before(conn: &mut PgConnection, before: DateTime<Utc>) -> Result<u64> {
    let query = sqlx::query!("DELETE FROM payment_checks WHERE checked_at < $1", before);
    crate::execute(conn, query).await
}

/// A run of the payment cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CleanupRun {
    pub period: String,
    pub checks_deleted: i64,
    pub dead_letters_deleted: i64,
    pub ran_at: DateTime<Utc>,
}

pub async fn record_cleanup(
    conn: &mut PgConnection,
    period: &str,
    checks_deleted: u64,
    dead_letters_deleted: u64,
) -> Result<()> {
    let query = sqlx::query!(
        "INSERT INTO payment_cleanup_runs (period, checks_deleted, dead_letters_deleted)
         VALUES ($1, $2, $3)",
        period,
        i64::try_from(checks_deleted).unwrap_or(i64::MAX),
        i64::try_from(dead_letters_deleted).unwrap_or(i64::MAX),
    );
    crate::execute(conn, query).await?;
    Ok(())
}

/// Every cleanup run, oldest first.
pub async fn cleanup_runs(conn: &mut PgConnection) -> Result<Vec<CleanupRun>> {
    Ok(sqlx::query_as!(
        CleanupRun,
        "SELECT period, checks_deleted, dead_letters_deleted, ran_at
         FROM payment_cleanup_runs ORDER BY id"
    )
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn amounts_are_exact_cents_from_decimal_strings() {
        for (text, cents) in [
            ("125.50", 12550),
            ("125.5", 12550),
            ("1", 100),
            ("0.01", 1),
            ("007.10", 710),
            ("999999999999.99", MAX_AMOUNT_CENTS),
        ] {
            assert_eq!(parse_amount(text), Ok(cents), "{text}");
        }
        for bad in [
            "",
            "0",
            "0.00",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.234",
            "12,50",
            "1e3",
            "abc",
            " 1",
            "1000000000000",
            "NaN",
            "1.0.0",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(format_amount(12550), "125.50");
        assert_eq!(format_amount(1), "0.01");
        assert_eq!(format_amount(100), "1.00");
        assert_eq!(
            parse_amount(&format_amount(MAX_AMOUNT_CENTS)),
            Ok(MAX_AMOUNT_CENTS)
        );
    }

    #[test]
    fn statuses_round_trip_and_three_are_final() {
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
        }
        let finals: Vec<_> = PaymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                PaymentStatus::Completed,
                PaymentStatus::Cancelled,
                PaymentStatus::Expired
            ]
        );
    }

    fn new_payment(qr_id: &str) -> NewPayment<'_> {
        NewPayment {
            qr_id,
            amount_cents: 12550,
            currency: Currency::Bob,
            description: "Pedido 42",
            status: PaymentStatus::Pending,
            qr_image_base64: "iVBOR",
            expires_at: Utc::now() + chrono::Duration::minutes(15),
            next_check_at: Some(Utc::now() + chrono::Duration::minutes(2)),
        }
    }

    #[tokio::test]
    async fn a_payment_books_one_movement_however_often_it_is_asked_to() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let p = insert(&mut conn, &new_payment("qr-1"))
            .await
            .expect("insert");
        assert_eq!((p.status, p.checks_made), (PaymentStatus::Pending, 0));
        assert_eq!(
            get_by_qr_id(&mut conn, "qr-1").await.expect("get"),
            Some(p.clone())
        );
        assert!(book_movement(&mut conn, &p).await.expect("book"));
        assert!(!book_movement(&mut conn, &p).await.expect("again"));
        let m = movements(&mut conn, p.id).await.expect("movements");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].amount_cents, m[0].currency), (12550, Currency::Bob));
        let dup = insert(&mut conn, &new_payment("qr-1")).await;
        assert!(
            matches!(dup, Err(crate::StoreError::Duplicate { .. })),
            "{dup:?}"
        );
        drop(conn);
        db.cleanup().await;
    }

    async fn voucher(conn: &mut PgConnection, payment_id: i64) -> Option<String> {
        movements(conn, payment_id).await.expect("movements")[0]
            .voucher_id
            .clone()
    }

    #[tokio::test]
    async fn the_voucher_is_kept_with_the_movement_and_never_replaced() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let healed = insert(&mut conn, &new_payment("qr-v1"))
            .await
            .expect("insert");
        // Healed without a voucher first; the check that reads it adds it.
        assert!(book_movement(&mut conn, &healed).await.expect("book"));
        assert_eq!(voucher(&mut conn, healed.id).await, None);
        assert!(
            !book_movement_with_voucher(&mut conn, &healed, Some("V-1"))
                .await
                .expect("voucher")
        );
        assert_eq!(voucher(&mut conn, healed.id).await.as_deref(), Some("V-1"));
        assert!(
            !book_movement_with_voucher(&mut conn, &healed, Some("V-2"))
                .await
                .expect("again")
        );
        assert_eq!(voucher(&mut conn, healed.id).await.as_deref(), Some("V-1"));
        let paid = insert(&mut conn, &new_payment("qr-v2"))
            .await
            .expect("insert");
        assert!(
            book_movement_with_voucher(&mut conn, &paid, Some("V-3"))
                .await
                .expect("book")
        );
        assert_eq!(voucher(&mut conn, paid.id).await.as_deref(), Some("V-3"));
        assert_eq!(movements(&mut conn, paid.id).await.expect("one").len(), 1);
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_check_is_recorded_once_and_applied_to_the_row() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let p = insert(&mut conn, &new_payment("qr-2"))
            .await
            .expect("insert");
        let check = NewCheck {
            payment_id: p.id,
            check_number: 1,
            outcome: CheckOutcome::Ok,
            status: Some(PaymentStatus::Completed),
            changed: true,
            error: None,
            due_at: p.next_check_at,
        };
        assert!(record_check(&mut conn, &check).await.expect("1"));
        assert!(!record_check(&mut conn, &check).await.expect("again"));
        let done = apply_check(
            &mut conn,
            p.id,
            &CheckApplied {
                checks_made: 1,
                status: PaymentStatus::Completed,
                next_check_at: None,
                operator_reason: None,
            },
        )
        .await
        .expect("apply");
        assert_eq!(get(&mut conn, p.id).await.expect("get"), Some(done.clone()));
        assert_eq!(
            (done.status, done.checks_made, done.next_check_at),
            (PaymentStatus::Completed, 1, None)
        );
        assert!(done.paid_at.is_some() && !done.needs_operator);
        // Completed by a check: booked with it, not the repair's business.
        assert!(
            completed_without_movement(&mut conn, 10)
                .await
                .expect("scan")
                .is_empty()
        );
        // Completed by hand (no paid_at): repaired once, movement and paid_at.
        let by_hand = insert(&mut conn, &new_payment("qr-3"))
            .await
            .expect("insert");
        sqlx::query("UPDATE payments SET status = 'completed', next_check_at = NULL WHERE id = $1")
            .bind(by_hand.id)
            .execute(&mut *conn)
            .await
            .expect("by hand");
        let found = completed_without_movement(&mut conn, 10)
            .await
            .expect("scan");
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [by_hand.id]);
        assert!(book_completed(&mut conn, &found[0]).await.expect("book"));
        assert!(
            completed_without_movement(&mut conn, 10)
                .await
                .expect("scan")
                .is_empty()
        );
        assert!(
            get(&mut conn, by_hand.id)
                .await
                .expect("get")
                .expect("row")
                .paid_at
                .is_some()
        );
        assert!(
            overdue(
                &mut conn,
                Page {
                    before: Utc::now() + chrono::Duration::days(1),
                    after: None,
                    limit: 10
                }
            )
            .await
            .expect("scan")
            .is_empty()
        );
        let history = checks(&mut conn, p.id).await.expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(
            delete_checks_before(&mut conn, Utc::now() + chrono::Duration::seconds(1))
                .await
                .expect("delete"),
            1
        );
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn only_flagged_payments_are_listed_newest_first_until_reopened() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let flag = |reason: &str| CheckApplied {
            checks_made: 20,
            status: PaymentStatus::Pending,
            next_check_at: None,
            operator_reason: Some(reason.to_owned()),
        };
        let older = insert(&mut conn, &new_payment("qr-f1"))
            .await
            .expect("insert");
        let checked = insert(&mut conn, &new_payment("qr-f2"))
            .await
            .expect("insert");
        let newer = insert(&mut conn, &new_payment("qr-f3"))
            .await
            .expect("insert");
        apply_check(&mut conn, older.id, &flag("20 checks, still pending"))
            .await
            .expect("flag");
        apply_check(&mut conn, newer.id, &flag("20 checks, still pending"))
            .await
            .expect("flag");
        let listed = flagged(&mut conn, None, 10).await.expect("flagged");
        assert_eq!(
            listed.iter().map(|p| p.id).collect::<Vec<_>>(),
            [newer.id, older.id],
            "{} is still checked",
            checked.id
        );
        assert_eq!(
            listed[0].operator_reason.as_deref(),
            Some("20 checks, still pending")
        );
        let page = flagged(&mut conn, Some(newer.id), 1).await.expect("page");
        assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), [older.id]);
        assert!(
            reopen_flagged(&mut conn, newer.id)
                .await
                .expect("reopen")
                .is_some()
        );
        let listed = flagged(&mut conn, None, 10).await.expect("flagged");
        assert_eq!(listed.iter().map(|p| p.id).collect::<Vec<_>>(), [older.id]);
        drop(conn);
        db.cleanup().await;
    }

    #[tokio::test]
    async fn a_payment_ended_by_hand_stops_its_checks_and_a_resolved_flag_keeps_its_reason() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let live = insert(&mut conn, &new_payment("qr-live"))
            .await
            .expect("insert");
        let flagged = insert(&mut conn, &new_payment("qr-flagged"))
            .await
            .expect("insert");
        let flag = CheckApplied {
            checks_made: 20,
            status: PaymentStatus::Pending,
            next_check_at: None,
            operator_reason: Some("no final status after 20 checks".into()),
        };
        apply_check(&mut conn, flagged.id, &flag)
            .await
            .expect("flag");
        let resolve = ByHand {
            status: PaymentStatus::Completed,
            reason: "paid in cash at the counter",
            by: "ops-alice (rsq_ab12cd34)",
        };
        // Only a flagged payment is resolved; a cancel ends any live one.
        assert_eq!(
            end_by_hand(&mut conn, live.id, &resolve, Ending::Flagged)
                .await
                .expect("resolve"),
            None
        );
        let cancel = ByHand {
            status: PaymentStatus::Cancelled,
            reason: "cancelled at the bank",
            by: "bootstrap-user (API_USER_TOKEN)",
        };
        let cancelled = end_by_hand(&mut conn, live.id, &cancel, Ending::AnyLive)
            .await
            .expect("cancel")
            .expect("a live payment is cancelled");
        assert_eq!(
            (cancelled.status, cancelled.next_check_at),
            (PaymentStatus::Cancelled, None)
        );
        assert!(
            cancelled.operator_history.0.is_empty(),
            "it was never flagged"
        );
        assert_eq!(
            end_by_hand(&mut conn, live.id, &cancel, Ending::AnyLive)
                .await
                .expect("again"),
            None,
            "a final status is never changed"
        );

        let resolved = end_by_hand(&mut conn, flagged.id, &resolve, Ending::Flagged)
            .await
            .expect("resolve")
            .expect("a flagged payment is resolved");
        assert_eq!(
            (resolved.status, resolved.needs_operator, resolved.paid_at),
            (PaymentStatus::Completed, false, None)
        );
        let past = &resolved.operator_history.0;
        assert_eq!(past.len(), 1);
        assert_eq!(
            past[0].error.as_deref(),
            Some("no final status after 20 checks")
        );
        assert_eq!(
            past[0].resolution,
            Some(crate::Resolution {
                status: "completed".into(),
                reason: "paid in cash at the counter".into(),
                by: "ops-alice (rsq_ab12cd34)".into(),
            })
        );
        assert!(book_completed(&mut conn, &resolved).await.expect("book"));
        assert!(!book_completed(&mut conn, &resolved).await.expect("again"));
        assert_eq!(movements(&mut conn, flagged.id).await.expect("m").len(), 1);
        drop(conn);
        db.cleanup().await;
    }
}
