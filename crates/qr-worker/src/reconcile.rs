//! The QR workload's rows for the reconciler ([`service::reconcile`]): persons
//! still `pending` past the threshold get their QR job again: the one the
//! gateway enqueues at registration (`jobs::rows::qr_job`), with the row's key.

use jobs::v1::ReconcileQr;
use service::reconcile::Pending;
use store::persons::{self, Person};
use store::{Page, PgConnection};

/// Persons whose QR is still pending (`qr.reconcile`, `qr-reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingQrs;

impl Pending for PendingQrs {
    type Message = ReconcileQr;
    type Row = Person;

    async fn pending(&self, conn: &mut PgConnection, page: Page) -> store::Result<Vec<Person>> {
        persons::pending_before(conn, page).await
    }
}

/// Runs `qr.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<PendingQrs>;
