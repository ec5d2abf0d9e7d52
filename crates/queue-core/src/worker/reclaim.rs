//! Reclaiming: entries idle past the visibility timeout (their consumer stopped)
//! are claimed by this worker, or dead-lettered past `max_deliveries`.
use std::sync::Arc;

use prost::Message;
use redis::Value;
use tracing::{info, warn};

use super::DeadLettered;
use super::dispatch::track;
use super::read::{envelope_field, is_nogroup};
use super::runner::{Ctx, Delivery};
use crate::envelope::Envelope;
use crate::{Result, scripts};

/// Takes over idle entries of stopped consumers, up to the permits held, lane by
/// lane; returns them tracked and ready to dispatch.
pub(super) async fn reclaim_step(
    ctx: &Arc<Ctx>,
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
                // XAUTOCLAIM also returns this worker's own running entries when
                // their heartbeat was late: the claim just refreshed them, and
                // they must not start a second time here.
                let entries: Vec<Delivery> = {
                    let inflight = ctx.inflight.lock().expect("inflight lock");
                    entries
                        .into_iter()
                        .filter(|d| !inflight.contains_key(&(d.lane, Arc::from(d.id.as_str()))))
                        .collect()
                };
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
            Err(e) if ctx.link().failed(&e) => break,
            Err(e) => warn!(queue.name = ctx.queue.name(), error = %e, "reclaim failed"),
        }
    }
    track(ctx, &claimed);
    claimed
}

async fn reclaim(
    ctx: &Ctx,
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
        .arg(ctx.queue.lane_name(lane))
        .arg(keys.uniq_prefix())
        .arg(keys.history_prefix());
    let (next, entries, poisoned): (String, Vec<Value>, Vec<Vec<u8>>) =
        inv.invoke_async(&mut conn).await?;
    for raw in &poisoned {
        // The reclaim script wrote this reason into the dead letter.
        let error = format!(
            "delivered more than max_deliveries ({}) times: its worker stopped each time",
            ctx.cfg.max_deliveries
        );
        let envelope = Envelope::decode(raw.as_slice()).ok().map(Arc::new);
        let _ = ctx.dead_letters.send(DeadLettered { envelope, error });
    }
    let poisoned = poisoned.len() as u64;
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
