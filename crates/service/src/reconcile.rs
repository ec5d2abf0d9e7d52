//! The reconciler every workload runs, so that a row and its job never disagree
//! for long.
//!
//! A request commits its row before it enqueues, so a gateway killed in between,
//! an enqueue whose reply was lost, or a Redis that lost its data can leave a
//! pending row with no job. A reconciler is a repeating job on the workload's
//! own queue (once per period across replicas) that reads the rows still
//! pending past a threshold, oldest first (a partial index on pending rows keeps
//! this cheap), and enqueues their jobs with the row's own key, unique until
//! settled: a row whose job still exists is answered "duplicate" and gets no
//! second one. It pages through them (keyset on the index's order, one
//! pipelined enqueue per page), so old rows whose jobs exist never hide newer
//! rows without one; a run reads at most [`MAX_PAGES`] pages, and the next run
//! of this process continues where it stopped. A workload says only which rows
//! are pending and what their job is ([`Pending`]); the reading, enqueueing,
//! logging and scheduling are here, and a worker registers it with one call,
//! [`WorkerService::reconciler`].

use std::future::Future;
use std::ops::DerefMut;
use std::sync::{Arc, Mutex};

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

    /// The rows pending since before `before`, oldest first, at most `limit`,
    /// and only those after `after` in that order (a row's time and id, as
    /// [`PendingRow`] gives them; None: from the first): each row with the job
    /// that settles it, with the row's dedup key.
    fn pending(
        &self,
        conn: &mut PgConnection,
        before: DateTime<Utc>,
        after: Option<Position>,
        limit: i64,
    ) -> impl Future<Output = anyhow::Result<Vec<PendingRow>>> + Send;

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

/// A row's place in the order the rows are read in: its time and id.
pub type Position = (DateTime<Utc>, i64);

/// A row left pending, as [`Pending::pending`] reads it.
#[derive(Debug, Clone)]
pub struct PendingRow {
    /// The row's id, in log lines and in the order after its time.
    pub id: i64,
    /// The time the rows are ordered by (with the id): created, last moved, due.
    pub at: DateTime<Utc>,
    /// The job that settles the row, with the row's dedup key.
    pub job: NewJob,
}

impl PendingRow {
    pub fn new(id: i64, at: DateTime<Utc>, job: NewJob) -> Self {
        Self { id, at, job }
    }
}

/// Most pages of [`ReconcileConfig::batch`] rows one run reads: bounds a run
/// when many rows are pending (a Redis that was down for a while); the next
/// run goes on from there.
pub const MAX_PAGES: usize = 20;

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
    /// Where the next run starts when the last one stopped at [`MAX_PAGES`].
    resume: Arc<Mutex<Option<Position>>>,
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
            resume: Arc::default(),
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

    /// The repeating job that runs it every `config.interval`, which
    /// [`WorkerService::reconciler`] declares on the worker.
    pub fn repeating_job(&self) -> queue_core::Result<RepeatingJob> {
        RepeatingJob::new(P::NAME, Every::interval(self.config.interval)?, |_| {
            jobs::new_job(&P::Message::default())
        })
    }

    /// One run: enqueues the jobs of the rows pending past the threshold that
    /// have none, page by page, oldest first.
    pub async fn run_once(&self) -> anyhow::Result<Reconciled> {
        let after =
            chrono::Duration::from_std(self.config.after).context("the reconcile threshold")?;
        let before = Utc::now() - after;
        let limit = i64::from(self.config.batch);
        let repaired = self
            .rows
            .repair(&mut *self.connection().await?, limit)
            .await
            .with_context(|| format!("repairing {} rows", P::ROW))?;
        let mut done = Reconciled {
            pending: 0,
            enqueued: 0,
            repaired,
        };
        let mut cursor = self.resume.lock().expect("resume lock").take();
        for _ in 0..MAX_PAGES {
            // The connection goes back to the pool before the enqueue.
            let rows = self
                .rows
                .pending(&mut *self.connection().await?, before, cursor, limit)
                .await
                .with_context(|| format!("reading the pending {} rows", P::ROW))?;
            let Some(last) = rows.last() else {
                return Ok(done);
            };
            cursor = Some((last.at, last.id));
            let full = rows.len() as i64 >= limit;
            done.pending += rows.len();
            done.enqueued += self.enqueue(rows).await?;
            if !full {
                return Ok(done);
            }
        }
        *self.resume.lock().expect("resume lock") = cursor;
        Ok(done)
    }

    async fn connection(&self) -> anyhow::Result<impl DerefMut<Target = PgConnection>> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
    }

    /// Enqueues one page's jobs in one pipelined round trip; returns how many
    /// rows had none.
    async fn enqueue(&self, rows: Vec<PendingRow>) -> anyhow::Result<usize> {
        let (ids, jobs): (Vec<i64>, Vec<NewJob>) = rows.into_iter().map(|r| (r.id, r.job)).unzip();
        let enqueued = self
            .producer
            .enqueue_many(&self.queue, jobs)
            .await
            .with_context(|| format!("enqueueing the jobs of {} {} rows", ids.len(), P::ROW))?;
        let mut added = 0;
        for (id, job) in ids.iter().zip(&enqueued) {
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    reconcile.row = P::ROW,
                    reconcile.row_id = id,
                    job.id = job.id(),
                    "reconciler enqueued a missing job"
                );
                added += 1;
            }
        }
        Ok(added)
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
