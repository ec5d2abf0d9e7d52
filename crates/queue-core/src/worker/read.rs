//! Reading: new entries (highest lane first, pipelined with the pause flag) and,
//! with the same concurrency slots, entries reclaimed from stopped consumers.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Handler;
use super::dispatch::{dispatch, track};
use super::reclaim::reclaim_step;
use super::runner::{Ctx, Delivery, ErrorDelay, sleep_or_cancel};
use crate::fields;
use crate::{Error, Queue, Result};

pub(super) async fn ensure_groups(
    conn: &mut crate::broker::Connection,
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
            .query_async(conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Yields in a row without a slot coming back after which the reader reads
/// with the slots it has (also used by the settling task for outcomes).
pub(super) const SETTLING_YIELDS: u32 = 3;

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
pub(super) async fn read_loop<H: Handler>(
    ctx: &Arc<Ctx>,
    handler: &Arc<H>,
    shutdown: &CancellationToken,
) {
    let mut blocking: Option<crate::broker::Connection> = None;
    let mut delay = ErrorDelay::new();
    let mut cursors = vec!["0-0".to_owned(); ctx.queue.streams().len()];
    let mut next_reclaim = Instant::now() + ctx.cfg.reclaim_interval;
    let mut paused = false;
    // Entries read beyond the free slots (tracked, so heart-beaten), highest lane
    // first: they start before anything new is read.
    let mut held: VecDeque<Delivery> = VecDeque::new();
    loop {
        // Redis is down: wait with the other loops until the prober sees it back.
        if ctx.link().is_down() {
            blocking = None;
            if !ctx.link().wait_up(shutdown).await {
                return;
            }
        }
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = ctx.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        // Runs that are finishing give their slots back before the read counts
        // them: woken by the first slot freed, the reader would otherwise run
        // next and read one entry per freed slot, and Redis's cost is per read.
        // One yield may resume it before those runs were polled, so it yields
        // until slots stop coming back (a few yields: a run that takes longer is
        // not waited for).
        let mut free = ctx.permits.available_permits();
        let mut idle_yields = 0;
        let full = ctx.cfg.batch_size.get().min(ctx.cfg.concurrency.get());
        while free + 1 < full && idle_yields < SETTLING_YIELDS {
            tokio::task::yield_now().await;
            let now = ctx.permits.available_permits();
            if now > free {
                idle_yields = 0;
            } else {
                idle_yields += 1;
            }
            free = now;
        }
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

        if !held.is_empty() {
            let batch: Vec<Delivery> = held.drain(..want.min(held.len())).collect();
            if !wait_while_paused(ctx, shutdown).await {
                return;
            }
            held.extend(dispatch(ctx, handler, batch, permits));
            continue;
        }

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
            if ctx.link().is_down() {
                continue;
            }
            if !claimed.is_empty() {
                // The pause may have begun during the last blocking read: reclaimed
                // jobs are held (claimed, heart-beaten) like read ones.
                if !wait_while_paused(ctx, shutdown).await {
                    return;
                }
                held.extend(dispatch(ctx, handler, claimed, permits));
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
                ctx.link().succeeded();
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
                held.extend(dispatch(ctx, handler, entries, permits));
            }
            Err(e) => {
                drop(permits);
                if ctx.link().failed(&e) {
                    continue;
                }
                if is_nogroup(&e) {
                    // The stream or its group is gone (Redis lost its data, or an
                    // operator deleted it): recreate both and list the queue again.
                    match recreate(ctx).await {
                        Ok(()) => {
                            warn!(
                                queue.name = ctx.queue.name(),
                                "consumer group was missing: recreated it"
                            );
                            delay.reset();
                            continue;
                        }
                        Err(e) if ctx.link().failed(&e) => continue,
                        Err(e) => {
                            // NOPERM, WRONGTYPE: try again later, not in a loop
                            // that hammers Redis and the log.
                            let wait = delay.next();
                            warn!(queue.name = ctx.queue.name(), error = %e, retry_in_ms = wait.as_millis() as u64, "consumer group missing and recreating it failed");
                            if !sleep_or_cancel(wait, shutdown).await {
                                return;
                            }
                            continue;
                        }
                    }
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

async fn recreate(ctx: &Ctx) -> crate::Result<()> {
    let mut conn = ctx.broker.conn().await?;
    ensure_groups(&mut conn, &ctx.queue, &ctx.cfg.group).await?;
    ctx.queue.register_again(&mut conn).await
}

pub(super) fn is_nogroup(e: &Error) -> bool {
    matches!(e, Error::Redis(r) if r.code() == Some("NOGROUP") || r.to_string().contains("NOGROUP"))
}

/// Reads new entries without blocking, highest lane first. Each read is pipelined
/// with a check of the pause flag, placed after the read: if the flag was set
/// before the read ran, the check sees it and the entries are held, so nothing
/// starts after `pause` returned.
async fn read_now(ctx: &Ctx, want: usize) -> Result<(Vec<Delivery>, bool)> {
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
async fn read_blocking(
    ctx: &Ctx,
    conn: &mut Option<crate::broker::Connection>,
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
pub(super) fn envelope_field(fields: Value) -> Option<Vec<u8>> {
    let Value::Array(items) = fields else {
        return None;
    };
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if matches!(&k, Value::BulkString(b) if b == fields::ENVELOPE.as_bytes()) {
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
async fn is_paused(ctx: &Ctx) -> bool {
    redis::cmd("EXISTS")
        .arg(ctx.queue.keys().paused())
        .query_async::<bool>(&mut ctx.broker.shared())
        .await
        .unwrap_or(false)
}

async fn wait_while_paused(ctx: &Ctx, shutdown: &CancellationToken) -> bool {
    loop {
        if !is_paused(ctx).await {
            return true;
        }
        if !sleep_or_cancel(ctx.cfg.pause_poll, shutdown).await {
            return false;
        }
    }
}
