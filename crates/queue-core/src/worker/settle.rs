//! Settling outcomes: completions acknowledged in batches, retries scheduled,
//! dead letters recorded, each through one atomic script.
use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::DeadLettered;
use super::dispatch::untrack;
use super::read::SETTLING_YIELDS;
use super::runner::{Ctx, ErrorDelay, Outcome, RunResult, Settle};
use crate::envelope::{self, Envelope};
use crate::producer::delayed_member;
use crate::scripts::Completion;
use crate::{Result, scripts};

pub(super) async fn settle_loop(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Settle>) {
    let max = ctx.cfg.ack_batch.get();
    let mut batch = Vec::with_capacity(max);
    while let Some(msg) = rx.recv().await {
        let mut flush = None;
        match msg {
            Settle::Outcome(o) => batch.push(o),
            Settle::Flush(done) => flush = Some(done),
        }
        let mut idle_yields = 0;
        loop {
            let before = batch.len();
            while flush.is_none() && batch.len() < max {
                match rx.try_recv() {
                    Ok(Settle::Outcome(o)) => batch.push(o),
                    Ok(Settle::Flush(done)) => flush = Some(done),
                    Err(_) => break,
                }
            }
            if flush.is_some() || batch.len() >= max {
                break;
            }
            if batch.len() > before {
                idle_yields = 0;
            } else {
                idle_yields += 1;
                if idle_yields > SETTLING_YIELDS {
                    break;
                }
            }
            // Woken by the first outcome, this task would run next and settle it
            // alone; the runs that are finishing add theirs to the batch first
            // (it yields until outcomes stop coming), and Redis's cost is per batch.
            tokio::task::yield_now().await;
        }
        settle(&ctx, &mut batch).await;
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

async fn settle(ctx: &Ctx, batch: &mut Vec<Outcome>) {
    let lanes = ctx.queue.streams().len();
    let mut completed: Vec<Vec<&Outcome>> = vec![Vec::new(); lanes];
    let mut others = Vec::new();
    for o in batch.iter() {
        match &o.result {
            RunResult::Completed { .. } => completed[o.lane.min(lanes - 1)].push(o),
            _ => others.push(o),
        }
    }
    for (lane, outcomes) in completed.iter().enumerate() {
        if outcomes.is_empty() {
            continue;
        }
        match with_retries(ctx, || complete(ctx, lane, outcomes)).await {
            Ok(n) => ctx.metrics.completed.increment(n),
            Err(e) => error!(
                queue.name = ctx.queue.name(),
                error = %e,
                jobs = outcomes.len(),
                "acknowledging completed jobs failed; they stay pending and will run again"
            ),
        }
    }
    for o in others {
        if let Err(e) = with_retries(ctx, || settle_failure(ctx, o)).await {
            error!(
                queue.name = ctx.queue.name(),
                entry.id = %o.entry_id,
                error = %e,
                "recording a failed run failed; the entry stays pending and will run again"
            );
        }
    }
    for o in batch.iter() {
        untrack(ctx, o.lane, &o.entry_id);
    }
    batch.clear();
}

/// Runs a settling step up to 3 times: a dropped connection must not cost a
/// rerun. While Redis is down it waits for it (the entry stays tracked and
/// heart-beaten) instead, unless the worker is stopping.
async fn with_retries<T, F, Fut>(ctx: &Ctx, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = ErrorDelay::new();
    let mut tries = 0;
    loop {
        match step().await {
            Ok(v) => {
                ctx.link().succeeded();
                return Ok(v);
            }
            Err(e) => {
                if ctx.link().failed(&e) && ctx.link().wait_up(&ctx.stopping).await {
                    continue;
                }
                tries += 1;
                if tries == 3 {
                    return Err(e);
                }
                tokio::time::sleep(delay.next()).await;
            }
        }
    }
}

async fn complete(ctx: &Ctx, lane: usize, outcomes: &[&Outcome]) -> Result<u64> {
    // The retention counts completions (complete.lua trims whole records).
    let mut completed: Vec<Completion<'_>> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            RunResult::Completed {
                envelope,
                duration_ms,
            } => Some(Completion {
                entry_id: &o.entry_id,
                job_id: &envelope.id,
                kind: &envelope.kind,
                attempt: envelope.attempt,
                duration_ms: *duration_ms,
                unique_key: &envelope.unique_key,
            }),
            _ => None,
        })
        .collect();
    let waits: Vec<u64> = outcomes.iter().filter_map(|o| o.wait_ms).collect();
    let inv = scripts::complete_invocation(
        ctx.queue.keys(),
        &ctx.queue.streams()[lane],
        &ctx.cfg.group,
        ctx.cfg.done_retention,
        (waits.iter().sum(), waits.len()),
        &mut completed,
    );
    Ok(inv.invoke_async(&mut ctx.broker.shared()).await?)
}

async fn settle_failure(ctx: &Ctx, o: &Outcome) -> Result<()> {
    let mut conn = ctx.broker.shared();
    let keys = ctx.queue.keys();
    let stream = &ctx.queue.streams()[o.lane.min(ctx.queue.streams().len() - 1)];
    match &o.result {
        RunResult::Completed { .. } => Ok(()),
        RunResult::Malformed { raw, error } => {
            let letter = DeadLetterRecord {
                envelope: raw,
                error,
                attempts: 0,
                job_id: "",
                kind: "",
                unique_key: "",
                job: None,
            };
            dead_letter(ctx, &mut conn, stream, o, &letter).await
        }
        RunResult::Failed {
            envelope,
            max_attempts,
            error,
        } => {
            let message = error.to_string();
            let exhausted = envelope.attempt >= *max_attempts;
            if error.is_permanent() || exhausted {
                let why = if error.is_permanent() {
                    "permanent error"
                } else {
                    "attempts exhausted"
                };
                warn!(
                    queue.name = ctx.queue.name(),
                    job.id = %envelope.id,
                    job.kind = %envelope.kind,
                    job.attempt = envelope.attempt,
                    error = %message,
                    "job failed ({why}), dead-lettering it"
                );
                let raw = envelope.encode_to_vec();
                let letter = DeadLetterRecord {
                    envelope: &raw,
                    error: &message,
                    attempts: envelope.attempt,
                    job_id: &envelope.id,
                    kind: &envelope.kind,
                    unique_key: &envelope.unique_key,
                    job: Some(envelope),
                };
                dead_letter(ctx, &mut conn, stream, o, &letter).await
            } else {
                let delay = ctx.cfg.backoff.delay(envelope.attempt);
                let mut next = Envelope::clone(envelope);
                next.attempt += 1;
                next.last_error = message.clone();
                next.available_at_ms = envelope::now_ms() + delay.as_millis() as i64;
                let member = delayed_member(o.lane, &next.encode_to_vec());
                let mut inv = scripts::RETRY.prepare_invoke();
                inv.key(stream).key(keys.delayed()).key(keys.stats());
                if !envelope.unique_key.is_empty() {
                    inv.key(keys.uniq(&envelope.unique_key));
                }
                inv.arg(&ctx.cfg.group)
                    .arg(&ctx.consumer)
                    .arg(&*o.entry_id)
                    .arg(delay.as_millis() as u64)
                    .arg(member)
                    .arg(&envelope.id)
                    .arg(keys.history_prefix())
                    .arg(o.wait_ms.unwrap_or(0));
                let scheduled: i64 = inv.invoke_async(&mut conn).await?;
                if scheduled == 1 {
                    ctx.metrics.retried.increment(1);
                    info!(
                        queue.name = ctx.queue.name(),
                        job.id = %envelope.id,
                        job.kind = %envelope.kind,
                        job.attempt = envelope.attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %message,
                        "job failed, retrying"
                    );
                } else {
                    debug!(job.id = %envelope.id, "failed run not recorded: the entry was reclaimed by another consumer");
                }
                Ok(())
            }
        }
    }
}

/// What a dead letter records about its job (see [`fields::dead_letter`]).
struct DeadLetterRecord<'a> {
    /// The envelope as it was read (for an undecodable entry, its raw bytes).
    envelope: &'a [u8],
    error: &'a str,
    /// Attempts made; 0 when the envelope could not be decoded.
    attempts: u32,
    /// Empty when the envelope could not be decoded.
    job_id: &'a str,
    kind: &'a str,
    /// The unique-until-settled key the job holds (released with the move), or "".
    unique_key: &'a str,
    /// The decoded job, for the dead-letter hook.
    job: Option<&'a Arc<Envelope>>,
}

/// Moves the outcome's entry to the dead-letter stream (if this consumer still owns it).
async fn dead_letter(
    ctx: &Ctx,
    conn: &mut crate::broker::Connection,
    stream: &str,
    o: &Outcome,
    letter: &DeadLetterRecord<'_>,
) -> Result<()> {
    let keys = ctx.queue.keys();
    let mut inv = scripts::DEAD_LETTER.prepare_invoke();
    inv.key(stream).key(keys.dlq()).key(keys.stats());
    if !letter.unique_key.is_empty() {
        inv.key(keys.uniq(letter.unique_key));
    }
    inv.arg(&ctx.cfg.group)
        .arg(&ctx.consumer)
        .arg(&*o.entry_id)
        .arg(ctx.cfg.dlq_retention)
        .arg(letter.envelope)
        .arg(letter.error)
        .arg(letter.attempts)
        .arg(ctx.queue.lane_name(o.lane))
        .arg(letter.job_id)
        .arg(letter.kind)
        .arg(keys.history_prefix())
        .arg(o.wait_ms.map_or(-1, |ms| ms as i64));
    let moved: i64 = inv.invoke_async(conn).await?;
    if moved == 1 {
        ctx.metrics.dead_lettered.increment(1);
        let _ = ctx.dead_letters.send(DeadLettered {
            envelope: letter.job.cloned(),
            error: letter.error.to_owned(),
        });
    }
    Ok(())
}
