//! The QR workload's rows for the reconciler ([`service::reconcile`]): persons
//! still `pending` past the threshold get their QR job again: the one the
//! gateway enqueues at registration (`jobs::rows::qr_job`), with the row's key.

use chrono::{DateTime, Utc};
use jobs::v1::ReconcileQr;
use service::reconcile::{Pending, PendingRow};
use store::PgConnection;
use store::persons;

/// Persons whose QR is still pending (`qr.reconcile`, `qr-reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingQrs;

impl Pending for PendingQrs {
    type Message = ReconcileQr;
    const NAME: &'static str = "qr-reconcile";
    const ROW: &'static str = "person";

    async fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> anyhow::Result<Vec<PendingRow>> {
        let rows = persons::pending_before(conn, before, after, limit).await?;
        Ok(rows
            .iter()
            .map(|p| PendingRow::new(p.id, p.created_at, jobs::rows::qr_job(p)))
            .collect())
    }
}

/// Runs `qr.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<PendingQrs>;
