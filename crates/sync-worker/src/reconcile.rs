//! The sync reconciler: a repeating job (`wispro.reconcile`, once per period
//! across replicas) that re-enqueues, with the run's own dedup key, the job of
//! the active run when it has not moved for a while. A run whose job still
//! exists gets "duplicate", never a second job; one whose job was lost (a
//! gateway killed after its commit, a Redis that lost its data) gets it back
//! and resumes after its last page, instead of blocking new runs with 409.

use std::time::Duration;

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::{ReconcileSyncRuns, WisproSyncRun};
use queue_core::{Enqueued, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use service::config::ReconcileConfig;
use store::PgPool;
use store::sync_runs::{self, SyncRun};
use tracing::info;

/// The repeating job's name (its dedup key per period).
pub const NAME: &str = "wispro-reconcile";

/// The job of `run`, as the gateway enqueues it.
pub fn run_job(run: &SyncRun) -> NewJob {
    jobs::new_job(&WisproSyncRun {
        run_id: run.id,
        requested_by: run.requested_by.clone(),
    })
    .unique_until_settled(sync_runs::job_key(run.id))
}

pub fn repeating_job(every: Duration) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, queue_core::Every::interval(every)?, |_| {
        jobs::new_job(&ReconcileSyncRuns {})
    })
}

/// Runs `wispro.reconcile` jobs.
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
}

impl JobHandler<ReconcileSyncRuns> for Reconciler {
    async fn handle(&self, _msg: ReconcileSyncRuns, job: Job) -> Result<(), JobError> {
        let after = chrono::Duration::from_std(self.config.after)
            .context("the reconcile threshold")
            .map_err(JobError::Permanent)?;
        let run = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")
                .map_err(JobError::Retry)?;
            sync_runs::active_since(&mut conn, chrono::Utc::now() - after)
                .await
                .context("reading the active run")
                .map_err(JobError::Retry)?
        };
        let Some(run) = run else {
            return Ok(());
        };
        let enqueued = self
            .producer
            .enqueue(&self.queue, run_job(&run))
            .await
            .context("enqueueing the run's job")
            .map_err(JobError::Retry)?;
        if !matches!(enqueued, Enqueued::Duplicate { .. }) {
            info!(
                sync.run_id = run.id,
                job.id = enqueued.id(),
                reconcile.job = job.id(),
                "reconciler enqueued a missing sync job"
            );
        }
        Ok(())
    }
}
