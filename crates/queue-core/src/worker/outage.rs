//! One "Redis is down" state per worker, shared by all its loops.
//!
//! While Redis is unreachable every loop (read, reclaim, promote, heartbeat,
//! settle, janitor, repeat, global limits) would otherwise retry on its own
//! clock and log a connection error each time. Instead the first loop whose call
//! fails for want of a connection marks the worker down (one log line), the
//! loops wait, and one prober asks Redis again with exponential backoff up to
//! `WorkerConfig::reconnect_backoff.max`; when it answers, the worker is marked
//! up (one log line) and every loop resumes at once. Failed calls are counted
//! (`rsq_redis_unreachable_total`, [`RedisStatus::failed_calls`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use metrics::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::runner::{Ctx, sleep_or_cancel};
use crate::{Error, Result};

/// Whether a worker reaches Redis, and how many of its calls failed because it
/// did not. Cheap to clone; see [`crate::Worker::redis_status`].
#[derive(Debug, Clone)]
pub struct RedisStatus(Arc<Link>);

#[derive(Debug)]
pub(super) struct Link {
    queue: String,
    /// true while Redis answers.
    up: watch::Sender<bool>,
    failed: AtomicU64,
    failed_metric: Counter,
    /// When the current outage began, and the failed calls before it.
    down_since: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl RedisStatus {
    pub(super) fn new(queue: &str) -> Self {
        Self(Arc::new(Link {
            queue: queue.to_owned(),
            up: watch::Sender::new(true),
            failed: AtomicU64::new(0),
            failed_metric: metrics::counter!("rsq_redis_unreachable_total", "queue" => queue.to_owned()),
            down_since: std::sync::Mutex::new(None),
        }))
    }

    /// Whether the worker is waiting for Redis to answer again.
    pub fn is_down(&self) -> bool {
        !*self.0.up.borrow()
    }

    /// Calls of this worker that failed because Redis could not be reached.
    pub fn failed_calls(&self) -> u64 {
        self.0.failed.load(Ordering::Relaxed)
    }

    pub(super) fn link(&self) -> &Link {
        &self.0
    }
}

impl Link {
    /// Records a failed call. True when it failed for want of a connection
    /// (the worker is then down: wait with [`Link::wait_up`]); false for any
    /// other error, which the caller handles as before.
    pub(super) fn failed(&self, error: &Error) -> bool {
        if !is_unreachable(error) {
            return false;
        }
        let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        self.failed_metric.increment(1);
        let became_down = self.up.send_if_modified(|up| std::mem::replace(up, false));
        if became_down {
            *self.down_since.lock().expect("outage lock") = Some((Instant::now(), failed - 1));
            warn!(queue.name = %self.queue, error = %error, "Redis is unreachable: the worker waits and asks again with backoff");
        }
        true
    }

    /// Records that a call succeeded: the worker is up again if it was down.
    pub(super) fn succeeded(&self) {
        if *self.up.borrow() {
            return;
        }
        if self.up.send_if_modified(|up| !std::mem::replace(up, true)) {
            let since = self.down_since.lock().expect("outage lock").take();
            let (outage_ms, failed) = since.map_or((0, 0), |(at, before)| {
                (
                    at.elapsed().as_millis() as u64,
                    self.failed.load(Ordering::Relaxed) - before,
                )
            });
            info!(queue.name = %self.queue, outage_ms, redis.failed_calls = failed, "Redis answers again: the worker resumes");
        }
    }

    pub(super) fn is_down(&self) -> bool {
        !*self.up.borrow()
    }

    /// Waits until Redis answers again; false when `stop` came first.
    pub(super) async fn wait_up(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.up.subscribe();
        tokio::select! {
            up = rx.wait_for(|up| *up) => up.is_ok(),
            _ = stop.cancelled() => false,
        }
    }

    /// Waits until the worker is marked down; false when `stop` came first.
    pub(super) async fn wait_down(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.up.subscribe();
        tokio::select! {
            down = rx.wait_for(|up| !*up) => down.is_ok(),
            _ = stop.cancelled() => false,
        }
    }
}

/// Whether an error means Redis could not be reached (no connection, a
/// timeout, a cluster without a master for the slot), rather than a reply.
fn is_unreachable(error: &Error) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    match error {
        Error::Redis(e) | Error::Unreachable { source: e, .. } => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || matches!(
                    e.kind(),
                    ErrorKind::ClusterConnectionNotFound
                        | ErrorKind::Server(
                            ServerErrorKind::ClusterDown
                                | ServerErrorKind::MasterDown
                                | ServerErrorKind::TryAgain
                                | ServerErrorKind::BusyLoading
                        )
                )
        }
        Error::Pool(_) => true,
        _ => false,
    }
}

/// The prober: while the worker is down, asks Redis again after each delay of
/// `reconnect_backoff`, until it answers (or `stop`).
pub(super) async fn probe_loop(ctx: Arc<Ctx>, stop: CancellationToken) {
    while ctx.link().wait_down(&stop).await {
        let mut attempt = 0;
        while ctx.link().is_down() {
            attempt += 1;
            if !sleep_or_cancel(ctx.cfg.reconnect_backoff.delay(attempt), &stop).await {
                return;
            }
            match probe(&ctx).await {
                // Any reply but a failure to reach Redis means it answers.
                Err(e) if ctx.link().failed(&e) => {}
                _ => ctx.link().succeeded(),
            }
        }
    }
}

/// A cheap command on the queue's own slot (on a cluster, its master must answer).
async fn probe(ctx: &Ctx) -> Result<()> {
    redis::cmd("EXISTS")
        .arg(ctx.queue.keys().paused())
        .query_async::<()>(&mut ctx.broker.shared())
        .await?;
    Ok(())
}
