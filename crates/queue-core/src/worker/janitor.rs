//! Keeping the group's consumer list and the queue registry true: a worker
//! removes its own consumer when it stops, now and then removes consumers of
//! processes long gone, and lists its queue in the registry again. Without
//! this, every process start adds a consumer and autoscaling fills the group with
//! dead ones, so `consumers` (read by KEDA and dashboards) means nothing.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::runner::{Ctx, sleep_or_cancel};
use crate::keys::HEIR_CONSUMER;
use crate::{Result, scripts};

/// A consumer idle this many visibility timeouts, holding nothing, is gone.
const DEAD_AFTER_VISIBILITY_TIMEOUTS: u32 = 10;

/// Removes other consumers idle far past the visibility timeout with nothing
/// pending, every two visibility timeouts until `stop`.
pub(super) async fn janitor_loop(ctx: Arc<Ctx>, stop: CancellationToken) {
    let dead_after = ctx.cfg.visibility_timeout * DEAD_AFTER_VISIBILITY_TIMEOUTS;
    while sleep_or_cancel(ctx.cfg.visibility_timeout * 2, &stop).await {
        if ctx.link().is_down() && !ctx.link().wait_up(&stop).await {
            return;
        }
        // Cheap and idempotent: a queue whose registry entry was lost (Redis
        // restarted without its data) is listed again while its workers live.
        if let Err(e) = ctx.queue.register_again(&mut ctx.broker.shared()).await
            && !ctx.link().failed(&e)
        {
            warn!(queue.name = ctx.queue.name(), error = %e, "listing the queue in the registry failed");
        }
        // With it, the queue's retention, for the cleanups and operators to read.
        let retention = ctx.cfg.retention();
        if let Err(e) =
            crate::admin::write_retention(&mut ctx.broker.shared(), &ctx.queue, &retention).await
            && !ctx.link().failed(&e)
        {
            warn!(queue.name = ctx.queue.name(), error = %e, "writing the queue's retention failed");
        }
        if let Err(e) = remove_dead(&ctx, dead_after).await
            && !ctx.link().failed(&e)
        {
            warn!(queue.name = ctx.queue.name(), error = %e, "removing dead consumers failed");
        }
    }
}

async fn remove_dead(ctx: &Ctx, dead_after: Duration) -> Result<()> {
    let mut conn = ctx.broker.shared();
    for (lane, stream) in ctx.queue.streams().iter().enumerate() {
        let reply: redis::RedisResult<Vec<Vec<Value>>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(&ctx.cfg.group)
            .query_async(&mut conn)
            .await;
        let Ok(consumers) = reply else {
            continue; // no stream or group yet
        };
        for fields in consumers {
            let (mut name, mut pending, mut idle) = (String::new(), 0u64, 0u64);
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                match redis::from_redis_value::<String>(k)?.as_str() {
                    "name" => name = redis::from_redis_value(v)?,
                    "pending" => pending = redis::from_redis_value(v)?,
                    "idle" => idle = redis::from_redis_value(v)?,
                    _ => {}
                }
            }
            if name == ctx.consumer
                || pending > 0
                || idle < dead_after.as_millis() as u64
                || name == HEIR_CONSUMER
            {
                continue;
            }
            // The script checks the idle time again, in the same step as the removal.
            if evict(ctx, &mut conn, stream, &name, dead_after).await? {
                info!(queue.name = ctx.queue.name(), lane = ctx.queue.lane_name(lane), consumer = %name, idle_ms = idle, "removed a consumer of a stopped process");
            }
        }
    }
    Ok(())
}

/// Removes `name` from the group of `stream` if idle for `min_idle`, handing any
/// pending entries to the heir consumer first; true when it was removed.
pub(super) async fn evict(
    ctx: &Ctx,
    conn: &mut crate::broker::Connection,
    stream: &str,
    name: &str,
    min_idle: Duration,
) -> Result<bool> {
    loop {
        let mut inv = scripts::EVICT_CONSUMER.prepare_invoke();
        inv.key(stream)
            .arg(&ctx.cfg.group)
            .arg(name)
            .arg(HEIR_CONSUMER)
            .arg(500)
            .arg(min_idle.as_millis() as u64);
        let (_moved, state): (u64, i64) = inv.invoke_async(conn).await?;
        match state {
            1 => return Ok(true),
            -1 => return Ok(false),
            _ => {}
        }
    }
}

/// On a clean stop: this worker's consumer leaves the group on every lane. Its
/// entries are settled by now; any left (jobs abandoned at the end of the grace
/// period) go to the heir with their idle time, for a live worker to reclaim.
pub(super) async fn leave_group(ctx: &Ctx) {
    let mut conn = ctx.broker.shared();
    for stream in ctx.queue.streams() {
        if let Err(e) = evict(ctx, &mut conn, stream, &ctx.consumer, Duration::ZERO).await {
            warn!(queue.name = ctx.queue.name(), consumer = %ctx.consumer, error = %e, "leaving the consumer group failed; the consumer stays until removed as idle");
        }
    }
}
