//! Keeping claims alive: every in-flight entry's idle time is reset well before
//! the visibility timeout, so no other consumer reclaims a running job.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::limits;
use super::runner::{Ctx, sleep_or_cancel};
use crate::{Result, scripts};

/// Whether an entry last refreshed `age` ago is refreshed on this tick. Half an
/// interval, not a whole one: an entry read just after a tick is then refreshed on
/// the next tick, so no entry goes more than 1.5 intervals without a refresh
/// (validation keeps 2 intervals under the visibility timeout).
fn needs_refresh(age: Duration, every: Duration) -> bool {
    age >= every / 2
}

pub(super) async fn heartbeat_loop(ctx: Arc<Ctx>, stop: CancellationToken) {
    let every = ctx.cfg.heartbeat_interval;
    while sleep_or_cancel(every, &stop).await {
        if ctx.link().is_down() && !ctx.link().wait_up(&stop).await {
            return;
        }
        let now = Instant::now();
        let mut due: Vec<Vec<Arc<str>>> = vec![Vec::new(); ctx.queue.streams().len()];
        {
            let inflight = ctx.inflight.lock().expect("inflight lock");
            for ((lane, id), refreshed) in inflight.iter() {
                if needs_refresh(now.duration_since(*refreshed), every) {
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
                    ctx.link().succeeded();
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
                Err(e) if ctx.link().failed(&e) => break,
                Err(e) => warn!(queue.name = ctx.queue.name(), error = %e, "heartbeat failed"),
            }
            if ctx.cfg.global_concurrency.is_some()
                && let Err(e) = limits::refresh(&ctx, lane, &ids).await
                && !ctx.link().failed(&e)
            {
                warn!(queue.name = ctx.queue.name(), error = %e, "extending global-limit leases failed");
            }
        }
    }
}

async fn heartbeat(ctx: &Ctx, lane: usize, ids: &[Arc<str>]) -> Result<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_read_just_after_a_tick_is_refreshed_on_the_next_tick() {
        let every = Duration::from_millis(1000);
        // Read 1 ms after a tick: 999 ms old at the next one.
        assert!(needs_refresh(Duration::from_millis(999), every));
        assert!(needs_refresh(every, every));
        // Read just before a tick: refreshed on the following one instead.
        assert!(!needs_refresh(Duration::from_millis(10), every));
    }
}
