//! Global limits: how many of a queue's jobs run at once across every replica
//! (`global_concurrency`) and how many start per window (`rate_limit`), for third
//! parties that cannot take more. A run waits for admission after it holds its
//! entry (claimed and heart-beaten, so no other replica takes it) and before its
//! handler starts: waiting uses no attempt and no job timeout. Admission is one
//! script on the server's clock; a running job holds a lease that its heartbeat
//! extends, so a replica that dies gives its share back within the visibility
//! timeout.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use tracing::{debug, warn};

use super::runner::{Ctx, ErrorDelay};
use crate::{Result, scripts};

/// At most `count` starts in any window of `per`, across all replicas
/// (`10/1s`, `100/1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a rate such as 10/1s or 100/1m");
        let (count, per) = s.split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
        if per < Duration::from_millis(1) {
            return Err(bad());
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// The lease member of an entry.
fn member(lane: usize, entry_id: &str) -> String {
    format!("{lane}:{entry_id}")
}

/// Whether this worker has any global limit to respect.
pub(super) fn limited(ctx: &Ctx) -> bool {
    ctx.cfg.global_concurrency.is_some() || ctx.cfg.rate_limit.is_some()
}

/// Waits until the entry may start under the global limits; false when the
/// worker began to stop first (the run is given up, its entry left pending).
pub(super) async fn admit(ctx: &Ctx, lane: usize, entry_id: &str) -> bool {
    let member = member(lane, entry_id);
    let mut errors = ErrorDelay::new();
    let mut waited = false;
    loop {
        let wait = match try_admit(ctx, &member).await {
            Ok(0) => {
                if waited {
                    debug!(
                        queue.name = ctx.queue.name(),
                        entry.id = entry_id,
                        "admitted under the global limit"
                    );
                }
                return true;
            }
            Ok(ms) if ms > 0 => Duration::from_millis(ms as u64),
            Ok(-2) => ctx.cfg.pause_poll,
            // Every slot is taken: ask again soon, at a jittered moment so the
            // replicas' waiting runs do not all ask at once.
            Ok(_) => ctx
                .cfg
                .limit_poll
                .mul_f64(rand::rng().random_range(0.5..1.5)),
            Err(e) if ctx.link().failed(&e) => {
                if !ctx.link().wait_up(&ctx.stopping).await {
                    return false;
                }
                continue;
            }
            Err(e) => {
                let wait = errors.next();
                warn!(queue.name = ctx.queue.name(), error = %e, retry_in_ms = wait.as_millis() as u64, "checking the global limit failed");
                wait
            }
        };
        waited = true;
        tokio::select! {
            _ = ctx.stopping.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn try_admit(ctx: &Ctx, member: &str) -> Result<i64> {
    let keys = ctx.queue.keys();
    let mut inv = scripts::LIMIT_ADMIT.prepare_invoke();
    inv.key(keys.limit_running())
        .key(keys.limit_starts())
        .key(keys.paused())
        .arg(member)
        .arg(lease_ms(ctx))
        .arg(ctx.cfg.global_concurrency.map_or(0, |n| n.get()))
        .arg(ctx.cfg.rate_limit.map_or(0, |r| r.count.get()))
        .arg(ctx.cfg.rate_limit.map_or(0, |r| r.per.as_millis() as u64));
    Ok(inv.invoke_async(&mut ctx.broker.shared()).await?)
}

/// Gives the running slot back once the handler returned. Should this fail, the
/// lease expires after the visibility timeout.
/// Called only when a global concurrency is set.
pub(super) async fn release(ctx: &Ctx, lane: usize, entry_id: &str) {
    let released: Result<()> = redis::cmd("ZREM")
        .arg(ctx.queue.keys().limit_running())
        .arg(member(lane, entry_id))
        .query_async(&mut ctx.broker.shared())
        .await
        .map_err(Into::into);
    if let Err(e) = released
        && !ctx.link().failed(&e)
    {
        warn!(queue.name = ctx.queue.name(), entry.id = entry_id, error = %e, "releasing a global slot failed; its lease expires instead");
    }
}

/// Extends the leases of in-flight entries of `lane` (those still waiting hold
/// none and are left alone); called with the heartbeat.
pub(super) async fn refresh(ctx: &Ctx, lane: usize, ids: &[std::sync::Arc<str>]) -> Result<()> {
    // Called only when a global concurrency is set.
    if ids.is_empty() {
        return Ok(());
    }
    let mut inv = scripts::LIMIT_REFRESH.prepare_invoke();
    inv.key(ctx.queue.keys().limit_running()).arg(lease_ms(ctx));
    for id in ids {
        inv.arg(member(lane, id));
    }
    Ok(inv.invoke_async(&mut ctx.broker.shared()).await?)
}

/// A lease lasts as long as a claim: a dead replica's share comes back when
/// its entries become reclaimable.
fn lease_ms(ctx: &Ctx) -> u64 {
    ctx.cfg.visibility_timeout.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_written_count_slash_window() {
        let r: RateLimit = "10/1s".parse().expect("valid");
        assert_eq!((r.count.get(), r.per), (10, Duration::from_secs(1)));
        let r: RateLimit = " 100 / 1m ".parse().expect("valid");
        assert_eq!((r.count.get(), r.per), (100, Duration::from_secs(60)));
        assert_eq!(r.to_string(), "100/1m");
        for bad in ["10", "0/1s", "x/1s", "10/", "10/fast", "10/0s", "-1/1s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }
}
