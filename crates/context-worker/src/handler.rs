//! The `context.condense` job: ask the LLM for a condensation of the company's
//! original context and put it in use.
//!
//! The only effect is one guarded UPDATE (`pending` -> `processed`), so a
//! redelivered job finds the company processed and does nothing; the original
//! text is never overwritten. A job an operator retried from the dead-letter
//! stream first puts a `failed` company back to `pending` (its error kept in
//! `context_error_history`), so the retry condenses again. Logs carry the company id and lengths, never the
//! text.

use std::ops::DerefMut;
use std::time::{Duration, Instant};

use anyhow::Context;
use jobs::JobHandler;
use jobs::v1::CondenseCompanyContext;
use queue_core::{DeadLettered, Job, JobError};
use store::companies::{self, ContextStatus};
use store::{PgConnection, PgPool};
use tracing::{info, warn};

use crate::llm::{self, LlmClient};

/// Runs `context.condense` jobs. Cheap to share.
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

    /// A pooled connection; not getting one is worth another attempt.
    async fn connection(&self) -> Result<impl DerefMut<Target = PgConnection> + Send, JobError> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
            .map_err(JobError::Retry)
    }

    /// Records the error of a failed attempt on the row (`failed` on the last
    /// one); the job's outcome does not depend on this write.
    async fn record(&self, company_id: i64, error: &str, last: bool) {
        let text = store::error_text(error);
        let result = async {
            let mut conn = self.pool.acquire().await?;
            if last {
                companies::mark_failed(&mut conn, company_id, &text).await?;
            } else {
                companies::note_error(&mut conn, company_id, &text).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            warn!(
                company.id = company_id,
                error = format!("{e:#}"),
                "recording the context error on the company failed"
            );
        }
    }
}

impl JobHandler<CondenseCompanyContext> for ContextHandler {
    async fn handle(&self, msg: CondenseCompanyContext, job: Job) -> Result<(), JobError> {
        let deadline = Instant::now() + self.job_timeout;
        let id = msg.company_id;
        let company = {
            let mut conn = self.connection().await?;
            companies::get(&mut conn, id)
                .await
                .context("reading the company")
                .map_err(JobError::Retry)?
        };
        let Some(mut company) = company else {
            // docs/design.md: a job whose row is gone is dropped, not dead-lettered.
            info!(
                company.id = id,
                job.id = job.id(),
                "the company no longer exists; the context job is dropped"
            );
            return Ok(());
        };
        if company.context_status == ContextStatus::Failed && job.is_dead_letter_retry() {
            // An operator retried the dead letter: the company runs again, its
            // earlier error kept in `context_error_history`.
            let mut conn = self.connection().await?;
            if companies::reopen_failed(&mut conn, id)
                .await
                .context("reopening the company")
                .map_err(JobError::Retry)?
            {
                info!(
                    company.id = id,
                    job.id = job.id(),
                    "an operator retried the dead-lettered condensation; the company is pending again"
                );
                company.context_status = ContextStatus::Pending;
            }
        }
        if company.context_status != ContextStatus::Pending {
            info!(company.id = id, context.status = ?company.context_status, "the context is no longer pending; nothing to do");
            return Ok(());
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
                let last = permanent || job.is_last_attempt();
                let text = format!("attempt {} of {}: {e}", job.attempt(), job.max_attempts());
                warn!(
                    company.id = id,
                    job.attempt = job.attempt(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    error = %e,
                    last_attempt = last,
                    "condensing the context failed"
                );
                self.record(id, &text, last).await;
                let e = anyhow::Error::new(e);
                return Err(if permanent {
                    JobError::Permanent(e)
                } else {
                    JobError::Retry(e)
                });
            }
        };
        let mut conn = self.connection().await?;
        let moved = companies::mark_processed(&mut conn, id, &condensed)
            .await
            .context("storing the condensed context")
            .map_err(JobError::Retry)?;
        info!(
            company.id = id,
            context.original_length = original_len,
            context.length = condensed.chars().count(),
            duration_ms = started.elapsed().as_millis() as u64,
            stored = moved,
            "context condensed"
        );
        Ok(())
    }

    /// Whatever dead-lettered the job (last attempt failed, timed out or
    /// panicked; its worker died on every delivery), the company keeps its
    /// original text and is marked `failed` with the reason. Retried by the
    /// runner until it succeeds.
    async fn on_dead_letter(
        &self,
        msg: Option<CondenseCompanyContext>,
        letter: DeadLettered,
    ) -> anyhow::Result<()> {
        let Some(msg) = msg else {
            return Ok(()); // no company to name
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let text = store::error_text(&letter.error);
        if companies::mark_failed(&mut conn, msg.company_id, &text)
            .await
            .context("marking the context failed")?
        {
            warn!(
                company.id = msg.company_id,
                job.id = letter.job_id(),
                "the context job was dead-lettered; the company keeps its original text"
            );
        }
        Ok(())
    }
}
