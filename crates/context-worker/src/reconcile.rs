//! The context workload's rows for the reconciler ([`service::reconcile`]):
//! companies still `pending` past the threshold get their condensation job
//! again, as the gateway enqueues it (`jobs::rows::context_job`), with the
//! company's key.

use jobs::v1::ReconcileContexts;
use service::reconcile::Pending;
use store::companies::{self, Company};
use store::{Page, PgConnection};

/// Companies whose context is still pending (`context.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingContexts;

impl Pending for PendingContexts {
    type Message = ReconcileContexts;
    type Row = Company;

    async fn pending(&self, conn: &mut PgConnection, page: Page) -> store::Result<Vec<Company>> {
        companies::pending_before(conn, page).await
    }
}

/// Runs `context.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<PendingContexts>;
