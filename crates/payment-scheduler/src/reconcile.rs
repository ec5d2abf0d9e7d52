//! The payment reconciler: a repeating job (`payment.reconcile`, once per
//! period across replicas) that re-enqueues, with each check's own key, the
//! check of every payment whose `next_check_at` is overdue by a threshold, and
//! books the movement of any completed payment that lacks one. A check whose job
//! still exists gets "duplicate", never a second job; one whose job was lost (a
//! gateway killed after its commit, a Redis that lost its data) gets it back, on
//! the lane of its status, runnable at once.

use std::time::Duration;

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::ReconcilePayments;
use queue_core::{Enqueued, Job, JobError, Producer, Queue, RepeatingJob};
use service::config::ReconcileConfig;
use store::PgPool;
use store::payments;
use tracing::{info, warn};

use crate::schedule;

/// The repeating job's name (its dedup key per period).
pub const NAME: &str = "payment-reconcile";

/// The repeating job to declare on the worker.
pub fn repeating_job(every: Duration) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, queue_core::Every::interval(every)?, |_| {
        jobs::new_job(&ReconcilePayments {})
    })
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconciled {
    /// Overdue payments looked at.
    pub overdue: usize,
    /// Check jobs enqueued (the others still existed).
    pub enqueued: usize,
    /// Movements booked for completed payments that had none.
    pub booked: usize,
}

/// Runs `payment.reconcile` jobs.
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

    /// One run.
    pub async fn run_once(&self) -> anyhow::Result<Reconciled> {
        let after =
            chrono::Duration::from_std(self.config.after).context("the reconcile threshold")?;
        let limit = i64::from(self.config.batch);
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let rows = payments::overdue(&mut conn, chrono::Utc::now() - after, limit)
            .await
            .context("reading overdue payments")?;
        let mut done = Reconciled {
            overdue: rows.len(),
            ..Reconciled::default()
        };
        for p in &rows {
            let Some(job) = schedule::next_check_job(p) else {
                continue;
            };
            let job = self
                .producer
                .enqueue(&self.queue, job)
                .await
                .with_context(|| format!("enqueueing the check of payment {}", p.id))?;
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    payment.id = p.id,
                    check.number = p.checks_made + 1,
                    job.id = job.id(),
                    "reconciler enqueued a missing payment check"
                );
                done.enqueued += 1;
            }
        }
        for p in payments::completed_without_movement(&mut conn, limit)
            .await
            .context("reading completed payments without a movement")?
        {
            if payments::book_movement(&mut conn, &p)
                .await
                .context("booking a missing movement")?
            {
                warn!(
                    payment.id = p.id,
                    "reconciler booked the missing movement of a completed payment"
                );
                done.booked += 1;
            }
        }
        Ok(done)
    }
}

impl JobHandler<ReconcilePayments> for Reconciler {
    async fn handle(&self, _msg: ReconcilePayments, job: Job) -> Result<(), JobError> {
        let done = self.run_once().await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            reconcile.overdue = done.overdue,
            reconcile.enqueued = done.enqueued,
            reconcile.booked = done.booked,
            "payment reconciliation done"
        );
        Ok(())
    }
}
