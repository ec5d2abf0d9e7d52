//! The context workload's rows for the reconciler ([`service::reconcile`]):
//! companies still `pending` past the threshold get their condensation job
//! again, with the company's key.

use chrono::{DateTime, Utc};
use jobs::v1::{CondenseCompanyContext, ReconcileContexts};
use queue_core::NewJob;
use service::reconcile::{Pending, PendingRow};
use store::PgConnection;
use store::companies::{self, Company};

/// The condensation job of `company`, as the gateway enqueues it.
pub fn context_job(company: &Company) -> NewJob {
    jobs::new_job(&CondenseCompanyContext {
        company_id: company.id,
    })
    .unique_until_settled(companies::context_job_key(company.id))
}

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
            .map(|c| PendingRow::new(c.id, c.created_at, context_job(c)))
            .collect())
    }
}

/// Runs `context.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<PendingContexts>;
