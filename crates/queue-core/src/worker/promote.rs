//! Promoting: due members of the delayed set move into their lane streams. Every
//! worker runs this, so no scheduler process is needed.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::runner::{Ctx, ErrorDelay, sleep_or_cancel};
use crate::{Queue, Result, scripts};

pub(super) async fn promote_loop(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    const LIMIT: usize = 1000;
    let mut delay = ErrorDelay::new();
    loop {
        if ctx.link().is_down() && !ctx.link().wait_up(&shutdown).await {
            return;
        }
        let sleep = match promote(&ctx, LIMIT).await {
            Ok((moved, _)) if moved >= LIMIT => {
                ctx.link().succeeded();
                delay.reset();
                continue;
            }
            Ok((_, next_due_ms)) => {
                ctx.link().succeeded();
                delay.reset();
                match next_due_ms {
                    Some(ms) => Duration::from_millis(ms).min(ctx.cfg.promote_interval),
                    None => ctx.cfg.promote_interval,
                }
            }
            Err(e) if ctx.link().failed(&e) => continue,
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
    inv.arg(limit).arg(queue.keys().uniq_prefix());
    let (moved, wait): (usize, i64) = inv.invoke_async(conn).await?;
    Ok((moved, u64::try_from(wait).ok()))
}

async fn promote(ctx: &Ctx, limit: usize) -> Result<(usize, Option<u64>)> {
    let mut conn = ctx.broker.shared();
    promote_due_jobs(&mut conn, &ctx.queue, limit).await
}
