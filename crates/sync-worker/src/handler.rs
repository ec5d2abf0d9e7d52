//! The `wispro.sync` job: one run, page by page, resumable. The run reads page
//! `pages_done + 1` to learn (again) the total, then each page in turn; it
//! holds one page in memory, handles its customers a few at a time (each in its
//! own transaction), and records the page's counts once it is done. A crash or
//! a retry resumes after the last page recorded; a customer redone then is
//! found by its Wispro id, so nothing is created twice.
//!
//! Wispro fails now and then: a page that fails (a 5xx, a timeout, an empty
//! page before the last) is read again within the run, after a backoff, up to
//! `SYNC_PAGE_ATTEMPTS` tries; only then does the job fail, and its retry
//! resumes at that page. Wispro also changes during a run: customers added or
//! removed shift the offset pages, so a pass during which `total_records`
//! changed is followed by another over every page (up to `SYNC_MAX_PASSES`),
//! and every customer present at the end has been read.
//!
//! A run ends `failed` in one place, the dead-letter hook ([`service::rows`]):
//! whatever dead-lettered its job (Wispro refusing the sync, the last attempt
//! failing or timing out, a worker dying on every delivery).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use jobs::v1::WisproSyncRun;
use queue_core::Job;
use service::rows::{Failure, RowJob, Settled};
use store::sync_runs::{self, PageCounts, PassState, StartError, SyncRun, SyncStatus};
use store::{PgConnection, PgPool};
use tracing::{info, warn};

use crate::config::page_wait;
use crate::customer::{self, Outcome};
use crate::wispro::{Client, Page, WisproClient, WisproError};

/// Runs `wispro.sync` jobs (registered as a `service::rows::RowHandler`, whose
/// dead-letter hook ends the run `failed`).
#[derive(Debug, Clone)]
pub struct SyncHandler {
    pool: PgPool,
    wispro: WisproClient,
    settings: RunSettings,
}

/// How a run goes (from [`crate::Config`]).
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// `SYNC_BCRYPT_COST`
    pub bcrypt_cost: u32,
    /// `SYNC_HASH_THREADS`: customers of a page handled at once.
    pub parallel: usize,
    /// `SYNC_PROGRESS_EVERY`
    pub progress_every: u32,
    /// `SYNC_PAGE_ATTEMPTS`
    pub page_attempts: NonZeroU32,
    /// `SYNC_PAGE_BACKOFF`
    pub page_backoff: Duration,
    /// `SYNC_MAX_PASSES`
    pub max_passes: NonZeroU32,
}

impl RunSettings {
    pub fn of(config: &crate::Config) -> Self {
        Self {
            bcrypt_cost: config.bcrypt_cost,
            parallel: config.hash_threads.get(),
            progress_every: config.progress_every,
            page_attempts: config.page_attempts,
            page_backoff: config.page_backoff,
            max_passes: config.max_passes,
        }
    }
}

/// Why reading a page ended the attempt.
enum PageFailure {
    /// Wispro refused the sync (a bad token, an expired licence): the run fails.
    Refused(WisproError),
    /// The page failed on every try of its budget: the job is retried from it.
    Exhausted(WisproError),
}

impl SyncHandler {
    pub fn new(pool: PgPool, wispro: WisproClient, settings: RunSettings) -> Self {
        Self {
            pool,
            wispro,
            settings,
        }
    }

    async fn conn(&self) -> anyhow::Result<sqlx::pool::PoolConnection<store::Postgres>> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
    }

    async fn complete(&self, run_id: i64) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let finished = sync_runs::finish(&mut conn, run_id, None)
            .await
            .context("finishing the run")?;
        if finished {
            count_finished("completed");
        }
        Ok(())
    }

    /// A page's customers, `parallel` at a time (the bcrypt hashes of created
    /// users run on as many blocking threads).
    async fn sync_page(&self, clients: Vec<Client>) -> PageCounts {
        let results: Vec<(Client, anyhow::Result<Outcome>)> = futures::stream::iter(clients)
            .map(|client| async move {
                let outcome = customer::sync(&self.pool, &client, self.settings.bcrypt_cost).await;
                (client, outcome)
            })
            .buffer_unordered(self.settings.parallel)
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

    /// Page `page`, read again after a backoff while it fails, up to the
    /// page's budget of tries.
    async fn read_page(&self, run_id: i64, page: u32, per_page: u32) -> Result<Page, PageFailure> {
        let tries = self.settings.page_attempts.get();
        let mut attempt = 1;
        loop {
            let error = match self.wispro.page(page, per_page).await {
                Ok(p) => return Ok(p),
                Err(e) if e.is_permanent() => return Err(PageFailure::Refused(e)),
                Err(e) => e,
            };
            if attempt == tries {
                return Err(PageFailure::Exhausted(error));
            }
            attempt += 1;
            let wait = page_wait(self.settings.page_backoff, attempt);
            warn!(
                sync.run_id = run_id,
                page,
                error = %error,
                next_try = attempt,
                tries,
                wait_ms = wait.as_millis() as u64,
                "reading a Wispro page failed; reading it again"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// A `failed` run whose dead letter an operator retried: back to
    /// `running` where it stopped, its failure kept among its samples. False
    /// when there is nothing to run (it had not failed).
    async fn reopen(&self, run: &SyncRun) -> Result<bool, Failure> {
        let earlier = run.failure.as_deref().unwrap_or("no reason recorded");
        let note = store::error_text(&format!(
            "run failed before a retry from the dead-letter stream: {earlier}"
        ));
        let mut conn = self.conn().await?;
        match sync_runs::reopen(&mut conn, run.id, &note).await {
            Ok(reopened) => {
                if reopened {
                    info!(
                        sync.run_id = run.id,
                        from_page = run.pages_done + 1,
                        "a dead-lettered sync run retried by an operator runs again"
                    );
                }
                Ok(reopened)
            }
            // One run at a time: this one stays failed; the letter says why.
            Err(StartError::Active(other)) => Err(Failure::Permanent(anyhow!(
                "sync run {} cannot run again while sync run {other} is active; \
                 retry it once that one ended",
                run.id
            ))),
            Err(StartError::Store(e)) => {
                Err(anyhow::Error::new(e).context("reopening the run").into())
            }
        }
    }
}

impl RowJob for SyncHandler {
    type Message = WisproSyncRun;
    const ROW: &'static str = "sync run";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn row_id(msg: &WisproSyncRun) -> i64 {
        msg.run_id
    }

    async fn run(&self, msg: &WisproSyncRun, job: &Job) -> Result<Settled, Failure> {
        let run = {
            let mut conn = self.conn().await?;
            sync_runs::get(&mut conn, msg.run_id)
                .await
                .context("reading the run")?
        };
        let Some(mut run) = run else {
            return Ok(Settled::Gone);
        };
        if run.status == SyncStatus::Failed
            && job.is_dead_letter_retry()
            && self.reopen(&run).await?
        {
            run.status = SyncStatus::Running;
        }
        if matches!(run.status, SyncStatus::Completed | SyncStatus::Failed) {
            info!(sync.run_id = run.id, status = ?run.status, "the sync run already ended");
            return Ok(Settled::Done);
        }
        let mut state = {
            let mut conn = self.conn().await?;
            sync_runs::pass_state(&mut conn, run.id)
                .await
                .context("reading the run's pass")?
                .ok_or_else(|| anyhow!("sync run {} vanished", run.id))?
        };
        let per_page = u32::try_from(run.per_page).unwrap_or(100).max(1);
        let started = Instant::now();
        let mut page = u32::try_from(run.pages_done).unwrap_or(0) + 1;
        info!(
            sync.run_id = run.id,
            job.attempt = job.attempt(),
            pass = state.pass,
            from_page = page,
            per_page,
            "sync run starting"
        );
        let mut totals = (run.created, run.updated, run.skipped, run.errors);
        let mut total_pages: Option<u32> = None;
        loop {
            let fetched = match self.read_page(run.id, page, per_page).await {
                Ok(p) => p,
                Err(PageFailure::Refused(e)) => {
                    // The dead-letter hook ends the run `failed` with the reason.
                    warn!(sync.run_id = run.id, page, error = %e, "Wispro refused the sync; the run failed");
                    return Err(Failure::Permanent(
                        anyhow::Error::new(e).context(format!("page {page}")),
                    ));
                }
                Err(PageFailure::Exhausted(e)) => {
                    let tries = self.settings.page_attempts;
                    warn!(sync.run_id = run.id, page, tries, error = %e, "a Wispro page failed on every try; the job is retried from it");
                    return Err(Failure::Retry(
                        anyhow::Error::new(e).context(format!("page {page} ({tries} tries)")),
                    ));
                }
            };
            let pagination = fetched.pagination;
            let pages = pagination.total_pages;
            let was_changed = state.changed;
            if state.see(i64::try_from(pagination.total_records).unwrap_or(i64::MAX))
                && !was_changed
            {
                info!(
                    sync.run_id = run.id,
                    pass = state.pass,
                    page,
                    total_records = pagination.total_records,
                    first_total_records = state.total_records,
                    "Wispro's customers changed during the pass; another pass will follow"
                );
            }
            if total_pages != Some(pages) {
                total_pages = Some(pages);
                let mut conn = self.conn().await?;
                sync_runs::mark_running(
                    &mut conn,
                    run.id,
                    i32::try_from(pages).unwrap_or(i32::MAX),
                )
                .await
                .context("marking the run running")?;
            }
            // Past the last page: Wispro has no customers, or fewer pages now.
            let past_the_end = page > pages;
            if !past_the_end {
                let counts = self.sync_page(fetched.clients).await;
                let mut conn = self.conn().await?;
                let recorded =
                    sync_runs::record_page(&mut conn, run.id, &state, page as i32, &counts)
                        .await
                        .context("recording the page")?;
                if !recorded {
                    info!(
                        sync.run_id = run.id,
                        page, "the run is no longer running here; stopping"
                    );
                    return Ok(Settled::Done);
                }
                totals.0 += counts.created;
                totals.1 += counts.updated;
                totals.2 += counts.skipped;
                totals.3 += counts.errors;
                if page % self.settings.progress_every == 0 {
                    info!(
                        sync.run_id = run.id,
                        pass = state.pass,
                        page,
                        pages,
                        created = totals.0,
                        updated = totals.1,
                        skipped = totals.2,
                        errors = totals.3,
                        "sync progress"
                    );
                }
            }
            if past_the_end || page >= pages {
                if !state.changed {
                    break;
                }
                let mut conn = self.conn().await?;
                if state.pass >= self.settings.max_passes.get() as i32 {
                    warn!(
                        sync.run_id = run.id,
                        passes = state.pass,
                        "Wispro's customers changed during the last pass; the next run reads what it missed"
                    );
                    let note = format!(
                        "Wispro's customers changed during pass {} of {}, the last: a customer added meanwhile is read by the next run",
                        state.pass, self.settings.max_passes
                    );
                    sync_runs::add_note(&mut conn, run.id, &note)
                        .await
                        .context("noting the last pass")?;
                    break;
                }
                if !sync_runs::next_pass(&mut conn, run.id, state.pass)
                    .await
                    .context("starting another pass")?
                {
                    info!(
                        sync.run_id = run.id,
                        "the run is no longer running here; stopping"
                    );
                    return Ok(Settled::Done);
                }
                state = PassState {
                    pass: state.pass + 1,
                    total_records: None,
                    changed: false,
                };
                info!(
                    sync.run_id = run.id,
                    pass = state.pass,
                    "sync pass starting over every page"
                );
                page = 1;
                continue;
            }
            page += 1;
        }
        self.complete(run.id).await?;
        info!(
            sync.run_id = run.id,
            pages = total_pages.unwrap_or(0),
            passes = state.pass,
            created = totals.0,
            updated = totals.1,
            skipped = totals.2,
            errors = totals.3,
            duration_ms = started.elapsed().as_millis() as u64,
            "sync run completed"
        );
        Ok(Settled::Done)
    }

    /// A run keeps no error per attempt: the job's own last error says it,
    /// and the run's `failure` once it ends.
    async fn note_error(
        &self,
        _conn: &mut PgConnection,
        _msg: &WisproSyncRun,
        _error: &str,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whatever dead-lettered the run (Wispro refused it, its last attempt
    /// failed or timed out, its worker died on every delivery), it ends
    /// `failed` with the reason, unless it already ended.
    async fn mark_failed(
        &self,
        conn: &mut PgConnection,
        msg: &WisproSyncRun,
        error: &str,
    ) -> anyhow::Result<bool> {
        let finished = sync_runs::finish(conn, msg.run_id, Some(error)).await?;
        if finished {
            count_finished("failed");
        }
        Ok(finished)
    }
}

/// `sync_runs_finished_total{status}`: runs that ended, counted once each (a
/// row already ended is not counted again), so an alert can watch `failed`
/// (docs/operations.md, "Alerts").
fn count_finished(status: &'static str) {
    metrics::counter!("sync_runs_finished_total", "status" => status).increment(1);
}
