//! The `context.condense` job: ask the LLM for a condensation of the company's
//! original context and put it in use.
//!
//! The only effect is one guarded UPDATE (`pending` -> `processed`), so a
//! redelivered job finds the company processed and does nothing; the original
//! text is never overwritten. A job an operator retried from the dead-letter
//! stream first puts a `failed` company back to `pending` (its error kept in
//! `context_error_history`), so the retry condenses again. A failed attempt
//! notes its error on the company, and the dead-letter hook alone marks it
//! `failed`, the original text in use ([`service::rows`]). Logs carry the
//! company id and lengths, never the text.

use std::time::{Duration, Instant};

use anyhow::Context;
use jobs::v1::CondenseCompanyContext;
use queue_core::Job;
use service::rows::{Failure, RowJob, Settled};
use store::companies::{self, ContextStatus};
use store::{PgConnection, PgPool};
use tracing::{info, warn};

use crate::llm::{self, LlmClient};

/// Runs `context.condense` jobs (registered as a `service::rows::RowHandler`,
/// which records their failures on the company). Cheap to share.
#[derive(Debug, Clone)]
pub struct ContextHandler {
    pool: PgPool,
    llm: LlmClient,
    /// `CONTEXT_JOB_TIMEOUT`: a `Retry-After` is waited out only within it.
    job_timeout: Duration,
}

impl ContextHandler {
    pub fn new(pool: PgPool, llm: LlmClient, job_timeout: Duration) -> Self {
        Self {
            pool,
            llm,
            job_timeout,
        }
    }
}

impl RowJob for ContextHandler {
    type Message = CondenseCompanyContext;
    const ROW: &'static str = "company";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn row_id(msg: &CondenseCompanyContext) -> i64 {
        msg.company_id
    }

    async fn run(&self, msg: &CondenseCompanyContext, job: &Job) -> Result<Settled, Failure> {
        let deadline = Instant::now() + self.job_timeout;
        let id = msg.company_id;
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let company = companies::get(&mut conn, id)
            .await
            .context("reading the company")?;
        let Some(mut company) = company else {
            return Ok(Settled::Gone);
        };
        if company.context_status == ContextStatus::Failed && job.is_dead_letter_retry() {
            // An operator retried the dead letter: the company runs again, its
            // earlier error kept in `context_error_history`.
            if companies::reopen_failed(&mut conn, id)
                .await
                .context("reopening the company")?
            {
                info!(
                    company.id = id,
                    job.id = job.id(),
                    "an operator retried the dead-lettered condensation; the company is pending again"
                );
                company.context_status = ContextStatus::Pending;
            }
        }
        // Not held during the LLM call.
        drop(conn);
        if company.context_status != ContextStatus::Pending {
            info!(company.id = id, context.status = ?company.context_status, "the context is no longer pending; nothing to do");
            return Ok(Settled::Done);
        }
        let original_len = company.context_original.chars().count();
        info!(
            company.id = id,
            job.id = job.id(),
            job.attempt = job.attempt(),
            llm.model = self.llm.model(),
            context.length = original_len,
            "condensing context"
        );
        let started = Instant::now();
        let condensed = match self
            .llm
            .condense(&company.context_original, deadline)
            .await
            .and_then(|answer| llm::accept(&company.context_original, &answer, self.llm.rules()))
        {
            Ok(condensed) => condensed,
            Err(e) => {
                let permanent = e.is_permanent();
                warn!(
                    company.id = id,
                    job.attempt = job.attempt(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    error = %e,
                    last_attempt = permanent || job.is_last_attempt(),
                    "condensing the context failed"
                );
                // The row's error says which attempt it was.
                let e = anyhow::Error::new(e).context(format!(
                    "attempt {} of {}",
                    job.attempt(),
                    job.max_attempts()
                ));
                return Err(if permanent {
                    Failure::Permanent(e)
                } else {
                    Failure::Retry(e)
                });
            }
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let moved = companies::mark_processed(&mut conn, id, &condensed)
            .await
            .context("storing the condensed context")?;
        info!(
            company.id = id,
            context.original_length = original_len,
            context.length = condensed.chars().count(),
            duration_ms = started.elapsed().as_millis() as u64,
            stored = moved,
            "context condensed"
        );
        Ok(Settled::Done)
    }

    async fn note_error(
        &self,
        conn: &mut PgConnection,
        msg: &CondenseCompanyContext,
        error: &str,
    ) -> anyhow::Result<()> {
        Ok(companies::note_error(conn, msg.company_id, error).await?)
    }

    /// The company keeps its original text in use.
    async fn mark_failed(
        &self,
        conn: &mut PgConnection,
        msg: &CondenseCompanyContext,
        error: &str,
    ) -> anyhow::Result<bool> {
        Ok(companies::mark_failed(conn, msg.company_id, error).await?)
    }
}
