//! The `qr.generate` job: render the person's QR code into its predefined path.
//!
//! Effects happen in one order: render, write the file atomically (`storage`
//! writes a temporary file and renames it), then mark the row `ready`. A crash at any point leaves
//! the old file or the whole new one, and a row that is still `pending`; the
//! redelivered job then writes the same bytes to the same path and runs the same
//! UPDATE, so nothing is ever duplicated or half-written. A job an operator
//! retried from the dead-letter stream first puts a `failed` person back to
//! `pending` (its error kept in `qr_error_history`).
//!
//! Logs carry ids and paths only: the QR content may be personal data.

use std::ops::DerefMut;
use std::time::Instant;

use anyhow::{Context, anyhow};
use jobs::JobHandler;
use jobs::v1::GenerateQr;
use queue_core::{DeadLettered, Job, JobError};
use storage::{Storage, StorageError};
use store::persons;
use store::{PgConnection, PgPool};
use tracing::{info, warn};

use crate::render::{self, Format, RenderOptions};

/// Runs `qr.generate` jobs. Cheap to share: the pool and storage are handles.
#[derive(Debug, Clone)]
pub struct QrHandler {
    pool: PgPool,
    storage: Storage,
    options: RenderOptions,
}

/// Why one run failed, which decides what is recorded on the row.
enum Failure {
    /// The person row does not exist (deleted): there is nothing to render for or
    /// record on, so the job completes as a no-op.
    NoPerson,
    /// The job names another file than the row does (an outdated job): the row
    /// belongs to a newer job, so it is left alone.
    Stale(anyhow::Error),
    /// Retrying cannot help (bad path, unsupported type, content too long).
    Permanent(anyhow::Error),
    /// Storage or database trouble: worth another attempt.
    Transient(anyhow::Error),
}

impl QrHandler {
    pub fn new(pool: PgPool, storage: Storage, options: RenderOptions) -> Self {
        Self {
            pool,
            storage,
            options,
        }
    }

    /// Renders, writes and marks the row ready; returns the file size.
    async fn generate(&self, job: &GenerateQr, retried: bool) -> Result<usize, Failure> {
        let format = Format::from_path(&job.path).map_err(|e| Failure::Permanent(e.into()))?;
        {
            let mut conn = self.connection().await?;
            match persons::get(&mut conn, job.person_id).await {
                Ok(None) => return Err(Failure::NoPerson),
                Ok(Some(person)) if person.qr_path != job.path => {
                    return Err(Failure::Stale(anyhow!(
                        "job path {:?} differs from the person's qr_path {:?}; the job is outdated",
                        job.path,
                        person.qr_path
                    )));
                }
                Ok(Some(person)) => {
                    if retried && person.qr_status == persons::QrStatus::Failed {
                        // An operator retried the dead letter: the person runs
                        // again, the earlier error kept in `qr_error_history`.
                        persons::reopen_failed_qr(&mut conn, job.person_id)
                            .await
                            .context("reopening the person")
                            .map_err(Failure::Transient)?;
                        info!(
                            person.id = job.person_id,
                            "an operator retried the dead-lettered QR job; the person is pending again"
                        );
                    }
                }
                Err(e) => {
                    return Err(Failure::Transient(
                        anyhow::Error::new(e).context("reading the person"),
                    ));
                }
            }
        }

        let started = Instant::now();
        let (content, options) = (job.content.clone(), self.options);
        // Rendering is CPU work of a few milliseconds: keep it off the async threads.
        let bytes = tokio::task::spawn_blocking(move || render::render(&content, format, &options))
            .await
            .map_err(|e| Failure::Transient(anyhow!("the rendering task failed: {e}")))?
            .map_err(|e| Failure::Permanent(e.into()))?;
        metrics::histogram!("qr_render_seconds").record(started.elapsed().as_secs_f64());

        self.storage.put(&job.path, &bytes).await.map_err(|e| {
            let permanent = matches!(e, StorageError::InvalidPath(_));
            let e = anyhow::Error::new(e).context(format!("writing {}", job.path));
            if permanent {
                Failure::Permanent(e)
            } else {
                Failure::Transient(e)
            }
        })?;

        let mut conn = self.connection().await?;
        match persons::mark_qr_ready(&mut conn, job.person_id).await {
            Ok(true) => Ok(bytes.len()),
            // Deleted while we rendered.
            Ok(false) => Err(Failure::NoPerson),
            Err(e) => Err(Failure::Transient(
                anyhow::Error::new(e).context("marking the QR ready"),
            )),
        }
    }

    async fn connection(&self) -> Result<impl DerefMut<Target = PgConnection> + Send, Failure> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
            .map_err(Failure::Transient)
    }

    /// Records `error` on the row: `failed` when `last`, otherwise only the text
    /// (the row stays `pending`). The job outcome does not depend on this succeeding.
    async fn record(&self, person_id: i64, error: &anyhow::Error, last: bool) {
        let text = store::error_text(&format!("{error:#}"));
        let result = async {
            let mut conn = self.pool.acquire().await?;
            if last {
                persons::mark_qr_failed(&mut conn, person_id, &text).await?;
            } else {
                persons::note_qr_error(&mut conn, person_id, &text).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            warn!(
                person.id = person_id,
                error = format!("{e:#}"),
                "recording the QR error on the person failed"
            );
        }
    }
}

impl JobHandler<GenerateQr> for QrHandler {
    async fn handle(&self, msg: GenerateQr, job: Job) -> Result<(), JobError> {
        let started = Instant::now();
        info!(
            person.id = msg.person_id,
            qr.path = %msg.path,
            job.id = job.id(),
            job.attempt = job.attempt(),
            "generating QR"
        );
        match self.generate(&msg, job.is_dead_letter_retry()).await {
            Ok(bytes) => {
                info!(
                    person.id = msg.person_id,
                    qr.path = %msg.path,
                    qr.bytes = bytes,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "QR generated"
                );
                Ok(())
            }
            Err(Failure::NoPerson) => {
                // The row is the record; without it there is nothing to render
                // for, and no retry or dead letter would change that (docs/design.md:
                // a job whose row is gone is dropped).
                info!(
                    person.id = msg.person_id,
                    qr.path = %msg.path,
                    job.id = job.id(),
                    "the person no longer exists; the QR job is dropped"
                );
                Ok(())
            }
            Err(Failure::Stale(e)) => Err(JobError::Permanent(e)),
            Err(Failure::Permanent(e)) => {
                self.record(msg.person_id, &e, true).await;
                Err(JobError::Permanent(e))
            }
            Err(Failure::Transient(e)) => {
                // The runner dead-letters a failed last attempt; the row must say so.
                self.record(msg.person_id, &e, job.is_last_attempt()).await;
                Err(JobError::Retry(e))
            }
        }
    }

    /// Whatever dead-lettered the job (its last attempt timed out or panicked, its
    /// worker died on every delivery, or the handler's own failure write failed),
    /// the person is marked `failed` with the reason, unless its QR is ready or
    /// the job is outdated (the row names another path).
    /// An error (PostgreSQL down) is retried by the runner until it succeeds.
    async fn on_dead_letter(
        &self,
        msg: Option<GenerateQr>,
        letter: DeadLettered,
    ) -> anyhow::Result<()> {
        let Some(msg) = msg else {
            return Ok(()); // no person to name
        };
        let text = store::error_text(&letter.error);
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        // An outdated job (another path than the row's) does not speak for the
        // row: a newer job owns it.
        match persons::get(&mut conn, msg.person_id)
            .await
            .context("reading the person")?
        {
            Some(person) if person.qr_path == msg.path => {}
            _ => return Ok(()),
        }
        if persons::mark_qr_failed(&mut conn, msg.person_id, &text)
            .await
            .context("marking the QR failed")?
        {
            warn!(
                person.id = msg.person_id,
                job.id = letter.job_id(),
                "the QR job was dead-lettered; the person is marked failed"
            );
        }
        Ok(())
    }
}
