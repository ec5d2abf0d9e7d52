//! The worker's loops: read, run, settle, heartbeat, reclaim, promote.
//!
//! Entries are read only when a concurrency slot is free, so nothing waits locally
//! while its claim ages. A finished run sends its outcome to one settling task,
//! which acknowledges completions in batches (one script call per lane for all
//! the outcomes that arrived meanwhile), so Redis sees a fraction of a round trip
//! per job. Until its outcome is settled, an entry stays in the in-flight map,
//! whose entries the heartbeat keeps claimed.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use metrics::{Counter, Histogram};
use prost::Message;
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{Handler, Job, JobError, WorkerConfig, default_consumer_name};
use crate::envelope::{self, Envelope, FIELD};
use crate::producer::delayed_member;
use crate::{Broker, Error, Queue, Result, scripts};

/// Runs one queue's jobs with a handler until shut down.
pub struct Worker<H> {
    broker: Broker,
    queue: Queue,
    config: WorkerConfig,
    consumer: String,
    handler: Arc<H>,
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
struct Delivery {
    lane: usize,
    id: String,
    envelope: Option<Vec<u8>>,
    deliveries: u64,
}

/// How a run ended, on its way to the settling task.
struct Outcome {
    lane: usize,
    entry_id: Arc<str>,
    result: RunResult,
}

enum RunResult {
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

enum Settle {
    Outcome(Outcome),
    /// Settle everything received so far, then answer.
    Flush(oneshot::Sender<()>),
}

struct Metrics {
    completed: Counter,
    retried: Counter,
    dead_lettered: Counter,
    reclaimed: Counter,
    timed_out: Counter,
    run_seconds: Histogram,
    wait_seconds: Histogram,
}

impl Metrics {
    fn new(queue: &str) -> Self {
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

struct Ctx<H> {
    broker: Broker,
    queue: Queue,
    cfg: WorkerConfig,
    consumer: String,
    handler: Arc<H>,
    permits: Arc<Semaphore>,
    /// (lane, entry id) -> when its claim was last refreshed.
    inflight: Mutex<HashMap<(usize, Arc<str>), Instant>>,
    settle: mpsc::UnboundedSender<Settle>,
    jobs: TaskTracker,
    /// Cancelled when the grace period runs out: abandon runs, leave them pending.
    hard_stop: CancellationToken,
    metrics: Metrics,
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
            queue,
            config,
            consumer,
            handler: Arc::new(handler),
        })
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
            ensure_groups(&mut conn, &self.queue, &self.config.group).await?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            metrics: Metrics::new(self.queue.name()),
            broker: self.broker,
            queue: self.queue,
            permits: Arc::new(Semaphore::new(self.config.concurrency.get())),
            cfg: self.config,
            consumer: self.consumer,
            handler: self.handler,
            inflight: Mutex::new(HashMap::new()),
            settle: tx,
            jobs: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        });
        info!(
            queue.name = ctx.queue.name(),
            consumer = %ctx.consumer,
            concurrency = ctx.cfg.concurrency.get(),
            "worker started"
        );
        // Heartbeats and settling outlive the reader: in-flight jobs need both.
        let background = CancellationToken::new();
        let settler = tokio::spawn(settle_loop(ctx.clone(), rx));
        let heartbeat = tokio::spawn(heartbeat_loop(ctx.clone(), background.clone()));
        let promoter = tokio::spawn(promote_loop(ctx.clone(), shutdown.clone()));

        read_loop(&ctx, &shutdown).await;

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
        let (done_tx, done_rx) = oneshot::channel();
        if ctx.settle.send(Settle::Flush(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
        background.cancel();
        let _ = heartbeat.await;
        settler.abort();
        info!(queue.name = ctx.queue.name(), "worker stopped");
        Ok(())
    }
}

async fn ensure_groups(
    conn: &mut deadpool_redis::Connection,
    queue: &Queue,
    group: &str,
) -> Result<()> {
    for stream in queue.streams() {
        // From id 0, so jobs enqueued before any worker existed are consumed too.
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut **conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Sleeps for `d` unless `token` is cancelled first; returns false when cancelled.
async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Doubling delay for retrying Redis after an error, 50 ms up to 5 s.
struct ErrorDelay(Duration);

impl ErrorDelay {
    fn new() -> Self {
        Self(Duration::from_millis(50))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }
}

enum Read {
    /// Nothing read: the queue is paused.
    Paused,
    /// Entries, and whether the queue was paused as they were read (None: unknown).
    Entries(Vec<Delivery>, Option<bool>),
}

/// Reads and reclaims with the same concurrency slots. Reclaiming here rather than
/// in a task of its own matters: an idle reader holds every free slot while it
/// blocks, so a separate reclaimer would find none; instead the blocking read
/// never outlasts the next reclaim.
async fn read_loop<H: Handler>(ctx: &Arc<Ctx<H>>, shutdown: &CancellationToken) {
    let mut blocking: Option<MultiplexedConnection> = None;
    let mut delay = ErrorDelay::new();
    let mut cursors = vec!["0-0".to_owned(); ctx.queue.streams().len()];
    let mut next_reclaim = Instant::now() + ctx.cfg.reclaim_interval;
    let mut paused = false;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = ctx.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let mut permits = first;
        let extra = ctx
            .permits
            .available_permits()
            .min(ctx.cfg.batch_size.get() - 1);
        if extra > 0
            && let Ok(more) = ctx.permits.clone().try_acquire_many_owned(extra as u32)
        {
            permits.merge(more);
        }
        let want = permits.num_permits();

        // While paused, only the flag is polled: nothing more is claimed.
        if paused {
            if is_paused(ctx).await {
                drop(permits);
                if !sleep_or_cancel(ctx.cfg.pause_poll, shutdown).await {
                    return;
                }
                continue;
            }
            paused = false;
        }
        // A paused queue starts nothing, reclaimed jobs included.
        if Instant::now() >= next_reclaim {
            next_reclaim = Instant::now() + ctx.cfg.reclaim_interval;
            let claimed = reclaim_step(ctx, &mut cursors, want).await;
            if !claimed.is_empty() {
                dispatch(ctx, claimed, permits);
                continue;
            }
        }

        let read = match read_now(ctx, want).await {
            Ok((entries, now_paused)) if entries.is_empty() => {
                if now_paused {
                    Ok(Read::Paused)
                } else {
                    let block = next_reclaim
                        .saturating_duration_since(Instant::now())
                        .clamp(Duration::from_millis(1), ctx.cfg.block);
                    let r = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = read_blocking(ctx, &mut blocking, want, block) => r,
                    };
                    if r.is_err() {
                        blocking = None;
                    }
                    // A blocking read may return after a pause began.
                    r.map(|entries| Read::Entries(entries, None))
                }
            }
            Ok((entries, now_paused)) => Ok(Read::Entries(entries, Some(now_paused))),
            Err(e) => Err(e),
        };
        paused = matches!(read, Ok(Read::Paused));
        match read {
            Ok(Read::Paused) => {
                drop(permits);
                if !sleep_or_cancel(ctx.cfg.pause_poll, shutdown).await {
                    return;
                }
            }
            Ok(Read::Entries(entries, known_paused)) => {
                delay.reset();
                if entries.is_empty() {
                    continue;
                }
                track(ctx, &entries);
                // Entries read as a pause began are held (claimed and heart-beaten)
                // and start only once the queue is resumed.
                if known_paused != Some(false) && !wait_while_paused(ctx, shutdown).await {
                    return;
                }
                dispatch(ctx, entries, permits);
            }
            Err(e) => {
                drop(permits);
                if is_nogroup(&e) {
                    warn!(
                        queue.name = ctx.queue.name(),
                        "consumer group missing, recreating it"
                    );
                    if let Ok(mut conn) = ctx.broker.conn().await {
                        let _ = ensure_groups(&mut conn, &ctx.queue, &ctx.cfg.group).await;
                    }
                    continue;
                }
                let wait = delay.next();
                warn!(queue.name = ctx.queue.name(), error = %e, retry_in_ms = wait.as_millis() as u64, "reading jobs failed");
                if !sleep_or_cancel(wait, shutdown).await {
                    return;
                }
            }
        }
    }
}

fn is_nogroup(e: &Error) -> bool {
    matches!(e, Error::Redis(r) if r.code() == Some("NOGROUP") || r.to_string().contains("NOGROUP"))
}

/// Reads new entries without blocking, highest lane first. Each read is pipelined
/// with a check of the pause flag, placed after the read: if the flag was set
/// before the read ran, the check sees it and the entries are held, so nothing
/// starts after `pause` returned.
async fn read_now<H: Handler>(ctx: &Ctx<H>, want: usize) -> Result<(Vec<Delivery>, bool)> {
    let mut conn = ctx.broker.shared();
    let streams = ctx.queue.streams();
    let mut out = Vec::new();
    let mut paused = false;
    for stream in streams {
        let remaining = want - out.len();
        if remaining == 0 {
            break;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&ctx.cfg.group)
            .arg(&ctx.consumer)
            .arg("COUNT")
            .arg(remaining)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .cmd("EXISTS")
            .arg(ctx.queue.keys().paused());
        let (reply, now_paused): (Value, bool) = pipe.query_async(&mut conn).await?;
        out.extend(parse_xread(reply, streams)?);
        paused = now_paused;
        if paused {
            break;
        }
    }
    Ok((out, paused))
}

/// Waits on all lanes for new entries. Higher lanes are still preferred: Redis
/// answers with what it has on every lane, and the runner starts them in order.
async fn read_blocking<H: Handler>(
    ctx: &Ctx<H>,
    conn: &mut Option<MultiplexedConnection>,
    want: usize,
    block: Duration,
) -> Result<Vec<Delivery>> {
    if conn.is_none() {
        *conn = Some(ctx.broker.blocking_conn(ctx.cfg.block).await?);
    }
    let c = conn.as_mut().expect("just set");
    let streams = ctx.queue.streams();
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&ctx.cfg.group)
        .arg(&ctx.consumer)
        .arg("COUNT")
        .arg(want)
        .arg("BLOCK")
        .arg(block.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(streams);
    for _ in streams {
        cmd.arg(">");
    }
    let reply: Value = cmd.query_async(c).await?;
    let mut out = parse_xread(reply, streams)?;
    out.sort_by_key(|d| d.lane);
    Ok(out)
}

/// Entries of an XREADGROUP reply, with the lane of the stream each came from.
fn parse_xread(reply: Value, streams: &[String]) -> Result<Vec<Delivery>> {
    let mut out = Vec::new();
    let Value::Array(per_stream) = reply else {
        return Ok(out); // Nil: nothing new
    };
    for s in per_stream {
        let (name, entries): (String, Vec<Value>) = redis::from_redis_value(s)?;
        let lane = streams.iter().position(|k| *k == name).unwrap_or(0);
        for e in entries {
            let (id, fields): (String, Value) = redis::from_redis_value(e)?;
            out.push(Delivery {
                lane,
                id,
                envelope: envelope_field(fields),
                deliveries: 1,
            });
        }
    }
    Ok(out)
}

/// The bytes of the envelope field of an entry's field list, if present.
fn envelope_field(fields: Value) -> Option<Vec<u8>> {
    let Value::Array(items) = fields else {
        return None;
    };
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if matches!(&k, Value::BulkString(b) if b == FIELD.as_bytes()) {
            return match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            };
        }
    }
    None
}

/// Whether the queue's pause flag is set (an unreachable Redis counts as not
/// paused: the next read will report the error).
async fn is_paused<H: Handler>(ctx: &Ctx<H>) -> bool {
    redis::cmd("EXISTS")
        .arg(ctx.queue.keys().paused())
        .query_async::<bool>(&mut ctx.broker.shared())
        .await
        .unwrap_or(false)
}

async fn wait_while_paused<H: Handler>(ctx: &Ctx<H>, shutdown: &CancellationToken) -> bool {
    loop {
        if !is_paused(ctx).await {
            return true;
        }
        if !sleep_or_cancel(ctx.cfg.pause_poll, shutdown).await {
            return false;
        }
    }
}

fn track<H>(ctx: &Ctx<H>, entries: &[Delivery]) {
    let now = Instant::now();
    let mut inflight = ctx.inflight.lock().expect("inflight lock");
    for d in entries {
        inflight.insert((d.lane, Arc::from(d.id.as_str())), now);
    }
}

fn untrack<H>(ctx: &Ctx<H>, lane: usize, id: &Arc<str>) {
    ctx.inflight
        .lock()
        .expect("inflight lock")
        .remove(&(lane, id.clone()));
}

/// Starts one task per delivery, each holding one of `permits`. Entries must be
/// tracked in the in-flight map already.
fn dispatch<H: Handler>(
    ctx: &Arc<Ctx<H>>,
    entries: Vec<Delivery>,
    mut permits: OwnedSemaphorePermit,
) {
    for d in entries {
        let permit = permits
            .split(1)
            .expect("one permit was taken per requested entry");
        let entry_id: Arc<str> = Arc::from(d.id);
        let decoded = match d.envelope {
            None => Err(("entry has no envelope field \"e\"".to_owned(), Vec::new())),
            Some(raw) => match Envelope::decode(raw.as_slice()) {
                Ok(env) => Ok(env),
                Err(e) => Err((format!("envelope does not decode: {e}"), raw)),
            },
        };
        match decoded {
            Ok(env) => {
                let ctx2 = ctx.clone();
                ctx.jobs
                    .spawn(run_job(ctx2, d.lane, entry_id, env, d.deliveries, permit));
            }
            Err((error, raw)) => {
                warn!(queue.name = ctx.queue.name(), entry.id = %entry_id, %error, "malformed entry, dead-lettering it");
                let _ = ctx.settle.send(Settle::Outcome(Outcome {
                    lane: d.lane,
                    entry_id,
                    result: RunResult::Malformed { raw, error },
                }));
                drop(permit);
            }
        }
    }
}

async fn run_job<H: Handler>(
    ctx: Arc<Ctx<H>>,
    lane: usize,
    entry_id: Arc<str>,
    envelope: Envelope,
    deliveries: u64,
    permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let wait_ms = (envelope::now_ms() - envelope.available_at_ms).max(0);
    ctx.metrics.wait_seconds.record(wait_ms as f64 / 1000.0);
    let max_attempts = if envelope.max_attempts == 0 {
        ctx.cfg.max_attempts
    } else {
        envelope.max_attempts
    };
    let span = info_span!(
        "job",
        otel.name = %envelope.kind,
        queue.name = ctx.queue.name(),
        job.id = %envelope.id,
        job.kind = %envelope.kind,
        job.attempt = envelope.attempt,
    );
    crate::trace::continue_trace(&span, &envelope.headers);
    let envelope = Arc::new(envelope);
    let job = Job {
        envelope: envelope.clone(),
        entry_id: entry_id.clone(),
        deliveries,
        max_attempts,
    };
    // Boxed: the task future is moved on spawn, and handler futures can be large.
    let run = AssertUnwindSafe(Box::pin(ctx.handler.handle(job))).catch_unwind();
    let timed = tokio::time::timeout(ctx.cfg.job_timeout, run).instrument(span.clone());
    let result = tokio::select! {
        biased;
        _ = ctx.hard_stop.cancelled() => {
            // Left in the pending list: another worker reclaims it.
            return;
        }
        r = timed => r,
    };
    let duration = started.elapsed();
    ctx.metrics.run_seconds.record(duration.as_secs_f64());
    let result = match result {
        Ok(Ok(Ok(()))) => RunResult::Completed {
            envelope,
            duration_ms: duration.as_millis() as u64,
        },
        Ok(Ok(Err(error))) => RunResult::Failed {
            envelope,
            max_attempts,
            error,
        },
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            RunResult::Failed {
                envelope,
                max_attempts,
                error: JobError::retry(anyhow::anyhow!("handler panicked: {msg}")),
            }
        }
        Err(_) => {
            ctx.metrics.timed_out.increment(1);
            RunResult::Failed {
                envelope,
                max_attempts,
                error: JobError::retry(anyhow::anyhow!(
                    "timed out after {} ms",
                    ctx.cfg.job_timeout.as_millis()
                )),
            }
        }
    };
    let _ = ctx.settle.send(Settle::Outcome(Outcome {
        lane,
        entry_id,
        result,
    }));
    drop(permit);
}

async fn settle_loop<H: Handler>(ctx: Arc<Ctx<H>>, mut rx: mpsc::UnboundedReceiver<Settle>) {
    let max = ctx.cfg.ack_batch.get();
    let mut batch = Vec::with_capacity(max);
    while let Some(msg) = rx.recv().await {
        let mut flush = None;
        match msg {
            Settle::Outcome(o) => batch.push(o),
            Settle::Flush(done) => flush = Some(done),
        }
        while flush.is_none() && batch.len() < max {
            match rx.try_recv() {
                Ok(Settle::Outcome(o)) => batch.push(o),
                Ok(Settle::Flush(done)) => flush = Some(done),
                Err(_) => break,
            }
        }
        settle(&ctx, &mut batch).await;
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

async fn settle<H: Handler>(ctx: &Ctx<H>, batch: &mut Vec<Outcome>) {
    let lanes = ctx.queue.streams().len();
    let mut completed: Vec<Vec<&Outcome>> = vec![Vec::new(); lanes];
    let mut others = Vec::new();
    for o in batch.iter() {
        match &o.result {
            RunResult::Completed { .. } => completed[o.lane.min(lanes - 1)].push(o),
            _ => others.push(o),
        }
    }
    for (lane, outcomes) in completed.iter().enumerate() {
        if outcomes.is_empty() {
            continue;
        }
        match with_retries(|| complete(ctx, lane, outcomes)).await {
            Ok(n) => ctx.metrics.completed.increment(n),
            Err(e) => error!(
                queue.name = ctx.queue.name(),
                error = %e,
                jobs = outcomes.len(),
                "acknowledging completed jobs failed; they stay pending and will run again"
            ),
        }
    }
    for o in others {
        if let Err(e) = with_retries(|| settle_failure(ctx, o)).await {
            error!(
                queue.name = ctx.queue.name(),
                entry.id = %o.entry_id,
                error = %e,
                "recording a failed run failed; the entry stays pending and will run again"
            );
        }
    }
    for o in batch.iter() {
        untrack(ctx, o.lane, &o.entry_id);
    }
    batch.clear();
}

/// Runs a settling step up to 3 times: a dropped connection must not cost a rerun.
async fn with_retries<T, F, Fut>(mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = ErrorDelay::new();
    let mut last = None;
    for _ in 0..3 {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(delay.next()).await;
            }
        }
    }
    Err(last.expect("at least one try"))
}

/// Separates the parts of a done record; never in job ids or kinds we produce.
pub(crate) const DONE_SEPARATOR: char = '\u{1f}';

async fn complete<H: Handler>(ctx: &Ctx<H>, lane: usize, outcomes: &[&Outcome]) -> Result<u64> {
    let keys = ctx.queue.keys();
    let mut inv = scripts::COMPLETE.prepare_invoke();
    inv.key(keys.done())
        .key(keys.stats())
        .key(&ctx.queue.streams()[lane]);
    // The retention counts completions; the stream holds one record per batch.
    let records = match ctx.cfg.done_retention {
        0 => 0,
        n => n.div_ceil(outcomes.len().max(1)).max(1),
    };
    inv.arg(&ctx.cfg.group).arg(records);
    for o in outcomes {
        if let RunResult::Completed {
            envelope,
            duration_ms,
        } = &o.result
        {
            let sep = DONE_SEPARATOR;
            inv.arg(&*o.entry_id).arg(format!(
                "{}{sep}{}{sep}{}{sep}{duration_ms}",
                envelope.id, envelope.kind, envelope.attempt
            ));
        }
    }
    Ok(inv.invoke_async(&mut ctx.broker.shared()).await?)
}

async fn settle_failure<H: Handler>(ctx: &Ctx<H>, o: &Outcome) -> Result<()> {
    let mut conn = ctx.broker.shared();
    let keys = ctx.queue.keys();
    let stream = &ctx.queue.streams()[o.lane.min(ctx.queue.streams().len() - 1)];
    match &o.result {
        RunResult::Completed { .. } => Ok(()),
        RunResult::Malformed { raw, error } => {
            dead_letter(ctx, &mut conn, stream, o, raw, error, "", "", 0).await
        }
        RunResult::Failed {
            envelope,
            max_attempts,
            error,
        } => {
            let message = error.to_string();
            let exhausted = envelope.attempt >= *max_attempts;
            if error.is_permanent() || exhausted {
                let why = if error.is_permanent() {
                    "permanent error"
                } else {
                    "attempts exhausted"
                };
                warn!(
                    queue.name = ctx.queue.name(),
                    job.id = %envelope.id,
                    job.kind = %envelope.kind,
                    job.attempt = envelope.attempt,
                    error = %message,
                    "job failed ({why}), dead-lettering it"
                );
                dead_letter(
                    ctx,
                    &mut conn,
                    stream,
                    o,
                    &envelope.encode_to_vec(),
                    &message,
                    &envelope.id,
                    &envelope.kind,
                    envelope.attempt,
                )
                .await
            } else {
                let delay = ctx.cfg.backoff.delay(envelope.attempt);
                let mut next = Envelope::clone(envelope);
                next.attempt += 1;
                next.last_error = message.clone();
                next.available_at_ms = envelope::now_ms() + delay.as_millis() as i64;
                let member = delayed_member(o.lane, &next.encode_to_vec());
                let mut inv = scripts::RETRY.prepare_invoke();
                inv.key(stream)
                    .key(keys.delayed())
                    .key(keys.stats())
                    .arg(&ctx.cfg.group)
                    .arg(&ctx.consumer)
                    .arg(&*o.entry_id)
                    .arg(delay.as_millis() as u64)
                    .arg(member);
                let scheduled: i64 = inv.invoke_async(&mut conn).await?;
                if scheduled == 1 {
                    ctx.metrics.retried.increment(1);
                    info!(
                        queue.name = ctx.queue.name(),
                        job.id = %envelope.id,
                        job.kind = %envelope.kind,
                        job.attempt = envelope.attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %message,
                        "job failed, retrying"
                    );
                } else {
                    debug!(job.id = %envelope.id, "failed run not recorded: the entry was reclaimed by another consumer");
                }
                Ok(())
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dead_letter<H: Handler>(
    ctx: &Ctx<H>,
    conn: &mut redis::aio::ConnectionManager,
    stream: &str,
    o: &Outcome,
    raw: &[u8],
    error: &str,
    job_id: &str,
    kind: &str,
    attempts: u32,
) -> Result<()> {
    let keys = ctx.queue.keys();
    let mut inv = scripts::DEAD_LETTER.prepare_invoke();
    inv.key(stream)
        .key(keys.dlq())
        .key(keys.stats())
        .arg(&ctx.cfg.group)
        .arg(&ctx.consumer)
        .arg(&*o.entry_id)
        .arg(ctx.cfg.dlq_retention)
        .arg(raw)
        .arg(error)
        .arg(attempts)
        .arg(ctx.queue.lane_name(o.lane))
        .arg(job_id)
        .arg(kind);
    let moved: i64 = inv.invoke_async(conn).await?;
    if moved == 1 {
        ctx.metrics.dead_lettered.increment(1);
    }
    Ok(())
}

async fn heartbeat_loop<H: Handler>(ctx: Arc<Ctx<H>>, stop: CancellationToken) {
    let every = ctx.cfg.heartbeat_interval;
    while sleep_or_cancel(every, &stop).await {
        let now = Instant::now();
        let mut due: Vec<Vec<Arc<str>>> = vec![Vec::new(); ctx.queue.streams().len()];
        {
            let inflight = ctx.inflight.lock().expect("inflight lock");
            for ((lane, id), refreshed) in inflight.iter() {
                if now.duration_since(*refreshed) >= every {
                    due[*lane].push(id.clone());
                }
            }
        }
        for (lane, ids) in due.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            match heartbeat(&ctx, lane, &ids).await {
                Ok(lost) => {
                    let mut inflight = ctx.inflight.lock().expect("inflight lock");
                    for id in &ids {
                        if let Some(t) = inflight.get_mut(&(lane, id.clone())) {
                            *t = now;
                        }
                    }
                    for id in lost {
                        warn!(queue.name = ctx.queue.name(), entry.id = %id, "a running job was reclaimed by another consumer");
                        inflight.remove(&(lane, Arc::from(id.as_str())));
                    }
                }
                Err(e) => warn!(queue.name = ctx.queue.name(), error = %e, "heartbeat failed"),
            }
        }
    }
}

async fn heartbeat<H: Handler>(ctx: &Ctx<H>, lane: usize, ids: &[Arc<str>]) -> Result<Vec<String>> {
    let mut conn = ctx.broker.shared();
    let mut inv = scripts::HEARTBEAT.prepare_invoke();
    inv.key(&ctx.queue.streams()[lane])
        .arg(&ctx.cfg.group)
        .arg(&ctx.consumer);
    for id in ids {
        inv.arg(&**id);
    }
    Ok(inv.invoke_async(&mut conn).await?)
}

/// Takes over idle entries of stopped consumers, up to the permits held, lane by
/// lane; returns them tracked and ready to dispatch.
async fn reclaim_step<H: Handler>(
    ctx: &Arc<Ctx<H>>,
    cursors: &mut [String],
    mut free: usize,
) -> Vec<Delivery> {
    let mut claimed = Vec::new();
    for (lane, cursor) in cursors.iter_mut().enumerate() {
        if free == 0 {
            break;
        }
        match reclaim(ctx, lane, cursor, free).await {
            Ok((next, entries, poisoned)) => {
                *cursor = next;
                if poisoned > 0 {
                    ctx.metrics.dead_lettered.increment(poisoned);
                    warn!(
                        queue.name = ctx.queue.name(),
                        jobs = poisoned,
                        max_deliveries = ctx.cfg.max_deliveries,
                        "dead-lettered entries whose worker stopped on every delivery"
                    );
                }
                if !entries.is_empty() {
                    ctx.metrics.reclaimed.increment(entries.len() as u64);
                    info!(
                        queue.name = ctx.queue.name(),
                        jobs = entries.len(),
                        "reclaimed jobs of a stopped consumer"
                    );
                    free -= entries.len().min(free);
                    claimed.extend(entries);
                }
            }
            Err(e) if is_nogroup(&e) => {}
            Err(e) => warn!(queue.name = ctx.queue.name(), error = %e, "reclaim failed"),
        }
    }
    track(ctx, &claimed);
    claimed
}

async fn reclaim<H: Handler>(
    ctx: &Ctx<H>,
    lane: usize,
    cursor: &str,
    count: usize,
) -> Result<(String, Vec<Delivery>, u64)> {
    let mut conn = ctx.broker.shared();
    let keys = ctx.queue.keys();
    let mut inv = scripts::RECLAIM.prepare_invoke();
    inv.key(&ctx.queue.streams()[lane])
        .key(keys.dlq())
        .key(keys.stats())
        .arg(&ctx.cfg.group)
        .arg(&ctx.consumer)
        .arg(ctx.cfg.visibility_timeout.as_millis() as u64)
        .arg(cursor)
        .arg(count)
        .arg(ctx.cfg.max_deliveries)
        .arg(ctx.cfg.dlq_retention)
        .arg(ctx.queue.lane_name(lane));
    let (next, entries, poisoned): (String, Vec<Value>, u64) = inv.invoke_async(&mut conn).await?;
    let mut out = Vec::with_capacity(entries.len() / 3);
    let mut it = entries.into_iter();
    while let (Some(id), Some(fields), Some(deliveries)) = (it.next(), it.next(), it.next()) {
        out.push(Delivery {
            lane,
            id: redis::from_redis_value(id)?,
            envelope: envelope_field(fields),
            deliveries: redis::from_redis_value(deliveries)?,
        });
    }
    Ok((next, out, poisoned))
}

async fn promote_loop<H: Handler>(ctx: Arc<Ctx<H>>, shutdown: CancellationToken) {
    const LIMIT: usize = 1000;
    let mut delay = ErrorDelay::new();
    loop {
        let sleep = match promote(&ctx, LIMIT).await {
            Ok((moved, _)) if moved >= LIMIT => {
                delay.reset();
                continue;
            }
            Ok((_, next_due_ms)) => {
                delay.reset();
                match next_due_ms {
                    Some(ms) => Duration::from_millis(ms).min(ctx.cfg.promote_interval),
                    None => ctx.cfg.promote_interval,
                }
            }
            Err(e) => {
                warn!(queue.name = ctx.queue.name(), error = %e, "promoting delayed jobs failed");
                delay.next().max(ctx.cfg.promote_interval)
            }
        };
        if !sleep_or_cancel(sleep, &shutdown).await {
            return;
        }
    }
}

/// Moves due delayed jobs into their streams; returns how many, and the ms until
/// the next one is due.
pub(crate) async fn promote_due_jobs(
    conn: &mut impl redis::aio::ConnectionLike,
    queue: &Queue,
    limit: usize,
) -> Result<(usize, Option<u64>)> {
    let mut inv = scripts::PROMOTE.prepare_invoke();
    inv.key(queue.keys().delayed());
    for s in queue.streams() {
        inv.key(s);
    }
    inv.arg(limit);
    let (moved, wait): (usize, i64) = inv.invoke_async(conn).await?;
    Ok((moved, u64::try_from(wait).ok()))
}

async fn promote<H: Handler>(ctx: &Ctx<H>, limit: usize) -> Result<(usize, Option<u64>)> {
    let mut conn = ctx.broker.shared();
    promote_due_jobs(&mut conn, &ctx.queue, limit).await
}
