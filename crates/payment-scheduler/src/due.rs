//! `payment_checks_due`: the jobs of the `payment-checks` queue due within the
//! next minute. Most checks wait in the queue's delayed set, not in its streams,
//! so a stream trigger sees them only once they are due; an autoscaler reads
//! this gauge to have replicas ready when they come due (docs/operations.md,
//! "Scale").

use std::time::Duration;

use queue_core::{Broker, CancellationToken, Queue};

/// How far ahead the gauge looks.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often each replica refreshes the gauge (every replica reports the same
/// count: read it with `max`).
pub const EVERY: Duration = Duration::from_secs(5);

/// Due times are scored on Redis's clock, so the window starts there too.
const DUE_WITHIN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '-inf', now + tonumber(ARGV[1]))
";

/// Jobs of `queue` in its delayed set due within `window`, overdue ones included.
pub async fn due_within(
    broker: &Broker,
    queue: &Queue,
    window: Duration,
) -> queue_core::Result<u64> {
    let mut conn = broker.connection().await?;
    let count = redis::Script::new(DUE_WITHIN)
        .key(queue.keys().delayed())
        .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
        .invoke_async(&mut conn)
        .await?;
    Ok(count)
}

/// Sets the gauge every [`EVERY`] until `stop`. While Redis is down the gauge
/// keeps its last value (the worker itself reports the outage).
pub async fn export(broker: Broker, queue: Queue, stop: CancellationToken) {
    let gauge = metrics::gauge!("payment_checks_due");
    loop {
        match due_within(&broker, &queue, WINDOW).await {
            Ok(due) => gauge.set(due as f64),
            Err(e) => tracing::debug!(error = %e, "reading the checks due soon"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
