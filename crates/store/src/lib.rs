#![doc = include_str!("../README.md")]

pub mod audit;
pub mod companies;
pub mod dashboard_sessions;
pub mod keys;
pub mod lists;
pub mod payments;
pub mod persons;
pub mod photos;
pub mod sync_runs;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod users;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgArguments, PgPoolOptions};
use sqlx::query::Query;
pub use sqlx::types::Json;
pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the row; `constraint` names it.
    #[error("duplicate value for {constraint}")]
    Duplicate { constraint: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    fn from_sqlx(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Duplicate {
                constraint: db.constraint().unwrap_or("unique").to_owned(),
            };
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A row's place in the order pending rows are read in: its time (created,
/// last moved, due) and its id.
pub type Position = (DateTime<Utc>, i64);

/// A page of rows pending since before `before`, oldest first: those after
/// `after` in (time, id) order (None: from the first), at most `limit`. The
/// reconciler's keyset pages over a partial index on pending rows.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub before: DateTime<Utc>,
    pub after: Option<Position>,
    pub limit: i64,
}

/// The rows of `$page` through a module's query macro (`query_persons`):
/// `$from` is the rest of the query after the columns, with `$1` the page's
/// `before`, `$2` and `$3` the time and id of its `after` (NULL from the
/// first), `$4` its `limit`. The one binding of a [`Page`] to its query.
macro_rules! fetch_page {
    ($query:ident, $from:literal, $page:expr, $conn:expr) => {{
        let page: $crate::Page = $page;
        $query!(
            "SELECT ",
            $from,
            page.before,
            page.after.map(|(at, _)| at),
            page.after.map(|(_, id)| id),
            page.limit,
        )
        .fetch_all($conn)
        .await
    }};
}
pub(crate) use fetch_page;

/// Longest text kept in an error column (`qr_error`, `context_error`, ...).
pub const MAX_ERROR_LEN: usize = 1000;

/// `text` as an error column keeps it: at most [`MAX_ERROR_LEN`] bytes, cut at
/// a character boundary with `…`.
pub fn error_text(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A failure that an operator's retry of a dead letter reopened: the row's
/// error (or flag reason) at that moment, kept in its history
/// (`qr_error_history`, `context_error_history`, `operator_history`). A flag
/// an operator resolved by hand instead (a payment) carries its [`Resolution`],
/// `reopened_at` then being when it was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastError {
    pub error: Option<String>,
    pub reopened_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// How a row was settled by hand: the status it was given, why, and by whom
/// (the audit log's actor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub status: String,
    pub reason: String,
    pub by: String,
}

/// The laptop default: the local PostgreSQL without TLS (a local server's
/// snakeoil certificate would cost a handshake per connection for nothing).
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable";

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/db`
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl StoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the pool and applies pending migrations.
pub async fn connect(config: &StoreConfig) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        // No ping round trip on every checkout: a broken connection fails its query
        // and is replaced, and callers' errors are retried (jobs) or reported (HTTP).
        .test_before_acquire(false)
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect(&config.url)
        .await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the migrations in `crates/store/migrations` that have not run yet.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// Answers whether PostgreSQL responds (for readiness probes).
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query_scalar!("SELECT 1").fetch_one(pool).await?;
    Ok(())
}

/// Runs a checked statement (`sqlx::query!`); how many rows it changed.
pub(crate) async fn execute(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<u64> {
    Ok(query.execute(conn).await?.rows_affected())
}

/// Runs a checked statement; whether it changed exactly one row, which is how
/// a guarded status move or an `ON CONFLICT DO NOTHING` insert says it happened.
pub(crate) async fn changed_one(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<bool> {
    Ok(execute(conn, query).await? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        assert_eq!(error_text("short"), "short");
        let long = "ñ".repeat(MAX_ERROR_LEN);
        let cut = error_text(&long);
        assert!(
            cut.ends_with('…') && cut.len() <= MAX_ERROR_LEN + '…'.len_utf8(),
            "{}",
            cut.len()
        );
    }
}
