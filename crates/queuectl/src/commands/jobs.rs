//! `jobs`, `job`, `promote`, `delete-job`, `history`: a queue's jobs by state and
//! by id, the moves on one job (through `ops`, audited), the per-minute history.

use std::time::{Duration, SystemTime};

use queue_core::{JobDetail, JobState, JobSummary, MinuteStats};

use super::{Ctx, ERROR_COLUMN, op_error};
use crate::render::{self, Align, Table, count, one_line, short_duration};

pub(super) async fn list(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    state: JobState,
    limit: usize,
    after: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let page = ctx.admin.jobs(&queue, state, after, limit).await?;
    if json {
        return ctx.json(&page);
    }
    if page.jobs.is_empty() {
        let more = if after.is_some() { " after that" } else { "" };
        writeln!(ctx.out(), "no {state} jobs{more} in queue {name:?}")?;
        return Ok(());
    }
    write!(ctx.out(), "{}", jobs_table(state, &page.jobs).render())?;
    if let Some(next) = page.next {
        writeln!(
            ctx.out(),
            "more: queuectl jobs {name} --state {state} --after {next}"
        )?;
    }
    Ok(())
}

/// One row per job; the time and the last column say what matters in its state.
fn jobs_table(state: JobState, jobs: &[JobSummary]) -> Table {
    let (when, info) = match state {
        JobState::Waiting => ("ENQUEUED", "LAST ERROR"),
        JobState::Active => ("ENQUEUED", "CONSUMER"),
        JobState::Delayed => ("DUE", "LAST ERROR"),
        JobState::Failed => ("FAILED AT", "ERROR"),
        JobState::Completed => ("FINISHED", "ENTRY"),
    };
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("KIND", Align::Left),
        ("LANE", Align::Left),
        ("ATTEMPT", Align::Right),
        (when, Align::Left),
        (info, Align::Left),
    ]);
    for j in jobs {
        let at = match state {
            JobState::Waiting | JobState::Active => j.enqueued_at_ms,
            JobState::Delayed => j.due_at_ms,
            JobState::Failed | JobState::Completed => j.finished_at_ms,
        };
        let info = match state {
            JobState::Active => j.consumer.clone(),
            JobState::Completed => j.entry_id.clone(),
            _ => j.error.as_deref().map(|e| one_line(e, ERROR_COLUMN)),
        };
        table.row(vec![
            if j.id.is_empty() {
                // Undecodable: its entry id is the handle.
                j.entry_id.clone().unwrap_or_else(|| "-".to_owned())
            } else {
                j.id.clone()
            },
            or_dash(&j.kind),
            or_dash(&j.lane),
            j.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            at.map_or_else(|| "-".to_owned(), |ms| render::timestamp(ms as i64)),
            info.unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-" } else { s }.to_owned()
}

pub(super) async fn show(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    id: &str,
    json: bool,
) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let Some(job) = ctx.admin.find_job(&queue, id).await? else {
        return Err(ops::Error::NoSuchJob {
            queue: name.to_owned(),
            id: id.to_owned(),
        }
        .into());
    };
    if json {
        return ctx.json(&job);
    }
    write!(ctx.out(), "{}", describe(name, &job, SystemTime::now()))?;
    Ok(())
}

/// Every known field of a job, one per line, the headers and the error last.
fn describe(queue: &str, d: &JobDetail, now: SystemTime) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<13} {v}\n"));
    let time = |ms: Option<u64>| {
        ms.map_or_else(
            || "-".to_owned(),
            |ms| render::timestamp_with_age(ms as i64, now),
        )
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    field("job id", or_dash(&s.id));
    field("queue", queue.to_owned());
    field("state", s.state.to_string());
    field("kind", or_dash(&s.kind));
    field("lane", or_dash(&s.lane));
    field("entry", opt(s.entry_id.clone()));
    field("attempt", opt(s.attempts.map(|a| a.to_string())));
    field(
        "max attempts",
        d.max_attempts
            .map_or_else(|| "worker default".to_owned(), |a| a.to_string()),
    );
    field("enqueued at", time(s.enqueued_at_ms));
    field("ready at", time(d.available_at_ms));
    if s.state == JobState::Delayed {
        field("due at", time(s.due_at_ms));
    }
    if let Some(consumer) = &s.consumer {
        field("consumer", consumer.clone());
        field(
            "idle",
            opt(d
                .idle_ms
                .map(|ms| short_duration(Duration::from_millis(ms)))),
        );
        field("deliveries", opt(d.deliveries.map(|n| n.to_string())));
    }
    if matches!(s.state, JobState::Failed | JobState::Completed) {
        field("finished at", time(s.finished_at_ms));
    }
    if let Some(ms) = d.duration_ms {
        field("took", short_duration(Duration::from_millis(ms)));
    }
    if let Some(origin) = &d.origin {
        field("origin entry", origin.clone());
    }
    field("unique key", opt(d.unique_key.clone()));
    field("trace id", opt(d.trace_id.clone()));
    field("payload", count(d.payload_bytes as u64, "byte", "bytes"));
    if d.undecodable {
        field("envelope", "does not decode".to_owned());
    }
    if d.headers.is_empty() {
        field("headers", "(none)".to_owned());
    } else {
        out.push_str("headers\n");
        for (k, v) in &d.headers {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if let Some(error) = &d.last_error {
        out.push_str(if s.state == JobState::Failed {
            "error\n"
        } else {
            "last error\n"
        });
        for line in error.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

pub(super) async fn promote(ctx: &mut Ctx<'_, '_>, name: &str, id: &str) -> anyhow::Result<()> {
    ctx.actions().promote(name, id).await.map_err(op_error)?;
    writeln!(
        ctx.out(),
        "promoted job {id} of queue {name:?}: it runs as soon as a worker is free"
    )?;
    Ok(())
}

pub(super) async fn delete(ctx: &mut Ctx<'_, '_>, name: &str, id: &str) -> anyhow::Result<()> {
    ctx.actions().delete_job(name, id).await.map_err(op_error)?;
    writeln!(ctx.out(), "deleted job {id} of queue {name:?}")?;
    Ok(())
}

pub(super) async fn history(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    minutes: u32,
    json: bool,
) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let history = ctx.admin.history(&queue, minutes).await?;
    if json {
        return ctx.json(&history);
    }
    write!(ctx.out(), "{}", history_table(&history).render())?;
    Ok(())
}

/// One row per minute, oldest first, then the totals.
fn history_table(history: &[MinuteStats]) -> Table {
    let mut table = Table::new(&[
        ("MINUTE", Align::Left),
        ("COMPLETED", Align::Right),
        ("FAILED", Align::Right),
        ("DEAD", Align::Right),
        ("MEAN WAIT", Align::Right),
    ]);
    let mean = |m: &MinuteStats| {
        m.mean_wait_ms().map_or_else(
            || "-".to_owned(),
            |ms| short_duration(Duration::from_millis(ms)),
        )
    };
    for m in history {
        table.row(vec![
            render::timestamp((m.minute * 60_000) as i64),
            m.completed.to_string(),
            m.failed.to_string(),
            m.dead_lettered.to_string(),
            mean(m),
        ]);
    }
    let total = MinuteStats::sum(history);
    table.row(vec![
        "total".to_owned(),
        total.completed.to_string(),
        total.failed.to_string(),
        total.dead_lettered.to_string(),
        mean(&total),
    ]);
    table
}
