//! The worker's lifecycle and the state its loops share.
//!
//! Entries are read only when a concurrency slot is free, so nothing waits locally
//! while its claim ages. A finished run sends its outcome to one settling task,
//! which acknowledges completions in batches (one script call per lane for all
//! the outcomes that arrived meanwhile), so Redis sees a fraction of a round trip
//! per job. Until its outcome is settled, an entry stays in the in-flight map,
//! whose entries the heartbeat keeps claimed.
//!
//! The loops live in their own modules: [`super::read`] (read and reclaim with the
//! same slots), [`super::dispatch`] (start runs), [`super::settle`] (record
//! outcomes), [`super::heartbeat`], [`super::reclaim`] and [`super::promote`]. They
//! share a [`Ctx`] that does not know the handler type: only starting a run does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::outage::{Link, RedisStatus};
use super::{DeadLettered, Handler, JobError, WorkerConfig, default_consumer_name};
use super::{heartbeat, hook, janitor, outage, promote, read, repeat, settle};
use crate::envelope::Envelope;
use crate::repeat::RepeatingJob;
use crate::{Broker, Error, Queue, Result};

/// Runs one queue's jobs with a handler until shut down.
pub struct Worker<H> {
    broker: Broker,
    queue: Queue,
    config: WorkerConfig,
    consumer: String,
    handler: Arc<H>,
    repeating: Vec<RepeatingJob>,
    redis: RedisStatus,
}

impl<H> std::fmt::Debug for Worker<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue.name())
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// A delivered entry: lane index, entry id, fields.
pub(super) struct Delivery {
    pub(super) lane: usize,
    pub(super) id: String,
    pub(super) envelope: Option<Vec<u8>>,
    pub(super) deliveries: u64,
}

/// How a run ended, on its way to the settling task.
pub(super) struct Outcome {
    pub(super) lane: usize,
    pub(super) entry_id: Arc<str>,
    pub(super) result: RunResult,
    /// Ms from when the job became ready to when this run started, for the
    /// history (`lua/history.lua`); None when no run started (malformed entry).
    pub(super) wait_ms: Option<u64>,
}

pub(super) enum RunResult {
    Completed {
        envelope: Arc<Envelope>,
        duration_ms: u64,
    },
    Failed {
        envelope: Arc<Envelope>,
        max_attempts: u32,
        error: JobError,
    },
    Malformed {
        raw: Vec<u8>,
        error: String,
    },
}

pub(super) enum Settle {
    Outcome(Outcome),
    /// Settle everything received so far, then answer.
    Flush(oneshot::Sender<()>),
}

pub(super) struct Metrics {
    pub(super) completed: Counter,
    pub(super) retried: Counter,
    pub(super) dead_lettered: Counter,
    pub(super) reclaimed: Counter,
    pub(super) timed_out: Counter,
    pub(super) run_seconds: Histogram,
    pub(super) wait_seconds: Histogram,
}

impl Metrics {
    pub(super) fn new(queue: &str) -> Self {
        let outcome = |o: &'static str| metrics::counter!("rsq_jobs_total", "queue" => queue.to_owned(), "outcome" => o);
        Self {
            completed: outcome("completed"),
            retried: outcome("retried"),
            dead_lettered: outcome("dead_lettered"),
            reclaimed: outcome("reclaimed"),
            timed_out: outcome("timed_out"),
            run_seconds: metrics::histogram!("rsq_job_run_seconds", "queue" => queue.to_owned()),
            wait_seconds: metrics::histogram!("rsq_job_wait_seconds", "queue" => queue.to_owned()),
        }
    }
}

pub(super) struct Ctx {
    /// Cancelled when the worker begins to stop: runs still waiting for a
    /// global slot give up (their entries stay pending for another consumer).
    pub(super) stopping: CancellationToken,
    pub(super) broker: Broker,
    pub(super) queue: Queue,
    pub(super) cfg: WorkerConfig,
    pub(super) consumer: String,
    pub(super) permits: Arc<Semaphore>,
    /// (lane, entry id) -> when its claim was last refreshed.
    pub(super) inflight: Mutex<HashMap<(usize, Arc<str>), Instant>>,
    pub(super) settle: mpsc::UnboundedSender<Settle>,
    pub(super) jobs: TaskTracker,
    /// Cancelled when the grace period runs out: abandon runs, leave them pending.
    pub(super) hard_stop: CancellationToken,
    pub(super) metrics: Metrics,
    /// Jobs just dead-lettered, for the handler's dead-letter hook.
    pub(super) dead_letters: mpsc::UnboundedSender<DeadLettered>,
    /// Whether Redis answers; shared by every loop.
    pub(super) redis: RedisStatus,
}

impl Ctx {
    pub(super) fn link(&self) -> &Link {
        self.redis.link()
    }
}

impl<H: Handler> Worker<H> {
    /// Validates the config; connects nothing until [`Worker::run`].
    pub fn new(broker: Broker, queue: Queue, config: WorkerConfig, handler: H) -> Result<Self> {
        config.validate()?;
        let consumer = config
            .consumer
            .clone()
            .unwrap_or_else(default_consumer_name);
        Ok(Self {
            broker,
            config,
            consumer,
            handler: Arc::new(handler),
            repeating: Vec::new(),
            redis: RedisStatus::new(queue.name()),
            queue,
        })
    }

    /// Declares a job this worker enqueues once per period (with every other
    /// replica that declares it: the period's dedup key makes it one job).
    pub fn repeat(mut self, job: RepeatingJob) -> Result<Self> {
        if self.repeating.iter().any(|r| r.name() == job.name()) {
            return Err(Error::InvalidConfig(format!(
                "repeating job {:?} is declared twice",
                job.name()
            )));
        }
        self.repeating.push(job);
        Ok(self)
    }

    /// Whether this worker reaches Redis, and its calls that failed because it
    /// did not (for readiness checks and tests).
    pub fn redis_status(&self) -> RedisStatus {
        self.redis.clone()
    }

    /// This worker's consumer name in the group.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Consumes until `shutdown` is cancelled, then stops reading, lets in-flight
    /// jobs finish within the grace period and settles their outcomes.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        {
            let mut conn = self.broker.conn().await?;
            self.queue.register(&mut conn).await?;
            read::ensure_groups(&mut conn, &self.queue, &self.config.group).await?;
            crate::admin::write_retention(&mut conn, &self.queue, &self.config.retention()).await?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (letters_tx, letters_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            stopping: shutdown.clone(),
            metrics: Metrics::new(self.queue.name()),
            broker: self.broker,
            queue: self.queue,
            permits: Arc::new(Semaphore::new(self.config.concurrency.get())),
            cfg: self.config,
            consumer: self.consumer,
            inflight: Mutex::new(HashMap::new()),
            settle: tx,
            jobs: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
            dead_letters: letters_tx,
            redis: self.redis,
        });
        info!(
            queue.name = ctx.queue.name(),
            consumer = %ctx.consumer,
            concurrency = ctx.cfg.concurrency.get(),
            "worker started"
        );
        // Heartbeats and settling outlive the reader: in-flight jobs need both.
        let background = CancellationToken::new();
        let settler = tokio::spawn(settle::settle_loop(ctx.clone(), rx));
        let heartbeat = tokio::spawn(heartbeat::heartbeat_loop(ctx.clone(), background.clone()));
        let prober = tokio::spawn(outage::probe_loop(ctx.clone(), background.clone()));
        let janitor = tokio::spawn(janitor::janitor_loop(ctx.clone(), shutdown.clone()));
        // The hook outlives the reader too: the last settled batch may dead-letter.
        let hooks_stop = CancellationToken::new();
        let hooks = tokio::spawn(hook::hook_loop(
            ctx.clone(),
            self.handler.clone(),
            letters_rx,
            hooks_stop.clone(),
        ));
        let promoter = tokio::spawn(promote::promote_loop(ctx.clone(), shutdown.clone()));
        let repeater = (!self.repeating.is_empty()).then(|| {
            tokio::spawn(repeat::repeat_loop(
                ctx.clone(),
                self.repeating,
                shutdown.clone(),
            ))
        });

        // A task of its own, not a part of the caller's future: run under
        // `block_on` (a `main`), the reader would poll on the calling thread while
        // runs and settling poll on the runtime's, waking each other across threads
        // for every slot freed, and its yields (read.rs) would not let them run.
        let reader = {
            let (ctx, handler, shutdown) = (ctx.clone(), self.handler.clone(), shutdown.clone());
            tokio::spawn(async move { read::read_loop(&ctx, &handler, &shutdown).await })
        };
        if let Err(e) = reader.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }

        let running = ctx.cfg.concurrency.get() - ctx.permits.available_permits();
        info!(
            queue.name = ctx.queue.name(),
            jobs.running = running,
            grace_period_ms = ctx.cfg.grace_period.as_millis() as u64,
            "worker stopping: no new jobs, waiting for running ones"
        );
        ctx.jobs.close();
        if tokio::time::timeout(ctx.cfg.grace_period, ctx.jobs.wait())
            .await
            .is_err()
        {
            let left = ctx.cfg.concurrency.get() - ctx.permits.available_permits();
            warn!(
                queue.name = ctx.queue.name(),
                jobs.abandoned = left,
                "grace period ran out: abandoning running jobs, they stay pending for another worker"
            );
            ctx.hard_stop.cancel();
            ctx.jobs.wait().await;
        }
        let _ = promoter.await;
        if let Some(repeater) = repeater {
            let _ = repeater.await;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if ctx.settle.send(Settle::Flush(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
        hooks_stop.cancel();
        let _ = hooks.await;
        background.cancel();
        let _ = heartbeat.await;
        let _ = prober.await;
        let _ = janitor.await;
        janitor::leave_group(&ctx).await;
        settler.abort();
        info!(queue.name = ctx.queue.name(), "worker stopped");
        Ok(())
    }
}

/// Sleeps for `d` unless `token` is cancelled first; returns false when cancelled.
pub(super) async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Doubling delay for retrying Redis after an error, 50 ms up to 5 s.
pub(super) struct ErrorDelay(Duration);

impl ErrorDelay {
    pub(super) fn new() -> Self {
        Self(Duration::from_millis(50))
    }
    pub(super) fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d
    }
    pub(super) fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }
}
