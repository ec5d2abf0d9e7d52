//! The payment workload's rows for the reconciler ([`service::reconcile`]):
//! every payment whose `next_check_at` is overdue by the threshold gets its
//! check again, with the check's own key, on the lane of its status, runnable
//! at once; and a completed payment never booked (no `paid_at`: completed by
//! hand or by an older version) gets its movement and `paid_at` (the repair
//! step, read through a partial index that holds only such rows). A check whose job still exists gets "duplicate", never a
//! second job; one whose job was lost (a gateway killed after its commit, a
//! Redis that lost its data) gets it back.

use chrono::{DateTime, Utc};
use jobs::v1::ReconcilePayments;
use service::reconcile::{Pending, PendingRow};
use store::PgConnection;
use store::payments;
use tracing::warn;

/// Payments whose next check is overdue (`payment.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OverdueChecks;

impl Pending for OverdueChecks {
    type Message = ReconcilePayments;
    const NAME: &'static str = "payment-reconcile";
    const ROW: &'static str = "payment";

    async fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> anyhow::Result<Vec<PendingRow>> {
        let rows = payments::overdue(conn, before, after, limit).await?;
        Ok(rows
            .iter()
            .filter_map(|p| {
                let due = p.next_check_at?;
                ::payments::next_check_job(p).map(|job| PendingRow::new(p.id, due, job))
            })
            .collect())
    }

    async fn repair(&self, conn: &mut PgConnection, limit: i64) -> anyhow::Result<usize> {
        let mut booked = 0;
        for p in payments::completed_without_movement(conn, limit).await? {
            if payments::book_completed(conn, &p).await? {
                warn!(
                    payment.id = p.id,
                    "reconciler booked the missing movement of a completed payment"
                );
                booked += 1;
            }
        }
        Ok(booked)
    }
}

/// Runs `payment.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<OverdueChecks>;
