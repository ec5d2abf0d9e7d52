//! The `wispro.sync` job: one run, page by page, resumable. The run reads page
//! `pages_done + 1` to learn (again) the total, then each page in turn; it
//! holds one page in memory, handles its customers a few at a time (each in its
//! own transaction), and records the page's counts once it is done. A crash or
//! a retry resumes after the last page recorded; a customer redone then is
//! found by its Wispro id, so nothing is created twice.

use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use jobs::JobHandler;
use jobs::v1::WisproSyncRun;
use queue_core::{DeadLettered, Job, JobError};
use store::PgPool;
use store::sync_runs::{self, PageCounts, SyncStatus};
use tracing::{info, warn};

use crate::customer::{self, Outcome};
use crate::wispro::{Client, WisproClient};

/// Runs `wispro.sync` jobs.
#[derive(Debug, Clone)]
pub struct SyncHandler {
    pool: PgPool,
    wispro: WisproClient,
    bcrypt_cost: u32,
    parallel: usize,
    progress_every: u32,
}

impl SyncHandler {
    pub fn new(
        pool: PgPool,
        wispro: WisproClient,
        bcrypt_cost: u32,
        parallel: usize,
        progress_every: u32,
    ) -> Self {
        Self {
            pool,
            wispro,
            bcrypt_cost,
            parallel,
            progress_every,
        }
    }

    async fn finish(&self, run_id: i64, failure: Option<&str>) -> anyhow::Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        sync_runs::finish(&mut conn, run_id, failure.map(store::error_text).as_deref())
            .await
            .context("finishing the run")?;
        Ok(())
    }

    /// A page's customers, `parallel` at a time (the bcrypt hashes of created
    /// users run on as many blocking threads).
    async fn sync_page(&self, clients: Vec<Client>) -> PageCounts {
        let results: Vec<(Client, anyhow::Result<Outcome>)> = futures::stream::iter(clients)
            .map(|client| async move {
                let outcome = customer::sync(&self.pool, &client, self.bcrypt_cost).await;
                (client, outcome)
            })
            .buffer_unordered(self.parallel)
            .collect()
            .await;
        let mut counts = PageCounts::default();
        for (client, outcome) in results {
            let who = client
                .public_id
                .map_or_else(|| client.id.clone(), |p| p.to_string());
            match outcome {
                Ok(Outcome::Created) => counts.created += 1,
                Ok(Outcome::Updated) => counts.updated += 1,
                Ok(Outcome::Skipped(why)) => {
                    counts.skipped += 1;
                    counts.samples.push(format!("client {who} skipped: {why}"));
                }
                Err(e) => {
                    counts.errors += 1;
                    warn!(wispro.client = %who, error = format!("{e:#}"), "syncing a customer failed; rolled back");
                    counts.samples.push(format!("client {who}: {e:#}"));
                }
            }
        }
        counts
    }
}

impl JobHandler<WisproSyncRun> for SyncHandler {
    async fn handle(&self, msg: WisproSyncRun, job: Job) -> Result<(), JobError> {
        let retry = |e: anyhow::Error| JobError::Retry(e);
        let run = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")
                .map_err(retry)?;
            sync_runs::get(&mut conn, msg.run_id)
                .await
                .context("reading the run")
                .map_err(retry)?
        };
        let Some(run) = run else {
            info!(
                sync.run_id = msg.run_id,
                "the sync run no longer exists; the job is dropped"
            );
            return Ok(());
        };
        if matches!(run.status, SyncStatus::Completed | SyncStatus::Failed) {
            info!(sync.run_id = run.id, status = ?run.status, "the sync run already ended");
            return Ok(());
        }
        let per_page = u32::try_from(run.per_page).unwrap_or(100).max(1);
        let started = Instant::now();
        let mut page = u32::try_from(run.pages_done).unwrap_or(0) + 1;
        info!(
            sync.run_id = run.id,
            job.attempt = job.attempt(),
            from_page = page,
            per_page,
            "sync run starting"
        );
        let mut totals = (run.created, run.updated, run.skipped, run.errors);
        let mut total_pages: Option<u32> = None;
        loop {
            let fetched = match self.wispro.page(page, per_page).await {
                Ok(p) => p,
                Err(e) if e.is_permanent() => {
                    let reason = e.to_string();
                    warn!(sync.run_id = run.id, page, error = %reason, "Wispro refused the sync; the run failed");
                    self.finish(run.id, Some(&reason)).await.map_err(retry)?;
                    return Err(JobError::Permanent(anyhow::Error::new(e)));
                }
                Err(e) => {
                    warn!(sync.run_id = run.id, page, error = %e, "reading a Wispro page failed; the run resumes from it");
                    return Err(JobError::Retry(anyhow::Error::new(e)));
                }
            };
            let pages = fetched.pagination.total_pages;
            if total_pages != Some(pages) {
                total_pages = Some(pages);
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .context("acquiring a database connection")
                    .map_err(retry)?;
                sync_runs::mark_running(
                    &mut conn,
                    run.id,
                    i32::try_from(pages).unwrap_or(i32::MAX),
                )
                .await
                .context("marking the run running")
                .map_err(retry)?;
            }
            if page > pages || fetched.clients.is_empty() {
                break;
            }
            let counts = self.sync_page(fetched.clients).await;
            {
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .context("acquiring a database connection")
                    .map_err(retry)?;
                let recorded = sync_runs::record_page(&mut conn, run.id, page as i32, &counts)
                    .await
                    .context("recording the page")
                    .map_err(retry)?;
                if !recorded {
                    info!(
                        sync.run_id = run.id,
                        page, "the run is no longer running here; stopping"
                    );
                    return Ok(());
                }
            }
            totals.0 += counts.created;
            totals.1 += counts.updated;
            totals.2 += counts.skipped;
            totals.3 += counts.errors;
            if page % self.progress_every == 0 {
                info!(
                    sync.run_id = run.id,
                    page,
                    pages,
                    created = totals.0,
                    updated = totals.1,
                    skipped = totals.2,
                    errors = totals.3,
                    "sync progress"
                );
            }
            if page >= pages {
                break;
            }
            page += 1;
        }
        self.finish(run.id, None).await.map_err(retry)?;
        info!(
            sync.run_id = run.id,
            pages = total_pages.unwrap_or(0),
            created = totals.0,
            updated = totals.1,
            skipped = totals.2,
            errors = totals.3,
            duration_ms = started.elapsed().as_millis() as u64,
            "sync run completed"
        );
        Ok(())
    }

    /// Whatever dead-lettered the run (last attempt failed or timed out, its
    /// worker died on every delivery), it ends `failed` with the reason.
    async fn on_dead_letter(
        &self,
        msg: Option<WisproSyncRun>,
        letter: DeadLettered,
    ) -> anyhow::Result<()> {
        let Some(msg) = msg else {
            return Ok(());
        };
        self.finish(msg.run_id, Some(&letter.error)).await
    }
}
