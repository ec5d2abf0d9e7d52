//! Batches the `qr.generate` jobs in flight: the runner calls the handler once
//! per job, and each call joins the next batch instead of doing its own work.
//! A batch reads its persons in ONE query, renders on up to
//! `QR_RENDER_THREADS` blocking threads, writes its files with ONE fsync per
//! directory ([`Storage::put_many`]), marks its rows `ready` in ONE UPDATE,
//! then answers each job (whose acks queue-core's settle loop batches too).
//! What was per job (two statements, a directory fsync, a blocking task) is
//! per batch, which is most of a job's CPU beside its render
//! (docs/benchmarks.md, "Issue 19").
//!
//! The guarantees are a single job's ([`crate::handler`]): a row is marked
//! `ready` only after its file and its directory are synced; a job whose path
//! is not its row's is stale, one whose person is gone settles as gone; each
//! job has its own outcome, so one bad job (a path the storage refuses, content
//! too long) fails alone. Batches form without a timer: a batch takes every
//! job that is waiting when it starts (up to `QR_BATCH_MAX`), and the jobs that
//! arrive while it works form the next; two batches may run at once, so one
//! renders while the other waits on its fsyncs and its UPDATE.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use jobs::v1::GenerateQr;
use service::rows::Failure;
use storage::{Storage, StorageError};
use store::PgPool;
use store::persons;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;

use crate::render::{self, Format, RenderOptions};

/// Batches running at once: one renders while the other syncs and updates.
const BATCHES_IN_FLIGHT: usize = 2;

/// How batches are formed and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// `QR_RENDER_THREADS`: blocking threads rendering one batch at once (the
    /// worker's CPU share for rendering; default: the machine's cores).
    pub render_threads: NonZeroUsize,
    /// `QR_BATCH_MAX`: jobs per batch at most (default 64).
    pub max_jobs: NonZeroUsize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            render_threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            max_jobs: NonZeroUsize::new(64).expect("nonzero"),
        }
    }
}

/// A job's outcome: its file size, or None when its person is gone.
pub type Outcome = Result<Option<usize>, Failure>;

struct Request {
    job: GenerateQr,
    reply: oneshot::Sender<Outcome>,
}

/// The handle the per-job handler calls; the batching task ends when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Batcher {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("person_id", &self.job.person_id)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task on the current runtime.
    pub fn start(
        pool: PgPool,
        storage: Storage,
        render: RenderOptions,
        options: BatchOptions,
    ) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        let work = Arc::new(Work {
            pool,
            storage,
            render,
            render_threads: options.render_threads.get(),
        });
        tokio::spawn(gather(queue, work, options.max_jobs.get()));
        Self { requests }
    }

    /// Runs `job` in the next batch and waits for its outcome. Dropped before
    /// the answer (a job timeout), the job still completes its batch: its row
    /// is marked `ready` only after its file is durable, as always.
    pub async fn run(&self, job: GenerateQr) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { job, reply })
            .map_err(|_| anyhow!("the QR batching task has stopped"))?;
        answer
            .await
            .map_err(|_| Failure::Retry(anyhow!("the QR batch was abandoned")))?
    }
}

struct Work {
    pool: PgPool,
    storage: Storage,
    render: RenderOptions,
    render_threads: usize,
}

/// Takes every waiting request (up to `max_jobs`) once a batch slot is free,
/// and runs them as one batch.
async fn gather(mut queue: mpsc::UnboundedReceiver<Request>, work: Arc<Work>, max_jobs: usize) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max_jobs {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let work = Arc::clone(&work);
        tokio::spawn(async move {
            work.run(batch).await;
            drop(slot);
        });
    }
}

/// A job of the batch still going, with what is known of it so far.
struct Pending {
    request: Request,
    format: Format,
}

impl Work {
    async fn run(&self, batch: Vec<Request>) {
        let size = batch.len();
        metrics::histogram!("qr_batch_jobs").record(size as f64);
        let mut pending = Vec::with_capacity(size);
        for request in batch {
            match Format::from_path(&request.job.path) {
                Ok(format) => pending.push(Pending { request, format }),
                Err(e) => answer(request, Err(Failure::permanent(e))),
            }
        }
        if pending.is_empty() {
            return;
        }

        // 1. Who is still there, and which path is theirs: one query.
        let ids: Vec<i64> = pending.iter().map(|p| p.request.job.person_id).collect();
        let targets = match self.targets(&ids).await {
            Ok(targets) => targets,
            Err(e) => return fail_all(pending, &e),
        };
        let mut to_render = Vec::with_capacity(pending.len());
        for p in pending {
            match targets.get(&p.request.job.person_id) {
                None => answer(p.request, Ok(None)),
                Some(path) if *path != p.request.job.path => {
                    let e = anyhow!(
                        "job path {:?} differs from the person's qr_path {:?}; the job is outdated",
                        p.request.job.path,
                        path
                    );
                    answer(p.request, Err(Failure::Stale(e)));
                }
                Some(_) => to_render.push(p),
            }
        }
        if to_render.is_empty() {
            return;
        }

        // 2. Render on up to `render_threads` blocking threads.
        let rendered = self.render_all(to_render).await;
        let mut written = Vec::with_capacity(rendered.len());
        let mut files = Vec::with_capacity(rendered.len());
        for (p, result) in rendered {
            match result {
                Ok(bytes) => {
                    files.push((p.request.job.path.clone(), bytes));
                    written.push(p);
                }
                Err(e) => answer(p.request, Err(Failure::permanent(e))),
            }
        }
        if written.is_empty() {
            return;
        }

        // 3. Every file fsynced and renamed, each directory fsynced once.
        let sizes: Vec<usize> = files.iter().map(|(_, bytes)| bytes.len()).collect();
        let results = self.storage.put_many(files).await;
        let mut durable = Vec::with_capacity(written.len());
        for ((p, result), bytes) in written.into_iter().zip(results).zip(sizes) {
            match result {
                Ok(()) => durable.push((p, bytes)),
                Err(e) => {
                    let permanent = matches!(e, StorageError::InvalidPath(_));
                    let e =
                        anyhow::Error::new(e).context(format!("writing {}", p.request.job.path));
                    let failure = if permanent {
                        Failure::Permanent(e)
                    } else {
                        Failure::Retry(e)
                    };
                    answer(p.request, Err(failure));
                }
            }
        }
        if durable.is_empty() {
            return;
        }

        // 4. Only now, with every file and directory synced: one UPDATE, for
        // the jobs whose caller still waits. One the runner gave up on (a
        // timeout) is settled by its retry or its dead letter, which a late
        // `ready` here would contradict; its durable file is harmless.
        durable.retain(|(p, _)| !p.request.reply.is_closed());
        if durable.is_empty() {
            return;
        }
        let ids: Vec<i64> = durable
            .iter()
            .map(|(p, _)| p.request.job.person_id)
            .collect();
        let marked = match self.mark_ready(&ids).await {
            Ok(marked) => marked,
            Err(e) => return fail_all(durable.into_iter().map(|(p, _)| p).collect(), &e),
        };
        for (p, bytes) in durable {
            // Not marked: deleted while we rendered.
            let ready = marked.contains(&p.request.job.person_id);
            answer(p.request, Ok(ready.then_some(bytes)));
        }
        debug!(qr.batch = size, "QR batch done");
    }

    /// Each existing person's `qr_path`, by id.
    async fn targets(&self, ids: &[i64]) -> anyhow::Result<HashMap<i64, String>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let targets = persons::qr_targets(&mut conn, ids)
            .await
            .context("reading the persons")?;
        Ok(targets.into_iter().map(|t| (t.id, t.qr_path)).collect())
    }

    async fn mark_ready(&self, ids: &[i64]) -> anyhow::Result<HashSet<i64>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let marked = persons::mark_qr_ready_many(&mut conn, ids)
            .await
            .context("marking the QR ready")?;
        Ok(marked.into_iter().collect())
    }

    /// Renders every job, split in contiguous shares over up to
    /// `render_threads` blocking tasks; each job keeps its own result.
    async fn render_all(
        &self,
        jobs: Vec<Pending>,
    ) -> Vec<(Pending, Result<Vec<u8>, render::RenderError>)> {
        let threads = self.render_threads.min(jobs.len()).max(1);
        let share = jobs.len().div_ceil(threads);
        let mut tasks = Vec::with_capacity(threads);
        let mut jobs = jobs.into_iter();
        loop {
            let chunk: Vec<Pending> = jobs.by_ref().take(share).collect();
            if chunk.is_empty() {
                break;
            }
            let options = self.render;
            tasks.push(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|p| {
                        let started = Instant::now();
                        let bytes = render::render(&p.request.job.content, p.format, &options);
                        metrics::histogram!("qr_render_seconds")
                            .record(started.elapsed().as_secs_f64());
                        (p, bytes)
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut rendered = Vec::new();
        for task in tasks {
            match task.await {
                Ok(done) => rendered.extend(done),
                // A panicking render loses its share's requests: their
                // callers see the batch abandoned and retry.
                Err(e) => tracing::error!(error = %e, "a QR rendering task failed"),
            }
        }
        rendered
    }
}

fn answer(request: Request, outcome: Outcome) {
    // The caller may have stopped waiting (a job timeout): nothing to tell.
    let _ = request.reply.send(outcome);
}

/// The same retryable error for every job left.
fn fail_all(pending: Vec<Pending>, error: &anyhow::Error) {
    for p in pending {
        answer(p.request, Err(Failure::Retry(anyhow!("{error:#}"))));
    }
}
