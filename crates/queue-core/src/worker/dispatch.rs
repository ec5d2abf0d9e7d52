//! Starting runs: one task per delivered entry, each holding one concurrency
//! permit, with the job timeout, panic catching and the trace context.
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use prost::Message;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{Instrument, info_span, warn};

use super::limits;
use super::runner::{Ctx, Delivery, Outcome, RunResult, Settle};
use super::{Handler, Job, JobError};
use crate::envelope::{self, Envelope};
use crate::fields;

pub(super) fn track(ctx: &Ctx, entries: &[Delivery]) {
    let now = Instant::now();
    let mut inflight = ctx.inflight.lock().expect("inflight lock");
    for d in entries {
        inflight.insert((d.lane, Arc::from(d.id.as_str())), now);
    }
}

pub(super) fn untrack(ctx: &Ctx, lane: usize, id: &Arc<str>) {
    // Also called while a task unwinds: a poisoned lock must not turn that into
    // an abort.
    ctx.inflight
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&(lane, id.clone()));
}

/// Starts one task per delivery, each holding one of `permits`, in the order
/// given (highest lane first). Entries must be tracked in the in-flight map
/// already. Entries beyond the permits are returned, still tracked (so their
/// claim is kept alive), to start when permits free up: a blocking read over
/// several lanes may answer up to COUNT entries per lane.
#[must_use = "entries beyond the permits must be held, not dropped"]
pub(super) fn dispatch<H: Handler>(
    ctx: &Arc<Ctx>,
    handler: &Arc<H>,
    entries: Vec<Delivery>,
    mut permits: OwnedSemaphorePermit,
) -> Vec<Delivery> {
    let mut entries = entries.into_iter();
    while let Some(d) = entries.next() {
        let permit = if permits.num_permits() > 1 {
            permits.split(1).expect("more than one permit is held")
        } else if permits.num_permits() == 1 {
            std::mem::replace(&mut permits, empty_permit(ctx))
        } else {
            let mut surplus = vec![d];
            surplus.extend(entries);
            return surplus;
        };
        let entry_id: Arc<str> = Arc::from(d.id);
        let decoded = match d.envelope {
            None => Err((
                format!("entry has no envelope field {:?}", fields::ENVELOPE),
                Vec::new(),
            )),
            Some(raw) => match Envelope::decode(raw.as_slice()) {
                Ok(env) => Ok(env),
                Err(e) => Err((format!("envelope does not decode: {e}"), raw)),
            },
        };
        match decoded {
            Ok(env) => {
                let run = run_job(
                    ctx.clone(),
                    handler.clone(),
                    d.lane,
                    entry_id,
                    env,
                    d.deliveries,
                    permit,
                );
                ctx.jobs.spawn(run);
            }
            Err((error, raw)) => {
                warn!(queue.name = ctx.queue.name(), entry.id = %entry_id, %error, "malformed entry, dead-lettering it");
                let _ = ctx.settle.send(Settle::Outcome(Outcome {
                    lane: d.lane,
                    entry_id,
                    result: RunResult::Malformed { raw, error },
                    wait_ms: None,
                }));
                drop(permit);
            }
        }
    }
    Vec::new()
}

/// A permit of zero slots, to leave in place of the last one handed out.
fn empty_permit(ctx: &Ctx) -> OwnedSemaphorePermit {
    ctx.permits
        .clone()
        .try_acquire_many_owned(0)
        .expect("the semaphore is never closed")
}

async fn run_job<H: Handler>(
    ctx: Arc<Ctx>,
    handler: Arc<H>,
    lane: usize,
    entry_id: Arc<str>,
    envelope: Envelope,
    deliveries: u64,
    permit: OwnedSemaphorePermit,
) {
    // Until the outcome is handed to the settling task, a task that dies (a
    // panic outside the handler's own poll, e.g. in its future's drop) or is
    // abandoned at the end of the grace period takes its entry out of the
    // in-flight map: no heartbeat keeps claiming what will never finish, and
    // another delivery takes it after the visibility timeout.
    let mut tracked = Tracked {
        ctx: ctx.clone(),
        lane,
        entry_id: Some(entry_id.clone()),
    };
    // Boxed, here and for the release: an unlimited queue's run future stays as
    // small as it was (every job's task is allocated at that size).
    if limits::limited(&ctx) && !Box::pin(limits::admit(&ctx, lane, &entry_id)).await {
        return; // stopping: never started, so nothing to settle
    }
    let started = Instant::now();
    let wait_ms = (envelope::now_ms() - envelope.available_at_ms).max(0);
    ctx.metrics.wait_seconds.record(wait_ms as f64 / 1000.0);
    let max_attempts = if envelope.max_attempts == 0 {
        ctx.cfg.max_attempts
    } else {
        envelope.max_attempts
    };
    let span = info_span!(
        "job",
        otel.name = %envelope.kind,
        queue.name = ctx.queue.name(),
        job.id = %envelope.id,
        job.kind = %envelope.kind,
        job.attempt = envelope.attempt,
    );
    crate::trace::continue_trace(&span, &envelope.headers);
    let envelope = Arc::new(envelope);
    let job = Job {
        envelope: envelope.clone(),
        entry_id: entry_id.clone(),
        deliveries,
        max_attempts,
    };
    // Boxed: the task future is moved on spawn, and handler futures can be large.
    let run = AssertUnwindSafe(Box::pin(handler.handle(job))).catch_unwind();
    let timed = tokio::time::timeout(ctx.cfg.job_timeout, run).instrument(span.clone());
    let result = tokio::select! {
        biased;
        _ = ctx.hard_stop.cancelled() => {
            // Left in the pending list: another worker reclaims it.
            return;
        }
        r = timed => r,
    };
    let duration = started.elapsed();
    ctx.metrics.run_seconds.record(duration.as_secs_f64());
    if ctx.cfg.global_concurrency.is_some() {
        Box::pin(limits::release(&ctx, lane, &entry_id)).await;
    }
    let result = match result {
        Ok(Ok(Ok(()))) => RunResult::Completed {
            envelope,
            duration_ms: duration.as_millis() as u64,
        },
        Ok(Ok(Err(error))) => RunResult::Failed {
            envelope,
            max_attempts,
            error,
        },
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            RunResult::Failed {
                envelope,
                max_attempts,
                error: JobError::retry(anyhow::anyhow!("handler panicked: {msg}")),
            }
        }
        Err(_) => {
            ctx.metrics.timed_out.increment(1);
            RunResult::Failed {
                envelope,
                max_attempts,
                error: JobError::retry(anyhow::anyhow!(
                    "timed out after {} ms",
                    ctx.cfg.job_timeout.as_millis()
                )),
            }
        }
    };
    // From here the settling task owns the entry (it untracks it once settled).
    tracked.entry_id = None;
    let _ = ctx.settle.send(Settle::Outcome(Outcome {
        lane,
        entry_id,
        result,
        wait_ms: Some(wait_ms as u64),
    }));
    drop(permit);
}

/// Takes an entry out of the in-flight map when dropped while still armed.
struct Tracked {
    ctx: Arc<Ctx>,
    lane: usize,
    entry_id: Option<Arc<str>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(id) = self.entry_id.take() {
            untrack(&self.ctx, self.lane, &id);
        }
    }
}
