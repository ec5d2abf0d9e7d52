//! What a failed job does to its row, for a workload whose job settles one row
//! (a person's QR, a company's context, a photo), so that a row and its job
//! never disagree for long (docs/design.md).
//!
//! A failed attempt notes its error on the row, which stays pending: the runner
//! alone decides whether another attempt comes, and a write that fails does not
//! change the job's outcome. Whatever dead-letters the job (a permanent error,
//! the last attempt failing, timing out or panicking, a worker dying on every
//! delivery), the dead-letter hook, and only it, marks the row `failed` with
//! the dead letter's reason; the runner retries the hook until it succeeds
//! (docs/design.md, "Dead-letter hook"). A job whose row is gone is dropped
//! with a log line, not dead-lettered. A workload says what its job does and
//! how its row takes an error ([`RowJob`]); [`RowHandler`] does the rest.

use std::future::Future;

use anyhow::Context;
use tracing::{info, warn};

use jobs::{JobHandler, JobKind};
use queue_core::{DeadLettered, Job, JobError};
use store::{PgConnection, PgPool};

/// A workload's job that settles one row: its work and how the row takes a
/// failure. Registered as [`RowHandler`].
pub trait RowJob: Send + Sync + 'static {
    /// The job's payload (`GenerateQr`, ...).
    type Message: JobKind;
    /// What the row is, in log lines (`person`, `company`, `photo`).
    const ROW: &'static str;

    /// The pool the row lives in.
    fn pool(&self) -> &PgPool;

    /// The id of the row `msg` settles, for log lines.
    fn row_id(msg: &Self::Message) -> i64;

    /// One attempt at the job's work.
    fn run(
        &self,
        msg: &Self::Message,
        job: &Job,
    ) -> impl Future<Output = Result<Settled, Failure>> + Send;

    /// Notes a failed attempt's `error` on the row, which stays pending (a
    /// row that is settled or gone takes nothing).
    fn note_error(
        &self,
        conn: &mut PgConnection,
        msg: &Self::Message,
        error: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Marks the row `failed` with `error`, only if `msg`'s job still speaks
    /// for it (e.g. the QR job's path is the row's) and the row is not settled;
    /// true when it moved.
    fn mark_failed(
        &self,
        conn: &mut PgConnection,
        msg: &Self::Message,
        error: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
}

/// How an attempt ended that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The work is done, or there is nothing left to do: the job completes.
    Done,
    /// The row is gone: there is nothing to work for or record on, and no
    /// retry would change that, so the job is dropped.
    Gone,
}

/// Why an attempt failed, which decides what the row is told.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt: noted on the row; the runner retries while
    /// attempts remain.
    Retry(anyhow::Error),
    /// No attempt can fix it: noted on the row, and the job is dead-lettered now.
    Permanent(anyhow::Error),
    /// The job no longer speaks for its row (an outdated job; a newer one owns
    /// the row): dead-lettered now, the row left alone.
    Stale(anyhow::Error),
}

impl Failure {
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Failure::Retry(error.into())
    }

    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        Failure::Permanent(error.into())
    }
}

/// `?` on any error inside [`RowJob::run`] means "retry".
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Retry(error.into())
    }
}

/// The [`JobHandler`] of a [`RowJob`]: runs it, and tells the row what its
/// outcome means.
#[derive(Debug, Clone)]
pub struct RowHandler<W>(pub W);

impl<W: RowJob> RowHandler<W> {
    /// Notes `error` on the row; a failure to do so is logged, and the job's
    /// outcome stands (the dead-letter hook still marks the row failed).
    async fn note(&self, msg: &W::Message, error: &anyhow::Error) {
        let text = store::error_text(&format!("{error:#}"));
        let noted = async {
            let mut conn = self
                .0
                .pool()
                .acquire()
                .await
                .context("acquiring a database connection")?;
            self.0.note_error(&mut conn, msg, &text).await
        }
        .await;
        if let Err(e) = noted {
            warn!(
                row.kind = W::ROW,
                row.id = W::row_id(msg),
                error = format!("{e:#}"),
                "recording the error on the {} failed",
                W::ROW
            );
        }
    }
}

impl<W: RowJob> JobHandler<W::Message> for RowHandler<W> {
    async fn handle(&self, msg: W::Message, job: Job) -> Result<(), JobError> {
        match self.0.run(&msg, &job).await {
            Ok(Settled::Done) => Ok(()),
            Ok(Settled::Gone) => {
                // docs/design.md: a job whose row is gone is dropped, not dead-lettered.
                info!(
                    row.kind = W::ROW,
                    row.id = W::row_id(&msg),
                    job.id = job.id(),
                    job.kind = job.kind(),
                    "the {} no longer exists; the job is dropped",
                    W::ROW
                );
                Ok(())
            }
            Err(Failure::Stale(e)) => Err(JobError::Permanent(e)),
            Err(Failure::Permanent(e)) => {
                self.note(&msg, &e).await;
                Err(JobError::Permanent(e))
            }
            Err(Failure::Retry(e)) => {
                self.note(&msg, &e).await;
                Err(JobError::Retry(e))
            }
        }
    }

    /// Whatever dead-lettered the job, its row is marked `failed` with the
    /// reason, unless it is settled or the job no longer speaks for it. An
    /// error (PostgreSQL down) is retried by the runner until it succeeds.
    async fn on_dead_letter(
        &self,
        msg: Option<W::Message>,
        letter: DeadLettered,
    ) -> anyhow::Result<()> {
        let Some(msg) = msg else {
            return Ok(()); // no row to name
        };
        let text = store::error_text(&letter.error);
        let mut conn = self
            .0
            .pool()
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let moved = self
            .0
            .mark_failed(&mut conn, &msg, &text)
            .await
            .with_context(|| format!("marking the {} failed", W::ROW))?;
        if moved {
            warn!(
                row.kind = W::ROW,
                row.id = W::row_id(&msg),
                job.id = letter.job_id(),
                "the job was dead-lettered; the {} is marked failed",
                W::ROW
            );
        }
        Ok(())
    }
}
