//! The audit log as the API shows it: `GET /api/admin/audit` and the dashboard.

pub use store::audit::AuditEntry;

use crate::AppState;
use crate::error::ApiError;

/// Default and largest page of entries.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// A page of entries, newest first, and the `before` of the next one.
#[derive(Debug)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<i64>,
}

/// Entries older than `before` (None: the newest), at most `limit`.
pub async fn page(
    state: &AppState,
    before: Option<i64>,
    limit: i64,
) -> Result<AuditPage, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    // One more than asked says whether there is a next page.
    let mut entries = store::audit::list(&mut conn, before, limit + 1).await?;
    let next = if entries.len() as i64 > limit {
        entries.truncate(usize::try_from(limit).unwrap_or(0));
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage { entries, next })
}
