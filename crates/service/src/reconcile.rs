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
//! are pending ([`Pending`]); a row's job is the row's own
//! ([`JobOfRow`], in `jobs::rows`, which the gateway's builders share); the
//! reading, enqueueing, logging and scheduling are here, and a worker
//! registers it with one call, [`WorkerService::reconciler`].

use std::future::Future;
use std::ops::DerefMut;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::Utc;
use tracing::info;

use jobs::rows::JobOfRow;
use jobs::{JobHandler, JobKind};
use queue_core::{Enqueued, Every, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use store::{Page, PgConnection, PgPool, Position};

use crate::WorkerService;
use crate::config::ReconcileConfig;

/// What a workload tells the reconciler: which of its rows are left pending.
/// Their jobs, and what a row is called in log lines, are the rows' own
/// ([`JobOfRow`], in `jobs::rows`).
pub trait Pending: Send + Sync + 'static {
    /// The payload of the reconcile job (`ReconcileQr`, ...), a kind of the
    /// workload's own queue; the repeating job is named after it
    /// (`qr.reconcile` runs as `qr-reconcile`, [`Reconciler::name`]).
    type Message: JobKind;
    /// A row the workload's job settles (`Person`, `Company`, ...).
    type Row: JobOfRow + Send + Sync;

    /// One [`Page`] of the rows pending since before `page.before`, in the
    /// order of their [`JobOfRow::job`] position (a row with no job due is
    /// passed over).
    fn pending(
        &self,
        conn: &mut PgConnection,
        page: Page,
    ) -> impl Future<Output = store::Result<Vec<Self::Row>>> + Send;

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

    /// The repeating job's name, as `queuectl stats` shows it: the reconcile
    /// kind with `-` for `.` (`qr.reconcile` runs as `qr-reconcile`).
    pub fn name() -> String {
        repeating_name(P::Message::KIND)
    }

    /// The repeating job that runs it every `config.interval`, which
    /// [`WorkerService::reconciler`] declares on the worker.
    pub fn repeating_job(&self) -> queue_core::Result<RepeatingJob> {
        RepeatingJob::new(Self::name(), Every::interval(self.config.interval)?, |_| {
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
            .with_context(|| format!("repairing {} rows", P::Row::ROW))?;
        let mut done = Reconciled {
            pending: 0,
            enqueued: 0,
            repaired,
        };
        let mut cursor = self.resume.lock().expect("resume lock").take();
        for _ in 0..MAX_PAGES {
            // The connection goes back to the pool before the enqueue.
            let page = Page {
                before,
                after: cursor,
                limit,
            };
            let rows: Vec<(Position, NewJob)> = self
                .rows
                .pending(&mut *self.connection().await?, page)
                .await
                .with_context(|| format!("reading the pending {} rows", P::Row::ROW))?
                .iter()
                .filter_map(JobOfRow::job)
                .collect();
            let Some(&(last, _)) = rows.last() else {
                return Ok(done);
            };
            cursor = Some(last);
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
    async fn enqueue(&self, rows: Vec<(Position, NewJob)>) -> anyhow::Result<usize> {
        let (ids, jobs): (Vec<i64>, Vec<NewJob>) =
            rows.into_iter().map(|((_, id), job)| (id, job)).unzip();
        let enqueued = self
            .producer
            .enqueue_many(&self.queue, jobs)
            .await
            .with_context(|| {
                format!("enqueueing the jobs of {} {} rows", ids.len(), P::Row::ROW)
            })?;
        let mut added = 0;
        for (id, job) in ids.iter().zip(&enqueued) {
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    reconcile.row = P::Row::ROW,
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
            reconcile.name = Self::name(),
            reconcile.pending = done.pending,
            reconcile.enqueued = done.enqueued,
            reconcile.repaired = done.repaired,
            "reconciliation done"
        );
        Ok(())
    }
}

/// A repeating job's name from its kind, spelled as the schedules a live Redis
/// already holds (`qr-reconcile`): a renamed one would run beside the old.
fn repeating_name(kind: &str) -> String {
    kind.replace('.', "-")
}

#[cfg(test)]
mod tests {
    use jobs::v1;

    use super::*;

    #[test]
    fn each_reconciler_keeps_the_name_of_its_repeating_job() {
        let names = [
            repeating_name(v1::ReconcileQr::KIND),
            repeating_name(v1::ReconcileContexts::KIND),
            repeating_name(v1::ReconcileSyncRuns::KIND),
            repeating_name(v1::ReconcilePayments::KIND),
            repeating_name(v1::ReconcilePhotos::KIND),
        ];
        assert_eq!(
            names,
            [
                "qr-reconcile",
                "context-reconcile",
                "wispro-reconcile",
                "payment-reconcile",
                "photo-reconcile"
            ]
        );
    }
}
