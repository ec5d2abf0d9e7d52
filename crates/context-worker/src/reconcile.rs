//! The context workload's rows for the reconciler ([`service::reconcile`]):
//! companies still `pending` past the threshold get their condensation job
//! again, as the gateway enqueues it (`jobs::rows::context_job`), with the
//! company's key.

use chrono::{DateTime, Utc};
use jobs::v1::ReconcileContexts;
use service::reconcile::{Pending, PendingRow};
use store::PgConnection;
use store::companies;

/// Companies whose context is still pending (`context.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingContexts;

impl Pending for PendingContexts {
    type Message = ReconcileContexts;
    const NAME: &'static str = "context-reconcile";
    const ROW: &'static str = "company";

    async fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> anyhow::Result<Vec<PendingRow>> {
        let rows = companies::pending_before(conn, before, after, limit).await?;
        Ok(rows
            .iter()
            .map(|c| PendingRow::new(c.id, c.created_at, jobs::rows::context_job(c)))
            .collect())
    }
}

/// Runs `context.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<PendingContexts>;
