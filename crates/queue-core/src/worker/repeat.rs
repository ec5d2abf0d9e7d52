//! Enqueueing the worker's repeating jobs, once per period across all replicas
//! (see [`crate::repeat`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::runner::{Ctx, ErrorDelay, sleep_or_cancel};
use crate::envelope;
use crate::repeat::RepeatingJob;
use crate::{Enqueued, Producer, Result};

/// Longest sleep between two looks at the clock, so a clock that jumps (or a
/// period that a failed enqueue left behind) is noticed within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub(super) async fn repeat_loop(
    ctx: Arc<Ctx>,
    jobs: Vec<RepeatingJob>,
    shutdown: CancellationToken,
) {
    let producer = Producer::new(ctx.broker.clone());
    // Period start last enqueued (or found enqueued) by this process, per job.
    let mut done: Vec<Option<i64>> = vec![None; jobs.len()];
    let mut delay = ErrorDelay::new();
    loop {
        if ctx.link().is_down() && !ctx.link().wait_up(&shutdown).await {
            return;
        }
        let now = envelope::now_ms();
        let mut failed = false;
        for (job, done) in jobs.iter().zip(done.iter_mut()) {
            let start = job.every().period_start(now);
            if *done == Some(start) {
                continue;
            }
            match enqueue_period(&ctx, &producer, job, start).await {
                Ok(()) => *done = Some(start),
                Err(e) if ctx.link().failed(&e) => {
                    failed = true;
                    break;
                }
                Err(e) => {
                    failed = true;
                    warn!(queue.name = ctx.queue.name(), repeat.name = job.name(), error = %e, "enqueueing a repeating job failed");
                }
            }
        }
        let sleep = if ctx.link().is_down() {
            continue;
        } else if failed {
            delay.next()
        } else {
            delay.reset();
            let now = envelope::now_ms();
            let next = jobs
                .iter()
                .map(|j| j.every().next_start(now))
                .min()
                .unwrap_or(now);
            Duration::from_millis((next - now).max(1) as u64)
        };
        if !sleep_or_cancel(sleep.min(MAX_SLEEP), &shutdown).await {
            return;
        }
    }
}

async fn enqueue_period(
    ctx: &Ctx,
    producer: &Producer,
    job: &RepeatingJob,
    start: i64,
) -> Result<()> {
    let enqueued = producer.enqueue(&ctx.queue, job.job_for(start)).await?;
    match &enqueued {
        Enqueued::Duplicate { id } => {
            debug!(queue.name = ctx.queue.name(), repeat.name = job.name(), job.id = %id, "repeating job of this period already enqueued");
        }
        _ => {
            info!(queue.name = ctx.queue.name(), repeat.name = job.name(), job.id = enqueued.id(), repeat.every = %job.every(), "repeating job enqueued");
        }
    }
    redis::cmd("HSET")
        .arg(ctx.queue.keys().repeat())
        .arg(job.name())
        .arg(job.record(start, enqueued.id()))
        .query_async::<()>(&mut ctx.broker.shared())
        .await?;
    Ok(())
}
