//! One function per subcommand, each a thin layer over [`queue_core::Admin`].

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use queue_core::admin::{ConsumerInfo, DeadLetter, HEIR_CONSUMER};
use queue_core::{Admin, Broker, CancellationToken, Queue, QueueStats};
use serde::Serialize;

use crate::exit;
use crate::render::{self, Align, Table, count, one_line, short_duration};
use crate::{Command, Console};

mod jobs;

/// Widest error shown in the dead-letter list; `show` prints the whole error.
const ERROR_COLUMN: usize = 60;
/// Moves the cursor home and clears the screen (ANSI), between `monitor` refreshes.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// What every command gets.
pub(crate) struct Ctx<'a, 'c> {
    pub broker: &'a Broker,
    pub admin: &'a Admin,
    pub console: &'a mut Console<'c>,
    pub shutdown: &'a CancellationToken,
    /// Records the queue actions (when queuectl has a database).
    pub auditor: &'a ops::Auditor,
}

pub(crate) async fn dispatch(mut ctx: Ctx<'_, '_>, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Stats { queues, json } => stats(&mut ctx, &queues, json).await,
        Command::Retention { queues, json } => retention(&mut ctx, &queues, json).await,
        Command::Monitor {
            queues,
            interval,
            iterations,
        } => monitor(&mut ctx, &queues, interval, iterations.map(|n| n.get())).await,
        Command::Failed {
            queue,
            id: Some(id),
            json,
            ..
        }
        | Command::Show { queue, id, json } => show(&mut ctx, &queue, &id, json).await,
        Command::Failed {
            queue,
            id: None,
            limit,
            before,
            json,
        } => failed(&mut ctx, &queue, limit.into(), before.as_deref(), json).await,
        Command::Retry { queue, target } => retry(&mut ctx, &queue, &target).await,
        Command::Delete { queue, id } => delete(&mut ctx, &queue, &id).await,
        Command::Flush { queue } => flush(&mut ctx, &queue).await,
        Command::Pause { queue } => pause(&mut ctx, &queue, true).await,
        Command::Resume { queue } => pause(&mut ctx, &queue, false).await,
        Command::Purge { queue, yes } => purge(&mut ctx, &queue, yes).await,
        Command::Consumers {
            queue,
            remove_idle,
            json,
        } => consumers(&mut ctx, &queue, remove_idle, json).await,
        Command::Jobs {
            queue,
            state,
            limit,
            after,
            json,
        } => {
            jobs::list(
                &mut ctx,
                &queue,
                state,
                limit.into(),
                after.as_deref(),
                json,
            )
            .await
        }
        Command::Job { queue, id, json } => jobs::show(&mut ctx, &queue, &id, json).await,
        Command::Promote { queue, id } => jobs::promote(&mut ctx, &queue, &id).await,
        Command::DeleteJob { queue, id } => jobs::delete(&mut ctx, &queue, &id).await,
        Command::History {
            queue,
            minutes,
            json,
        } => jobs::history(&mut ctx, &queue, minutes, json).await,
        Command::Keys { .. } | Command::Audit { .. } => {
            unreachable!("run() handles the database commands")
        }
    }?;
    ctx.console.out.flush()?;
    Ok(())
}

impl Ctx<'_, '_> {
    /// The queue actions, recorded by the auditor.
    fn actions(&self) -> ops::QueueActions<'_> {
        ops::QueueActions::new(self.admin, self.auditor)
    }

    fn out(&mut self) -> &mut dyn Write {
        &mut *self.console.out
    }

    fn json(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        serde_json::to_writer_pretty(&mut *self.console.out, value)?;
        writeln!(self.out())?;
        Ok(())
    }

    async fn open(&self, name: &str) -> anyhow::Result<Queue> {
        Ok(self.admin.open(name).await?)
    }

    /// Stats of the named queues, or of every registered queue when none is named.
    async fn collect_stats(&self, names: &[String]) -> anyhow::Result<Vec<QueueStats>> {
        if names.is_empty() {
            return Ok(self.admin.stats_all().await?);
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let queue = self.open(name).await?;
            out.push(self.admin.stats(&queue).await?);
        }
        Ok(out)
    }

    /// What `stats` and `retention` print when there is no queue to show.
    fn say_no_queues(&mut self) -> anyhow::Result<()> {
        let line = self.no_queues_line();
        writeln!(self.out(), "{line}")?;
        Ok(())
    }

    fn no_queues_line(&self) -> String {
        format!(
            "no queues under prefix {:?} (no producer or worker has used one yet)",
            self.broker.prefix()
        )
    }
}

async fn stats(ctx: &mut Ctx<'_, '_>, names: &[String], json: bool) -> anyhow::Result<()> {
    let stats = ctx.collect_stats(names).await?;
    if json {
        return ctx.json(&stats);
    }
    if stats.is_empty() {
        return ctx.say_no_queues();
    }
    write!(ctx.out(), "{}", stats_table(&stats, None).render())?;
    if let Some(repeating) = repeating_table(&stats) {
        write!(ctx.out(), "\nREPEATING\n{}", repeating.render())?;
    }
    Ok(())
}

/// What each queue keeps, as its workers wrote it at start; `-` is no limit,
/// `unknown` a queue no worker wrote one for.
async fn retention(ctx: &mut Ctx<'_, '_>, names: &[String], json: bool) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Kept {
        name: String,
        retention: Option<queue_core::Retention>,
    }
    let stats = ctx.collect_stats(names).await?;
    if json {
        let kept: Vec<Kept> = stats
            .into_iter()
            .map(|s| Kept {
                name: s.name,
                retention: s.retention,
            })
            .collect();
        return ctx.json(&kept);
    }
    if stats.is_empty() {
        return ctx.say_no_queues();
    }
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("COMPLETED", Align::Right),
        ("COMPLETED MAX AGE", Align::Right),
        ("DEAD LETTERS", Align::Right),
        ("DEAD LETTERS MAX AGE", Align::Right),
    ]);
    let age = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), short_duration);
    for s in &stats {
        let row = match s.retention {
            Some(r) => vec![
                s.name.clone(),
                r.completed.to_string(),
                age(r.completed_max_age),
                if r.dead_letters == 0 {
                    "-".to_owned()
                } else {
                    r.dead_letters.to_string()
                },
                age(r.dead_letters_max_age),
            ],
            None => {
                let mut row = vec![s.name.clone()];
                row.resize(5, "unknown".to_owned());
                row
            }
        };
        table.row(row);
    }
    write!(ctx.out(), "{}", table.render())?;
    Ok(())
}

/// The repeating jobs the queues' workers declared, one row each, with the period
/// last enqueued; None when no queue has any (most deployments, most of the time).
fn repeating_table(stats: &[QueueStats]) -> Option<Table> {
    if stats.iter().all(|s| s.repeating.is_empty()) {
        return None;
    }
    let mut table = Table::new(&[
        ("QUEUE", Align::Left),
        ("NAME", Align::Left),
        ("SCHEDULE", Align::Left),
        ("LAST PERIOD", Align::Left),
        ("LAST JOB", Align::Left),
    ]);
    for s in stats {
        for r in &s.repeating {
            table.row(vec![
                s.name.clone(),
                r.name.clone(),
                r.schedule.clone(),
                render::timestamp(r.last_period_ms),
                if r.last_job_id.is_empty() {
                    "-".to_owned()
                } else {
                    r.last_job_id.clone()
                },
            ]);
        }
    }
    Some(table)
}

/// The stats table; `rates` adds a completed-per-second column (None = not known yet).
fn stats_table(stats: &[QueueStats], rates: Option<&[Option<f64>]>) -> Table {
    let mut columns = vec![
        ("QUEUE", Align::Left),
        ("WAITING", Align::Right),
        ("ACTIVE", Align::Right),
        ("DELAYED", Align::Right),
        ("FAILED", Align::Right),
        ("COMPLETED", Align::Right),
    ];
    if rates.is_some() {
        columns.push(("COMPLETED/S", Align::Right));
    }
    columns.extend([
        ("RETRIED", Align::Right),
        ("RECLAIMED", Align::Right),
        ("LAG", Align::Right),
        ("OLDEST", Align::Right),
        ("PAUSED", Align::Left),
        ("CONSUMERS", Align::Right),
    ]);
    let mut table = Table::new(&columns);
    for (i, s) in stats.iter().enumerate() {
        let mut row = vec![
            s.name.clone(),
            s.waiting.to_string(),
            s.active.to_string(),
            s.delayed.to_string(),
            s.failed.to_string(),
            s.completed.to_string(),
        ];
        if let Some(rates) = rates {
            row.push(match rates.get(i).copied().flatten() {
                Some(r) => format!("{r:.1}"),
                None => "-".to_owned(),
            });
        }
        row.extend([
            s.retried.to_string(),
            s.reclaimed.to_string(),
            s.lag.map_or_else(|| "?".to_owned(), |l| l.to_string()),
            s.oldest_waiting_age_ms.map_or_else(
                || "-".to_owned(),
                |ms| short_duration(Duration::from_millis(ms)),
            ),
            if s.paused { "yes" } else { "no" }.to_owned(),
            s.consumers.to_string(),
        ]);
        table.row(row);
    }
    table
}

async fn monitor(
    ctx: &mut Ctx<'_, '_>,
    names: &[String],
    interval: Duration,
    iterations: Option<u64>,
) -> anyhow::Result<()> {
    // Completed counters of the previous refresh, for the rate column.
    let mut previous: Option<(Instant, HashMap<String, u64>)> = None;
    let mut refreshes = 0_u64;
    loop {
        let result = ctx.collect_stats(names).await;
        let now = Instant::now();
        let body = match result {
            Ok(stats) if stats.is_empty() => format!("{}\n", ctx.no_queues_line()),
            Ok(stats) => {
                let rates: Vec<Option<f64>> = stats
                    .iter()
                    .map(|s| {
                        let (at, counts) = previous.as_ref()?;
                        let before = counts.get(&s.name)?;
                        let secs = now.duration_since(*at).as_secs_f64();
                        (secs > 0.0).then(|| s.completed.saturating_sub(*before) as f64 / secs)
                    })
                    .collect();
                previous = Some((
                    now,
                    stats
                        .iter()
                        .map(|s| (s.name.clone(), s.completed))
                        .collect(),
                ));
                stats_table(&stats, Some(&rates)).render()
            }
            // The first refresh fails like any command; later ones report and keep watching.
            Err(e) if refreshes == 0 => return Err(e),
            Err(e) => {
                previous = None;
                format!("error: {}\n", exit::message(&e, &[]))
            }
        };
        let header = format!(
            "queuectl monitor  {}  prefix {}  every {}  {}{}",
            ctx.broker.display_url(),
            ctx.broker.prefix(),
            humantime::format_duration(interval),
            humantime::format_rfc3339_seconds(SystemTime::now()),
            if ctx.console.ansi {
                "  (Ctrl-C to quit)"
            } else {
                ""
            },
        );
        let ansi = ctx.console.ansi;
        let out = ctx.out();
        if ansi {
            write!(out, "{CLEAR_SCREEN}")?;
        } else if refreshes > 0 {
            writeln!(out)?;
        }
        write!(out, "{header}\n\n{body}")?;
        out.flush()?;
        refreshes += 1;
        if Some(refreshes) == iterations {
            return Ok(());
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn failed(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    limit: usize,
    before: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let page = ctx.admin.dead_letters(&queue, before, limit).await?;
    if json {
        return ctx.json(&page);
    }
    if page.items.is_empty() {
        let more = if before.is_some() {
            " older than that"
        } else {
            ""
        };
        writeln!(ctx.out(), "no dead letters{more} in queue {name:?}")?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("JOB", Align::Left),
        ("KIND", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("FAILED AT", Align::Left),
        ("ERROR", Align::Left),
    ]);
    for d in &page.items {
        table.row(vec![
            d.id.clone(),
            d.job_id.clone(),
            d.kind.clone(),
            d.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            render::timestamp(d.failed_at_ms),
            one_line(&d.error, ERROR_COLUMN),
        ]);
    }
    write!(ctx.out(), "{}", table.render())?;
    if let Some(next) = page.next {
        writeln!(ctx.out(), "older: queuectl failed {name} --before {next}")?;
    }
    Ok(())
}

async fn show(ctx: &mut Ctx<'_, '_>, name: &str, id: &str, json: bool) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let dead = ctx.admin.dead_letter(&queue, id).await?;
    if json {
        return ctx.json(&dead);
    }
    write!(ctx.out(), "{}", describe(name, &dead, SystemTime::now()))?;
    Ok(())
}

/// Every field of a dead letter, one per line, the full error last.
fn describe(queue: &str, d: &DeadLetter, now: SystemTime) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &str| out.push_str(&format!("{k:<13} {v}\n"));
    field("dead letter", &d.id);
    field("queue", queue);
    field("job id", &d.job_id);
    field("kind", &d.kind);
    field("lane", if d.lane.is_empty() { "normal" } else { &d.lane });
    field(
        "attempts",
        &d.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string()),
    );
    field(
        "failed at",
        &render::timestamp_with_age(d.failed_at_ms, now),
    );
    field(
        "enqueued at",
        &d.enqueued_at_ms
            .map_or_else(|| "-".to_owned(), |ms| render::timestamp_with_age(ms, now)),
    );
    field(
        "origin entry",
        if d.origin.is_empty() { "-" } else { &d.origin },
    );
    field("payload", &count(d.payload_bytes as u64, "byte", "bytes"));
    if d.envelope.is_none() {
        field("envelope", "does not decode (cannot be retried)");
    }
    let mut headers: Vec<_> = d.headers.iter().collect();
    headers.sort();
    if headers.is_empty() {
        field("headers", "(none)");
    } else {
        out.push_str("headers\n");
        for (k, v) in headers {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    out.push_str("error\n");
    for line in d.error.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// An action's error with its cause in the chain (`exit::code` looks for
/// queue-core's and the audit log's errors there).
pub(crate) fn op_error(e: ops::Error) -> anyhow::Error {
    match e {
        ops::Error::Queue(e) => e.into(),
        ops::Error::Audit(e) => e.into(),
        other => other.into(),
    }
}

async fn retry(ctx: &mut Ctx<'_, '_>, name: &str, target: &str) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    if target == "all" {
        let retried = ctx
            .actions()
            .retry_all_failed(name)
            .await
            .map_err(op_error)?;
        let line = format!(
            "re-enqueued {} of queue {name:?}",
            count(retried, "dead letter", "dead letters")
        );
        writeln!(ctx.out(), "{line}")?;
        let left = ctx.admin.stats(&queue).await?.failed;
        if left > 0 {
            let line = format!(
                "{} left in the dead-letter stream (undecodable, or new since)",
                count(left, "dead letter", "dead letters")
            );
            writeln!(ctx.out(), "{line}")?;
        }
        return Ok(());
    }
    let dead = ctx.admin.dead_letter(&queue, target).await?;
    let entry = ctx
        .actions()
        .retry_failed(name, &dead.id)
        .await
        .map_err(op_error)?;
    writeln!(
        ctx.out(),
        "re-enqueued dead letter {} (job {}, {}) of queue {name:?} as entry {entry}",
        dead.id,
        dead.job_id,
        dead.kind
    )?;
    Ok(())
}

async fn delete(ctx: &mut Ctx<'_, '_>, name: &str, id: &str) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let dead = ctx.admin.dead_letter(&queue, id).await?;
    ctx.actions()
        .delete_failed(name, &dead.id)
        .await
        .map_err(op_error)?;
    writeln!(
        ctx.out(),
        "deleted dead letter {} (job {}, {}) of queue {name:?}",
        dead.id,
        dead.job_id,
        dead.kind
    )?;
    Ok(())
}

async fn flush(ctx: &mut Ctx<'_, '_>, name: &str) -> anyhow::Result<()> {
    let n = ctx.actions().flush_failed(name).await.map_err(op_error)?;
    let line = format!(
        "deleted {} of queue {name:?}",
        count(n, "dead letter", "dead letters")
    );
    writeln!(ctx.out(), "{line}")?;
    Ok(())
}

async fn pause(ctx: &mut Ctx<'_, '_>, name: &str, paused: bool) -> anyhow::Result<()> {
    if paused {
        ctx.actions().pause(name).await.map_err(op_error)?;
        writeln!(
            ctx.out(),
            "paused queue {name:?}: workers start no new jobs (running ones finish)"
        )?;
    } else {
        ctx.actions().resume(name).await.map_err(op_error)?;
        writeln!(ctx.out(), "resumed queue {name:?}")?;
    }
    Ok(())
}

async fn purge(ctx: &mut Ctx<'_, '_>, name: &str, yes: bool) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    if !yes {
        let s = ctx.admin.stats(&queue).await?;
        return Err(exit::Usage(format!(
            "refusing to purge queue {name:?} without --yes: it would delete {} and {} \
             (running jobs and dead letters are kept)",
            count(s.waiting, "waiting job", "waiting jobs"),
            count(s.delayed, "delayed job", "delayed jobs"),
        ))
        .into());
    }
    let report = ctx.actions().purge(name).await.map_err(op_error)?;
    writeln!(
        ctx.out(),
        "purged queue {name:?}: deleted {} and {}",
        count(report.waiting, "waiting job", "waiting jobs"),
        count(report.delayed, "delayed job", "delayed jobs"),
    )?;
    Ok(())
}

async fn consumers(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    remove_idle: Option<Duration>,
    json: bool,
) -> anyhow::Result<()> {
    let queue = ctx.open(name).await?;
    let Some(min_idle) = remove_idle else {
        let list = ctx.admin.consumers(&queue).await?;
        if json {
            return ctx.json(&list);
        }
        write!(ctx.out(), "{}", consumers_text(name, &list))?;
        return Ok(());
    };
    let removed = ctx
        .actions()
        .remove_idle_consumers(name, min_idle)
        .await
        .map_err(op_error)
        .context("removing idle consumers")?;
    if json {
        return ctx.json(&removed);
    }
    let idle = humantime::format_duration(min_idle);
    if removed.is_empty() {
        writeln!(
            ctx.out(),
            "no consumer of queue {name:?} has been idle for {idle} or longer"
        )?;
        return Ok(());
    }
    for c in &removed {
        writeln!(
            ctx.out(),
            "removed consumer {} (lane {}): handed {} to {HEIR_CONSUMER}",
            c.name,
            c.lane,
            count(c.moved, "pending entry", "pending entries"),
        )?;
    }
    let moved: u64 = removed.iter().map(|c| c.moved).sum();
    writeln!(
        ctx.out(),
        "removed {} idle for {idle} or longer; {} handed over for live workers to reclaim",
        count(removed.len() as u64, "consumer", "consumers"),
        count(moved, "pending entry", "pending entries"),
    )?;
    Ok(())
}

fn consumers_text(name: &str, list: &[ConsumerInfo]) -> String {
    if list.is_empty() {
        return format!("no consumers of queue {name:?}\n");
    }
    let mut table = Table::new(&[
        ("CONSUMER", Align::Left),
        ("LANE", Align::Left),
        ("PENDING", Align::Right),
        ("IDLE", Align::Right),
    ]);
    for c in list {
        table.row(vec![
            c.name.clone(),
            c.lane.clone(),
            c.pending.to_string(),
            short_duration(Duration::from_millis(c.idle_ms)),
        ]);
    }
    table.render()
}
