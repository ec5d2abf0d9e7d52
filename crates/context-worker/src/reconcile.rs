//! The context reconciler: a repeating job (`context.reconcile`, once per
//! period across replicas) that re-enqueues, with each company's own dedup key,
//! the condensations of companies still `pending` past a threshold. A company
//! whose job still exists gets "duplicate", never a second job; one whose job
//! was lost (a gateway killed after its commit, a Redis that lost its data)
//! gets it back.

use std::time::Duration;

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::{CondenseCompanyContext, ReconcileContexts};
use queue_core::{Enqueued, Job, JobError, NewJob, Producer, Queue, RepeatingJob};
use service::config::ReconcileConfig;
use store::PgPool;
use store::companies::{self, Company};
use tracing::info;

/// The repeating job's name (its dedup key per period).
pub const NAME: &str = "context-reconcile";

/// The condensation job of `company`, as the gateway enqueues it.
pub fn context_job(company: &Company) -> NewJob {
    jobs::new_job(&CondenseCompanyContext {
        company_id: company.id,
    })
    .unique_until_settled(companies::context_job_key(company.id))
}

/// The repeating job to declare on the worker.
pub fn repeating_job(every: Duration) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, queue_core::Every::interval(every)?, |_| {
        jobs::new_job(&ReconcileContexts {})
    })
}

/// Runs `context.reconcile` jobs.
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

    /// One run: how many pending companies it looked at and how many jobs it enqueued.
    pub async fn run_once(&self) -> anyhow::Result<(usize, usize)> {
        let after =
            chrono::Duration::from_std(self.config.after).context("the reconcile threshold")?;
        let rows = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")?;
            companies::pending_before(
                &mut conn,
                chrono::Utc::now() - after,
                i64::from(self.config.batch),
            )
            .await
            .context("reading pending companies")?
        };
        let mut enqueued = 0;
        for company in &rows {
            let job = self
                .producer
                .enqueue(&self.queue, context_job(company))
                .await
                .with_context(|| format!("enqueueing the context job of company {}", company.id))?;
            if !matches!(job, Enqueued::Duplicate { .. }) {
                info!(
                    company.id = company.id,
                    job.id = job.id(),
                    "reconciler enqueued a missing context job"
                );
                enqueued += 1;
            }
        }
        Ok((rows.len(), enqueued))
    }
}

impl JobHandler<ReconcileContexts> for Reconciler {
    async fn handle(&self, _msg: ReconcileContexts, job: Job) -> Result<(), JobError> {
        let (pending, enqueued) = self.run_once().await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            reconcile.pending = pending,
            reconcile.enqueued = enqueued,
            "context reconciliation done"
        );
        Ok(())
    }
}
