//! The QR reconciler: a repeating job (`qr.reconcile`, once per period across
//! replicas) that re-enqueues the QR job of every person still `pending` longer
//! than a threshold.
//!
//! A registration commits its row before it enqueues, so a gateway killed in
//! between, an enqueue whose reply was lost, or a Redis that lost its data can
//! leave a pending row with no job. Each run reads the oldest such rows (a
//! partial index on pending rows keeps this cheap, in bounded batches) and
//! enqueues their jobs with the row's key, unique until settled: a row whose job
//! still exists is answered "duplicate" and gets no second one.

use std::time::Duration;

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::{GenerateQr, ReconcileQr};
use queue_core::{Enqueued, Every, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use store::PgPool;
use store::persons::{self, Person};
use tracing::info;

/// The repeating job's name, as `queuectl stats` shows it.
pub const NAME: &str = "qr-reconcile";

/// The job that makes sure `person`'s QR gets rendered: the one the gateway
/// enqueues at registration, with the row-derived key unique until settled.
pub fn qr_job(person: &Person) -> NewJob {
    jobs::new_job(&GenerateQr {
        person_id: person.id,
        content: person.qr_content.clone(),
        path: person.qr_path.clone(),
    })
    .unique_until_settled(persons::qr_job_key(person.id))
}

/// The repeating job to declare on the worker (`WorkerService::repeat`).
pub fn repeating_job(every: Duration) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, Every::interval(every)?, |_| {
        jobs::new_job(&ReconcileQr {})
    })
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Pending rows older than the threshold that were looked at.
    pub pending: usize,
    /// Jobs enqueued for rows that had none.
    pub enqueued: usize,
}

/// Runs `qr.reconcile` jobs.
#[derive(Debug, Clone)]
pub struct Reconciler {
    pool: PgPool,
    producer: Producer,
    queue: Queue,
    /// Rows pending longer than this are reconciled.
    after: Duration,
    /// At most this many rows per run, oldest first.
    batch: u32,
}

impl Reconciler {
    pub fn new(
        pool: PgPool,
        producer: Producer,
        queue: Queue,
        after: Duration,
        batch: u32,
    ) -> Self {
        Self {
            pool,
            producer,
            queue,
            after,
            batch,
        }
    }

    /// One run: enqueues the jobs of the oldest rows pending past the threshold.
    pub async fn run_once(&self) -> anyhow::Result<Reconciled> {
        let after = chrono::Duration::from_std(self.after).context("the reconcile threshold")?;
        let rows = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")?;
            persons::pending_before(&mut conn, chrono::Utc::now() - after, i64::from(self.batch))
                .await
                .context("reading pending persons")?
        };
        let mut done = Reconciled {
            pending: rows.len(),
            enqueued: 0,
        };
        for person in &rows {
            let enqueued = self
                .producer
                .enqueue(&self.queue, qr_job(person))
                .await
                .with_context(|| format!("enqueueing the QR job of person {}", person.id))?;
            if !matches!(enqueued, Enqueued::Duplicate { .. }) {
                info!(
                    person.id = person.id,
                    job.id = enqueued.id(),
                    "reconciler enqueued a missing QR job"
                );
                done.enqueued += 1;
            }
        }
        Ok(done)
    }
}

impl JobHandler<ReconcileQr> for Reconciler {
    async fn handle(&self, _msg: ReconcileQr, job: Job) -> Result<(), JobError> {
        // Another run comes next period: a failed one is retried by the runner
        // like any job, and what it missed is found again then.
        let done = self.run_once().await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            reconcile.pending = done.pending,
            reconcile.enqueued = done.enqueued,
            "QR reconciliation done"
        );
        Ok(())
    }
}
