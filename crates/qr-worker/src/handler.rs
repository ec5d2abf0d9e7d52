//! The `qr.generate` job: render the person's QR code into its predefined path.
//!
//! Effects happen in one order: render, write the file atomically (`storage`
//! writes a temporary file and renames it) and durably (the file and its
//! directory fsynced), then mark the row `ready`; jobs in flight together do
//! each step as one batch ([`crate::batch`]). A crash at any point leaves
//! the old file or the whole new one, and a row that is still `pending`; the
//! redelivered job then writes the same bytes to the same path and runs the same
//! UPDATE, so nothing is ever duplicated or half-written. A job an operator
//! retried from the dead-letter stream first puts a `failed` person back to
//! `pending` (its error kept in `qr_error_history`). A failed attempt notes its
//! error on the person, and the dead-letter hook alone marks it `failed`
//! ([`service::rows`]); an outdated job (another path than the row's) leaves the
//! person alone.
//!
//! Logs carry ids and paths only: the QR content may be personal data.

use std::ops::DerefMut;
use std::time::Instant;

use anyhow::{Context, anyhow};
use jobs::v1::GenerateQr;
use queue_core::Job;
use service::rows::{Failure, RowJob, Settled};
use storage::{Storage, StorageError};
use store::persons;
use store::{PgConnection, PgPool};
use tracing::info;

use crate::batch::{BatchOptions, Batcher};
use crate::render::{self, Format, RenderOptions};

/// Runs `qr.generate` jobs (registered as a `service::rows::RowHandler`, which
/// records its failures on the person). Cheap to share: the pool, storage and
/// batcher are handles.
#[derive(Debug, Clone)]
pub struct QrHandler {
    pool: PgPool,
    storage: Storage,
    options: RenderOptions,
    batcher: Batcher,
}

impl QrHandler {
    /// Starts the batching task ([`crate::batch`]): call within a runtime.
    pub fn new(
        pool: PgPool,
        storage: Storage,
        options: RenderOptions,
        batch: BatchOptions,
    ) -> Self {
        let batcher = Batcher::start(pool.clone(), storage.clone(), options, batch);
        Self {
            pool,
            storage,
            options,
            batcher,
        }
    }

    /// One job on its own: what an operator's retry of a dead letter runs, as
    /// it may first reopen a `failed` person. Renders, writes and marks the
    /// row ready; returns the file size, or None when the person is gone.
    async fn generate(&self, job: &GenerateQr, retried: bool) -> Result<Option<usize>, Failure> {
        let format = Format::from_path(&job.path).map_err(Failure::permanent)?;
        {
            let mut conn = self.connection().await?;
            let person = persons::get(&mut conn, job.person_id)
                .await
                .context("reading the person")?;
            let Some(person) = person else {
                return Ok(None);
            };
            if person.qr_path != job.path {
                return Err(Failure::Stale(anyhow!(
                    "job path {:?} differs from the person's qr_path {:?}; the job is outdated",
                    job.path,
                    person.qr_path
                )));
            }
            if retried && person.qr_status == persons::QrStatus::Failed {
                // An operator retried the dead letter: the person runs again,
                // the earlier error kept in `qr_error_history`.
                persons::reopen_failed_qr(&mut conn, job.person_id)
                    .await
                    .context("reopening the person")?;
                info!(
                    person.id = job.person_id,
                    "an operator retried the dead-lettered QR job; the person is pending again"
                );
            }
        }

        let started = Instant::now();
        let (content, options) = (job.content.clone(), self.options);
        // Rendering is CPU work of a few milliseconds: keep it off the async threads.
        let bytes = tokio::task::spawn_blocking(move || render::render(&content, format, &options))
            .await
            .map_err(|e| anyhow!("the rendering task failed: {e}"))?
            .map_err(Failure::permanent)?;
        metrics::histogram!("qr_render_seconds").record(started.elapsed().as_secs_f64());

        self.storage.put(&job.path, &bytes).await.map_err(|e| {
            let permanent = matches!(e, StorageError::InvalidPath(_));
            let e = anyhow::Error::new(e).context(format!("writing {}", job.path));
            if permanent {
                Failure::Permanent(e)
            } else {
                Failure::Retry(e)
            }
        })?;

        let mut conn = self.connection().await?;
        let ready = persons::mark_qr_ready(&mut conn, job.person_id)
            .await
            .context("marking the QR ready")?;
        // Not ready: deleted while we rendered.
        Ok(ready.then_some(bytes.len()))
    }

    async fn connection(&self) -> anyhow::Result<impl DerefMut<Target = PgConnection> + Send> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
    }
}

impl RowJob for QrHandler {
    type Message = GenerateQr;
    const ROW: &'static str = "person";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn row_id(msg: &GenerateQr) -> i64 {
        msg.person_id
    }

    async fn run(&self, msg: &GenerateQr, job: &Job) -> Result<Settled, Failure> {
        let started = Instant::now();
        info!(
            person.id = msg.person_id,
            qr.path = %msg.path,
            job.id = job.id(),
            job.attempt = job.attempt(),
            "generating QR"
        );
        // The common case joins a batch; an operator's retry is rare and may
        // have to reopen its row first, so it runs on its own.
        let outcome = if job.is_dead_letter_retry() {
            self.generate(msg, true).await
        } else {
            self.batcher.run(msg.clone()).await
        };
        let Some(bytes) = outcome? else {
            return Ok(Settled::Gone);
        };
        info!(
            person.id = msg.person_id,
            qr.path = %msg.path,
            qr.bytes = bytes,
            duration_ms = started.elapsed().as_millis() as u64,
            "QR generated"
        );
        Ok(Settled::Done)
    }

    async fn note_error(
        &self,
        conn: &mut PgConnection,
        msg: &GenerateQr,
        error: &str,
    ) -> anyhow::Result<()> {
        Ok(persons::note_qr_error(conn, msg.person_id, error).await?)
    }

    /// Unless its QR is ready or the job is outdated (another path than the
    /// row's: a newer job owns the row).
    async fn mark_failed(
        &self,
        conn: &mut PgConnection,
        msg: &GenerateQr,
        error: &str,
    ) -> anyhow::Result<bool> {
        match persons::get(conn, msg.person_id)
            .await
            .context("reading the person")?
        {
            Some(person) if person.qr_path == msg.path => {}
            _ => return Ok(false),
        }
        Ok(persons::mark_qr_failed(conn, msg.person_id, error).await?)
    }
}
