//! The photo workload's rows for the reconciler ([`service::reconcile`]):
//! photos not settled (`pending`, or `processing` with no move) past the
//! threshold get their processing job again, as the gateway enqueues it
//! (`jobs::rows::photo_job`), with the photo's own key. A photo
//! whose job still exists (waiting, running or retrying) gets "duplicate",
//! never a second job; one whose job was lost (a gateway killed after its
//! commit, a Redis that lost its data) gets it back.

use jobs::v1::ReconcilePhotos;
use service::reconcile::Pending;
use store::photos::{self, Photo};
use store::{Page, PgConnection};

/// Photos not settled since before the threshold (`photo.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsettledPhotos;

impl Pending for UnsettledPhotos {
    type Message = ReconcilePhotos;
    type Row = Photo;

    async fn pending(&self, conn: &mut PgConnection, page: Page) -> store::Result<Vec<Photo>> {
        photos::unsettled_before(conn, page).await
    }
}

/// Runs `photo.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<UnsettledPhotos>;
