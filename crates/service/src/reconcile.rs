//! The reconciler every workload runs, so that a row and its job never disagree
//! for long.
//!
//! A request commits its row before it enqueues, so a gateway killed in between,
//! an enqueue whose reply was lost, or a Redis that lost its data can leave a
//! pending row with no job. A reconciler is a repeating job on the workload's
//! own queue (once per period across replicas) that reads the oldest rows still
//! pending past a threshold (a partial index on pending rows keeps this cheap,
//! in bounded batches) and enqueues their jobs with the row's own key, unique
//! until settled: a row whose job still exists is answered "duplicate" and gets
//! no second one. A workload says only which rows are pending and what their
//! job is ([`Pending`]); the reading, enqueueing, logging and scheduling are here.

use std::future::Future;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tracing::info;

use jobs::{JobHandler, JobKind};
use queue_core::{Enqueued, Every, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use store::{PgConnection, PgPool};

use crate::WorkerService;
use crate::config::ReconcileConfig;

/// What a workload tells the reconciler: its rows left pending and their jobs.
pub trait Pending: Send + Sync + 'static {
    /// The payload of the reconcile job (`ReconcileQr`, ...), a kind of the
    /// workload's own queue.
    type Message: JobKind;
    /// The repeating job's name, as `queuectl stats` shows it (`qr-reconcile`).
    const NAME: &'static str;
    /// What a row is, in log lines (`person`, `company`).
    const ROW: &'static str;

    /// The rows pending since before `before`, oldest first, at most `limit`:
    /// each row's id and the job that settles it, with the row's dedup key.
    fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        limit: i64,
    ) -> impl Future<Output = anyhow::Result<Vec<(i64, NewJob)>>> + Send;

    /// Mends, before the jobs are enqueued, what a workload can repair in
    /// PostgreSQL alone (at most `limit` rows), and says how many it mended.
    /// Most workloads have nothing to mend.
    fn repair(
        &self,
        conn: &mut PgConnection,
        limit: i64,
    ) -> impl Future<Output = anyhow::Result<usize>> + Send {
        let _ = (conn, limit);
        std::future::ready(Ok(0))
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Pending rows older than the threshold that were looked at.
    pub pending: usize,
    /// Jobs enqueued for rows that had none.
    pub enqueued: usize,
    /// Rows mended by [`Pending::repair`].
    pub repaired: usize,
}

/// Runs a workload's reconcile jobs: a [`JobHandler`] of `P::Message`.
#[derive(Debug, Clone)]
pub struct Reconciler<P> {
    pool: PgPool,
    producer: Producer,
    queue: Queue,
    config: ReconcileConfig,
    rows: P,
}

impl<P: Pending> Reconciler<P> {
    pub fn new(
        pool: PgPool,
        producer: Producer,
        queue: Queue,
        config: ReconcileConfig,
        rows: P,
    ) -> Self {
        Self {
            pool,
            producer,
            queue,
            config,
            rows,
        }
    }

    /// The reconciler of `svc`'s queue, database and broker.
    pub fn of(svc: &WorkerService, config: ReconcileConfig, rows: P) -> Self {
        Self::new(
            svc.pool().clone(),
            Producer::new(svc.broker().clone()),
            svc.queue().clone(),
            config,
            rows,
        )
    }

    /// The repeating job that runs it every `config.interval`, to declare on
    /// the worker ([`WorkerService::repeat`]).
    pub fn repeating_job(&self) -> queue_core::Result<RepeatingJob> {
        RepeatingJob::new(P::NAME, Every::interval(self.config.interval)?, |_| {
            jobs::new_job(&P::Message::default())
        })
    }

    /// One run: enqueues the jobs of the oldest rows pending past the threshold.
    pub async fn run_once(&self) -> anyhow::Result<Reconciled> {
        let after =
            chrono::Duration::from_std(self.config.after).context("the reconcile threshold")?;
        let limit = i64::from(self.config.batch);
        let (rows, repaired) = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")?;
            let repaired = self
                .rows
                .repair(&mut conn, limit)
                .await
                .with_context(|| format!("repairing {} rows", P::ROW))?;
            let rows = self
                .rows
                .pending(&mut conn, Utc::now() - after, limit)
                .await
                .with_context(|| format!("reading the pending {} rows", P::ROW))?;
            (rows, repaired)
        };
        let mut done = Reconciled {
            pending: rows.len(),
            enqueued: 0,
            repaired,
        };
        let (ids, jobs): (Vec<i64>, Vec<NewJob>) = rows.into_iter().unzip();
        // One pipelined round trip for the whole batch.
        let enqueued = self
            .producer
            .enqueue_many(&self.queue, jobs)
            .await
            .with_context(|| format!("enqueueing the jobs of {} {} rows", ids.len(), P::ROW))?;
        for (id, job) in ids.iter().zip(&enqueued) {
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    reconcile.row = P::ROW,
                    reconcile.row_id = id,
                    job.id = job.id(),
                    "reconciler enqueued a missing job"
                );
                done.enqueued += 1;
            }
        }
        Ok(done)
    }
}

impl<P: Pending> JobHandler<P::Message> for Reconciler<P> {
    async fn handle(&self, _msg: P::Message, job: Job) -> Result<(), JobError> {
        // Another run comes next period: a failed one is retried by the runner
        // like any job, and what it missed is found again then.
        let done = self.run_once().await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            reconcile.name = P::NAME,
            reconcile.pending = done.pending,
            reconcile.enqueued = done.enqueued,
            reconcile.repaired = done.repaired,
            "reconciliation done"
        );
        Ok(())
    }
}
