//! The `dashboard_sessions` table: the gateway dashboard's signed-in browsers,
//! each found by the SHA-256 of its cookie's token.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::Result;

/// A session to store at sign-in.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 of the cookie's token.
    pub token_hash: &'a [u8],
    /// The API key signed in with; None for a bootstrap token.
    pub key_id: Option<i64>,
    pub name: &'a str,
    pub prefix: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub key_id: Option<i64>,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub csrf: String,
    /// The outcome of the last action, not yet shown.
    pub flash: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(conn: &mut PgConnection, s: NewSession<'_>) -> Result<()> {
    sqlx::query!(
        "INSERT INTO dashboard_sessions (token_hash, key_id, name, prefix, role, csrf, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        s.token_hash,
        s.key_id,
        s.name,
        s.prefix,
        s.role,
        s.csrf,
        s.expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The session of `token_hash` while it has not expired and its key (if any)
/// is neither revoked nor expired: asked of the database on every request, so
/// revoking a key ends its sessions at once, on every replica.
pub async fn find(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as!(
        SessionRow,
        "SELECT s.key_id, s.name, s.prefix, s.role, s.csrf, s.flash, s.expires_at
           FROM dashboard_sessions s
           LEFT JOIN api_keys k ON k.id = s.key_id
          WHERE s.token_hash = $1 AND s.expires_at > now()
            AND (s.key_id IS NULL
                 OR (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))",
        token_hash,
    )
    .fetch_optional(conn)
    .await?)
}

/// Leaves `flash` for the session's next page.
pub async fn set_flash(conn: &mut PgConnection, token_hash: &[u8], flash: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE dashboard_sessions SET flash = $2 WHERE token_hash = $1",
        token_hash,
        flash,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears `flash` once shown, unless a newer one replaced it meanwhile.
pub async fn clear_flash(conn: &mut PgConnection, token_hash: &[u8], shown: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE dashboard_sessions SET flash = NULL WHERE token_hash = $1 AND flash = $2",
        token_hash,
        shown,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sign-out.
pub async fn delete(conn: &mut PgConnection, token_hash: &[u8]) -> Result<()> {
    sqlx::query!(
        "DELETE FROM dashboard_sessions WHERE token_hash = $1",
        token_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes expired sessions; how many.
pub async fn delete_expired(conn: &mut PgConnection) -> Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM dashboard_sessions WHERE expires_at <= now()")
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
