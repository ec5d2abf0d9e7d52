//! The dead-letter hook: every job moved to the dead-letter stream, by any path,
//! is handed to [`Handler::on_dead_letter`], retried with backoff until it
//! succeeds, so that the domain row behind it is marked failed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::runner::{Ctx, ErrorDelay, sleep_or_cancel};
use super::{DeadLettered, Handler};

/// Runs the hook for each dead letter until `stop`; then gives what is still
/// queued one more try each, and says in the log what it could not deliver.
pub(super) async fn hook_loop<H: Handler>(
    ctx: Arc<Ctx>,
    handler: Arc<H>,
    mut letters: mpsc::UnboundedReceiver<DeadLettered>,
    stop: CancellationToken,
) {
    loop {
        let letter = tokio::select! {
            biased;
            letter = letters.recv() => match letter {
                Some(letter) => letter,
                None => return,
            },
            _ = stop.cancelled() => break,
        };
        let mut delay = ErrorDelay::new();
        while let Err(e) = run_hook(&ctx, &handler, letter.clone()).await {
            let wait = delay.next();
            warn!(queue.name = ctx.queue.name(), job.id = letter.job_id(), error = %e, retry_in_ms = wait.as_millis() as u64, "the dead-letter hook failed; retrying");
            if !sleep_or_cancel(wait, &stop).await {
                break;
            }
        }
    }
    // Stopping: one last try for each letter still queued.
    while let Ok(letter) = letters.try_recv() {
        if let Err(e) = run_hook(&ctx, &handler, letter.clone()).await {
            error!(queue.name = ctx.queue.name(), job.id = letter.job_id(), error = %e, "the dead-letter hook failed at shutdown; the job's row is left to the reconciler");
        }
    }
}

/// One call of the hook, bounded by the job timeout; a panic counts as an error.
async fn run_hook<H: Handler>(
    ctx: &Ctx,
    handler: &Arc<H>,
    letter: DeadLettered,
) -> anyhow::Result<()> {
    let call = AssertUnwindSafe(Box::pin(handler.on_dead_letter(letter))).catch_unwind();
    match tokio::time::timeout(ctx.cfg.job_timeout, call).await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(anyhow::anyhow!("the dead-letter hook panicked")),
        Err(_) => Err(anyhow::anyhow!(
            "the dead-letter hook timed out after {} ms",
            ctx.cfg.job_timeout.as_millis()
        )),
    }
}
