//! The sync workload's rows for the reconciler ([`service::reconcile`]): the
//! active run, when it has not moved for a while, gets its job again, as the
//! gateway enqueues it (`jobs::rows::sync_run_job`), with the run's own key.
//! A run whose job still exists gets "duplicate", never a second job; one
//! whose job was lost (a gateway killed after its commit, a Redis that lost its
//! data) gets it back and resumes after its last page, instead of blocking new
//! runs with 409.

use jobs::v1::ReconcileSyncRuns;
use service::reconcile::Pending;
use store::sync_runs::{self, SyncRun};
use store::{Page, PgConnection};

/// The active run, if it has not moved since the threshold (`wispro.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StalledRuns;

impl Pending for StalledRuns {
    type Message = ReconcileSyncRuns;
    type Row = SyncRun;

    async fn pending(&self, conn: &mut PgConnection, page: Page) -> store::Result<Vec<SyncRun>> {
        // One run at a time: at most one row, whatever the batch, on the first page.
        if page.after.is_some() {
            return Ok(Vec::new());
        }
        Ok(sync_runs::active_since(conn, page.before)
            .await?
            .into_iter()
            .collect())
    }
}

/// Runs `wispro.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<StalledRuns>;
