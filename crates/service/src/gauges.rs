//! The queue's own counts as Prometheus gauges, sampled by each worker, so that
//! alerts can watch what only the queue knows (the oldest waiting job's age,
//! the dead letters kept, a pause) without a dashboard open or a `queuectl`
//! in a loop (docs/operations.md, "Alerts"). Every replica of a worker reports
//! the same queue: read these with `max by (queue)`.

use std::future::Future;
use std::time::Duration;

use queue_core::{Admin, Queue, QueueStats};

/// How often a worker samples its queue: one `stats` script call (a few
/// microseconds of Redis) per replica.
pub const EVERY: Duration = Duration::from_secs(15);

/// Sets the gauges from `admin`'s stats of `queue` at once, then every `every`,
/// until `stop` completes. While Redis is down the gauges keep their last
/// values (the worker itself counts the outage in `rsq_redis_unreachable_total`).
pub async fn export(admin: Admin, queue: Queue, every: Duration, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        match admin.stats(&queue).await {
            Ok(stats) => set(&stats),
            Err(e) => {
                tracing::debug!(queue.name = queue.name(), error = %e, "sampling the queue's counts")
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn set(stats: &QueueStats) {
    let gauge = |name: &'static str, value: f64| {
        metrics::gauge!(name, "queue" => stats.name.clone()).set(value);
    };
    gauge("rsq_queue_waiting", stats.waiting as f64);
    gauge("rsq_queue_delayed", stats.delayed as f64);
    gauge("rsq_queue_dead_letters", stats.failed as f64);
    gauge("rsq_queue_paused", if stats.paused { 1.0 } else { 0.0 });
    // No job waiting is an age of zero, so the alert's threshold reads simply.
    gauge(
        "rsq_queue_oldest_waiting_age_seconds",
        stats.oldest_waiting_age_ms.unwrap_or(0) as f64 / 1000.0,
    );
}
