//! The payment workload's rows for the reconciler ([`service::reconcile`]):
//! every payment whose `next_check_at` is overdue by the threshold gets its
//! check again, with the check's own key, on the lane of its status, runnable
//! at once; and a completed payment never booked (no `paid_at`: completed by
//! hand or by an older version) gets its movement and `paid_at` (the repair
//! step, read through a partial index that holds only such rows). A check
//! whose job still exists gets "duplicate", never a second job; one whose job
//! was lost (a gateway killed after its commit, a Redis that lost its data)
//! gets it back. The check is the job of a payment row (`jobs::rows`).

use jobs::v1::ReconcilePayments;
use service::reconcile::Pending;
use store::payments::{self, Payment};
use store::{Page, PgConnection};
use tracing::warn;

/// Payments whose next check is overdue (`payment.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OverdueChecks;

impl Pending for OverdueChecks {
    type Message = ReconcilePayments;
    type Row = Payment;

    async fn pending(&self, conn: &mut PgConnection, page: Page) -> store::Result<Vec<Payment>> {
        payments::overdue(conn, page).await
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
