//! The photo workload's rows for the reconciler ([`service::reconcile`]):
//! photos not settled (`pending`, or `processing` with no move) past the
//! threshold get their processing job again, as the gateway enqueues it
//! (`jobs::rows::photo_job`), with the photo's own key. A photo
//! whose job still exists (waiting, running or retrying) gets "duplicate",
//! never a second job; one whose job was lost (a gateway killed after its
//! commit, a Redis that lost its data) gets it back.

use chrono::{DateTime, Utc};
use jobs::v1::ReconcilePhotos;
use service::reconcile::{Pending, PendingRow};
use store::PgConnection;
use store::photos;

/// Photos not settled since before the threshold (`photo.reconcile`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsettledPhotos;

impl Pending for UnsettledPhotos {
    type Message = ReconcilePhotos;
    const NAME: &'static str = "photo-reconcile";
    const ROW: &'static str = "photo";

    async fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: i64,
    ) -> anyhow::Result<Vec<PendingRow>> {
        let rows = photos::unsettled_before(conn, before, after, limit).await?;
        Ok(rows
            .iter()
            .map(|p| PendingRow::new(p.id, p.updated_at, jobs::rows::photo_job(p.id)))
            .collect())
    }
}

/// Runs `photo.reconcile` jobs.
pub type Reconciler = service::reconcile::Reconciler<UnsettledPhotos>;
