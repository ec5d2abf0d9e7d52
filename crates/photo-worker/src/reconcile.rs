//! The photo reconciler: a repeating job (`photo.reconcile`, once per period
//! across replicas) that re-enqueues, with each photo's own dedup key, the
//! processing of photos not settled (`pending`, or `processing` with no move)
//! past a threshold. A photo whose job still exists (waiting, running or
//! retrying) gets "duplicate", never a second job; one whose job was lost (a
//! gateway killed after its commit, a Redis that lost its data) gets it back.

use std::time::Duration;

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::{ProcessPhoto, ReconcilePhotos};
use queue_core::{Enqueued, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use service::config::ReconcileConfig;
use store::PgPool;
use store::photos;
use tracing::info;

/// The repeating job's name (its dedup key per period).
pub const NAME: &str = "photo-reconcile";

/// The processing job of photo `id`, as the gateway enqueues it.
pub fn photo_job(id: i64) -> NewJob {
    jobs::new_job(&ProcessPhoto { photo_id: id }).unique_until_settled(photos::photo_job_key(id))
}

/// The repeating job to declare on the worker.
pub fn repeating_job(every: Duration) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, queue_core::Every::interval(every)?, |_| {
        jobs::new_job(&ReconcilePhotos {})
    })
}

/// Runs `photo.reconcile` jobs.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pool: PgPool,
    producer: Producer,
    queue: Queue,
    config: ReconcileConfig,
}

impl Reconciler {
    pub fn new(pool: PgPool, producer: Producer, queue: Queue, config: ReconcileConfig) -> Self {
        Self {
            pool,
            producer,
            queue,
            config,
        }
    }

    /// One run: how many unsettled photos it looked at and how many jobs it enqueued.
    pub async fn run_once(&self) -> anyhow::Result<(usize, usize)> {
        let after =
            chrono::Duration::from_std(self.config.after).context("the reconcile threshold")?;
        let rows = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")?;
            photos::unsettled_before(
                &mut conn,
                chrono::Utc::now() - after,
                i64::from(self.config.batch),
            )
            .await
            .context("reading unsettled photos")?
        };
        let enqueued = self
            .producer
            .enqueue_many(&self.queue, rows.iter().map(|p| photo_job(p.id)))
            .await
            .context("enqueueing photo jobs")?;
        let mut added = 0;
        for (photo, job) in rows.iter().zip(&enqueued) {
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    photo.id = photo.id,
                    job.id = job.id(),
                    "reconciler enqueued a missing photo job"
                );
                added += 1;
            }
        }
        Ok((rows.len(), added))
    }
}

impl JobHandler<ReconcilePhotos> for Reconciler {
    async fn handle(&self, _msg: ReconcilePhotos, job: Job) -> Result<(), JobError> {
        let (unsettled, enqueued) = self.run_once().await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            reconcile.unsettled = unsettled,
            reconcile.enqueued = enqueued,
            "photo reconciliation done"
        );
        Ok(())
    }
}
