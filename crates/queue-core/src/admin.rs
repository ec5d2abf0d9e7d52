//! Operations on queues: statistics, dead letters, pause, purge, consumers; jobs
//! by state and by id (`browse`), the per-minute history (`history`), what a
//! queue keeps and trimming it (`retention`).
//!
//! The same API backs `queuectl`, the gateway's admin endpoints and the dashboard.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use redis::Value;
use serde::Serialize;

use crate::envelope::{self, Envelope};
use crate::fields::{self, dead_letter, stats};
use crate::queue::{Lanes, Queue};
use crate::repeat::RepeatingStatus;
use crate::{Broker, Error, Result, keys, scripts};

mod browse;
mod history;
mod retention;

pub use crate::keys::HEIR_CONSUMER;
pub use browse::{FIND_SCAN_LIMIT, JobDetail, JobPage, JobState, JobSummary, MAX_PAGE};
pub use history::{HISTORY_MAX_MINUTES, MinuteStats};
pub(crate) use retention::write as write_retention;
pub use retention::{Retention, Trimmed};

/// A snapshot of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub name: String,
    /// In the stream, not yet delivered to any worker.
    pub waiting: u64,
    /// Delivered and not yet settled (running, or held by a stopped worker).
    pub active: u64,
    /// Scheduled for later: delayed jobs and retries waiting out their backoff.
    pub delayed: u64,
    /// Dead letters currently kept.
    pub failed: u64,
    /// Counters since the queue was created.
    pub completed: u64,
    pub retried: u64,
    pub reclaimed: u64,
    pub dead_lettered: u64,
    /// Runs that failed (each retry and each dead letter counts one).
    pub failed_runs: u64,
    /// Entries the group has not read yet, as Redis counts them (None when Redis
    /// cannot tell, e.g. right after deletions in the middle of the stream).
    pub lag: Option<u64>,
    /// Age of the oldest waiting job; None when nothing waits.
    pub oldest_waiting_age_ms: Option<u64>,
    pub paused: bool,
    /// Consumers registered in the group (live or not; see `consumers`).
    pub consumers: u64,
    /// Repeating jobs declared by the queue's workers, by name.
    pub repeating: Vec<RepeatingStatus>,
    /// What the queue keeps, as its workers last wrote it (None before any did).
    pub retention: Option<Retention>,
}

/// A job that exhausted its attempts, failed permanently, could not be decoded, or
/// killed its worker too often.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Entry id in the dead-letter stream: the handle for retry and delete.
    pub id: String,
    pub job_id: String,
    pub kind: String,
    pub error: String,
    pub attempts: Option<u32>,
    pub failed_at_ms: i64,
    /// The stream entry id the job had when it failed.
    pub origin: String,
    pub lane: String,
    pub enqueued_at_ms: Option<i64>,
    pub payload_bytes: usize,
    pub headers: HashMap<String, String>,
    #[serde(skip)]
    pub envelope: Option<Envelope>,
}

/// One page of dead letters, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    /// Pass as `before` to get the next (older) page; None on the last page.
    pub next: Option<String>,
}

/// A recent completion from the `done` stream.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub job_id: String,
    pub kind: String,
    pub attempt: u32,
    pub duration_ms: u64,
    pub finished_at_ms: i64,
}

/// A consumer of a queue's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerInfo {
    pub name: String,
    pub lane: String,
    /// Entries it holds unacknowledged.
    pub pending: u64,
    /// Time since it last read or claimed.
    pub idle_ms: u64,
}

/// What `purge` deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub waiting: u64,
    pub delayed: u64,
}

/// A consumer removed by `remove_dead_consumers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedConsumer {
    pub name: String,
    pub lane: String,
    /// Pending entries handed to the heir consumer for reclaiming.
    pub moved: u64,
}

/// Reply of `stats.lua`: delayed, dlq length, paused, server ms, counters, and per
/// lane (length, pending, lag or -1, oldest waiting entry id, consumers).
type StatsReply = (
    u64,
    u64,
    bool,
    i64,
    HashMap<String, u64>,
    Vec<(u64, u64, i64, String, u64)>,
);

/// Admin operations over one broker.
#[derive(Debug, Clone)]
pub struct Admin {
    broker: Broker,
    group: String,
}

impl Admin {
    /// Admin for the default consumer group `workers`.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            group: fields::DEFAULT_GROUP.into(),
        }
    }

    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Every queue a producer or worker has used, by name.
    pub async fn queues(&self) -> Result<Vec<Queue>> {
        let mut conn = self.broker.conn().await?;
        let registry: HashMap<String, usize> = redis::cmd("HGETALL")
            .arg(keys::registry(self.broker.prefix()))
            .query_async(&mut conn)
            .await?;
        let mut names: Vec<_> = registry.into_iter().collect();
        names.sort();
        names
            .into_iter()
            .map(|(name, lanes)| Queue::new(self.broker.prefix(), &name, Lanes::from_count(lanes)))
            .collect()
    }

    /// The queue called `name`, or [`Error::NoSuchQueue`].
    pub async fn open(&self, name: &str) -> Result<Queue> {
        keys::validate_queue_name(name)?;
        let mut conn = self.broker.conn().await?;
        let lanes: Option<usize> = redis::cmd("HGET")
            .arg(keys::registry(self.broker.prefix()))
            .arg(name)
            .query_async(&mut conn)
            .await?;
        match lanes {
            Some(n) => Queue::new(self.broker.prefix(), name, Lanes::from_count(n)),
            None => Err(Error::NoSuchQueue(name.to_owned())),
        }
    }

    pub async fn stats(&self, queue: &Queue) -> Result<QueueStats> {
        let mut conn = self.broker.conn().await?;
        let keys = queue.keys();
        let mut inv = scripts::STATS.prepare_invoke();
        inv.key(keys.delayed())
            .key(keys.dlq())
            .key(keys.stats())
            .key(keys.paused());
        for s in queue.streams() {
            inv.key(s);
        }
        inv.arg(&self.group);
        let (delayed, failed, paused, now_ms, counters, lanes): StatsReply =
            inv.invoke_async(&mut conn).await?;
        let counter = |k: &str| counters.get(k).copied().unwrap_or(0);
        let mut stats = QueueStats {
            name: queue.name().to_owned(),
            waiting: 0,
            active: 0,
            delayed,
            failed,
            completed: counter(stats::COMPLETED),
            retried: counter(stats::RETRIED),
            reclaimed: counter(stats::RECLAIMED),
            dead_lettered: counter(stats::DEAD_LETTERED),
            failed_runs: counter(stats::FAILED),
            lag: Some(0),
            oldest_waiting_age_ms: None,
            paused,
            consumers: 0,
            repeating: Vec::new(),
            retention: None,
        };
        for (len, pending, lag, oldest, consumers) in lanes {
            stats.waiting += len.saturating_sub(pending);
            stats.active += pending;
            stats.consumers = stats.consumers.max(consumers);
            stats.lag = match (stats.lag, u64::try_from(lag)) {
                (Some(a), Ok(b)) => Some(a + b),
                _ => None,
            };
            if let Some(ms) = entry_time_ms(&oldest) {
                let age = (now_ms - ms).max(0) as u64;
                stats.oldest_waiting_age_ms =
                    Some(stats.oldest_waiting_age_ms.map_or(age, |a| a.max(age)));
            }
        }
        let (repeating, retention): (Vec<(String, String)>, HashMap<String, u64>) = redis::pipe()
            .cmd("HGETALL")
            .arg(keys.repeat())
            .cmd("HGETALL")
            .arg(keys.retention())
            .query_async(&mut conn)
            .await?;
        stats.retention = Retention::from_fields(&retention);
        stats.repeating = repeating
            .into_iter()
            .map(|(name, record)| RepeatingStatus::parse(name, &record))
            .collect();
        stats.repeating.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    /// Stats of every registered queue.
    pub async fn stats_all(&self) -> Result<Vec<QueueStats>> {
        let mut out = Vec::new();
        for q in self.queues().await? {
            out.push(self.stats(&q).await?);
        }
        Ok(out)
    }

    /// Dead letters newest first, `limit` per page, older than `before` if given.
    pub async fn dead_letters(
        &self,
        queue: &Queue,
        before: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage> {
        let mut conn = self.broker.conn().await?;
        let end = match before {
            Some(id) => format!("({id}"),
            None => "+".to_owned(),
        };
        let limit = limit.clamp(1, 1000);
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XREVRANGE")
            .arg(queue.keys().dlq())
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut conn)
            .await?;
        let mut items: Vec<DeadLetter> = entries
            .into_iter()
            .map(|(id, fields)| DeadLetter::from_fields(id, fields))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(DeadLetterPage { items, next })
    }

    /// One dead letter, by its dead-letter entry id or by job id.
    pub async fn dead_letter(&self, queue: &Queue, id: &str) -> Result<DeadLetter> {
        let mut conn = self.broker.conn().await?;
        let dlq = queue.keys().dlq();
        let not_found = || Error::NoSuchDeadLetter {
            queue: queue.name().to_owned(),
            id: id.to_owned(),
        };
        if is_entry_id(id) {
            let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(&dlq)
                .arg(id)
                .arg(id)
                .query_async(&mut conn)
                .await?;
            return entries
                .into_iter()
                .next()
                .map(|(id, f)| DeadLetter::from_fields(id, f))
                .ok_or_else(not_found);
        }
        // By job id: a scan, bounded by the dead-letter retention.
        let mut start = "-".to_owned();
        loop {
            let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(&dlq)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            let Some(last) = entries.last().map(|(id, _)| id.clone()) else {
                return Err(not_found());
            };
            for (entry_id, fields) in entries {
                // Poison entries carry an empty `id` field (the reclaim script cannot
                // decode protobuf): their job id comes from the envelope.
                let dead = DeadLetter::from_fields(entry_id, fields);
                if dead.job_id == id {
                    return Ok(dead);
                }
            }
            start = format!("({last}");
        }
    }

    /// Puts a dead letter back on its lane as attempt 1; returns the new entry id.
    /// A job with a unique-until-settled key takes its key again if it is free.
    pub async fn retry_dead(&self, queue: &Queue, id: &str) -> Result<String> {
        let dead = self.dead_letter(queue, id).await?;
        let mut env = dead.envelope.ok_or_else(|| Error::Undecodable {
            id: dead.id.clone(),
            reason: "it was malformed when it arrived".into(),
        })?;
        env.attempt = 1;
        env.last_error = dead.error;
        env.headers
            .insert(envelope::RETRIED_DEAD_LETTER.to_owned(), dead.id.clone());
        env.available_at_ms = envelope::now_ms();
        let stream = &queue.streams()[queue.lane_by_name(&dead.lane)];
        let mut conn = self.broker.conn().await?;
        let mut inv = scripts::DLQ_RETRY.prepare_invoke();
        inv.key(queue.keys().dlq()).key(stream);
        if !env.unique_key.is_empty() {
            inv.key(queue.keys().uniq(&env.unique_key))
                .key(queue.keys().delayed());
            for s in queue.streams() {
                inv.key(s);
            }
        }
        inv.arg(&dead.id)
            .arg(env.encode_to_vec())
            .arg(&env.id)
            .arg(queue.lane_by_name(&dead.lane));
        let new_id: Option<String> = inv.invoke_async(&mut conn).await?;
        new_id.ok_or_else(|| Error::NoSuchDeadLetter {
            queue: queue.name().to_owned(),
            id: id.to_owned(),
        })
    }

    /// Retries every dead letter that decodes; returns how many were re-enqueued.
    /// Undecodable ones stay in the dead-letter stream.
    pub async fn retry_all_dead(&self, queue: &Queue) -> Result<u64> {
        let mut retried = 0;
        let mut before: Option<String> = None;
        loop {
            let page = self.dead_letters(queue, before.as_deref(), 200).await?;
            for dead in &page.items {
                match self.retry_dead(queue, &dead.id).await {
                    Ok(_) => retried += 1,
                    Err(Error::Undecodable { .. } | Error::NoSuchDeadLetter { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            match page.next {
                Some(next) => before = Some(next),
                None => return Ok(retried),
            }
        }
    }

    /// Deletes one dead letter (by entry id or job id).
    pub async fn delete_dead(&self, queue: &Queue, id: &str) -> Result<()> {
        let dead = self.dead_letter(queue, id).await?;
        let mut conn = self.broker.conn().await?;
        let removed: u64 = redis::cmd("XDEL")
            .arg(queue.keys().dlq())
            .arg(&dead.id)
            .query_async(&mut conn)
            .await?;
        if removed == 0 {
            return Err(Error::NoSuchDeadLetter {
                queue: queue.name().to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Deletes every dead letter; returns how many there were.
    pub async fn flush_dead(&self, queue: &Queue) -> Result<u64> {
        let mut conn = self.broker.conn().await?;
        let dlq = queue.keys().dlq();
        let (len, _): (u64, u64) = redis::pipe()
            .atomic()
            .cmd("XLEN")
            .arg(&dlq)
            .cmd("UNLINK")
            .arg(&dlq)
            .query_async(&mut conn)
            .await?;
        Ok(len)
    }

    /// Deletes waiting and delayed jobs, releasing the unique keys they held
    /// in the same step. Running jobs are left alone.
    pub async fn purge(&self, queue: &Queue) -> Result<PurgeReport> {
        let mut conn = self.broker.conn().await?;
        let mut report = PurgeReport {
            waiting: 0,
            delayed: 0,
        };
        loop {
            let mut inv = scripts::PURGE.prepare_invoke();
            inv.key(queue.keys().delayed());
            for stream in queue.streams() {
                inv.key(stream);
            }
            inv.arg(&self.group)
                .arg(500)
                .arg(queue.keys().uniq_prefix());
            let (waiting, delayed): (u64, u64) = inv.invoke_async(&mut conn).await?;
            if waiting == 0 && delayed == 0 {
                return Ok(report);
            }
            report.waiting += waiting;
            report.delayed += delayed;
        }
    }

    /// The id of the job that holds unique key `key` of `queue` (as
    /// `NewJob::unique_until_settled` named it), if any.
    pub async fn unique_holder(&self, queue: &Queue, key: &str) -> Result<Option<String>> {
        let mut conn = self.broker.conn().await?;
        let value: Option<String> = redis::cmd("GET")
            .arg(queue.keys().uniq(key))
            .query_async(&mut conn)
            .await?;
        // The value is "job id", then where the job lives (lua/unique.lua).
        Ok(value.map(|v| v.split('\u{1f}').next().unwrap_or_default().to_owned()))
    }

    /// Stops workers from starting jobs of this queue (they finish running ones).
    pub async fn pause(&self, queue: &Queue) -> Result<()> {
        let mut conn = self.broker.conn().await?;
        redis::cmd("SET")
            .arg(queue.keys().paused())
            .arg(envelope::now_ms())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn resume(&self, queue: &Queue) -> Result<()> {
        let mut conn = self.broker.conn().await?;
        redis::cmd("DEL")
            .arg(queue.keys().paused())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The most recent completions (up to `limit`), newest first.
    pub async fn completions(&self, queue: &Queue, limit: usize) -> Result<Vec<Completion>> {
        let mut conn = self.broker.conn().await?;
        let limit = limit.clamp(1, 1_000_000);
        let mut out = Vec::new();
        let mut end = "+".to_owned();
        // Each record holds one settled batch: page through records until `limit`.
        'pages: loop {
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                .arg(queue.keys().done())
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(100)
                .query_async(&mut conn)
                .await?;
            let Some(last) = entries.last().map(|(id, _)| id.clone()) else {
                break;
            };
            for (id, records) in entries {
                let finished_at_ms = entry_time_ms(&id).unwrap_or(0);
                // Newest first: a record's fields, and a batch's jobs, backwards.
                let jobs = records
                    .iter()
                    .rev()
                    .flat_map(|(field, value)| fields::done::jobs(field, value).rev());
                for record in jobs {
                    let mut parts = record.split(fields::done::SEPARATOR);
                    let mut next = || parts.next().unwrap_or("").to_owned();
                    let (job_id, kind, attempt, ms) = (next(), next(), next(), next());
                    out.push(Completion {
                        job_id,
                        kind,
                        attempt: attempt.parse().unwrap_or(0),
                        duration_ms: ms.parse().unwrap_or(0),
                        finished_at_ms,
                    });
                    if out.len() >= limit {
                        break 'pages;
                    }
                }
            }
            end = format!("({last}");
        }
        Ok(out)
    }

    /// Consumers of the queue's group, per lane.
    pub async fn consumers(&self, queue: &Queue) -> Result<Vec<ConsumerInfo>> {
        let mut conn = self.broker.conn().await?;
        let mut out = Vec::new();
        for (lane, stream) in queue.streams().iter().enumerate() {
            let reply: redis::RedisResult<Vec<HashMap<String, Value>>> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(stream)
                .arg(&self.group)
                .query_async(&mut conn)
                .await;
            let consumers = match reply {
                Ok(c) => c,
                // No stream or no group yet: no consumers.
                Err(e) if e.code() == Some("NOGROUP") || e.to_string().contains("no such key") => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for c in consumers {
                let get = |k: &str| c.get(k).cloned().map(redis::from_redis_value::<u64>);
                out.push(ConsumerInfo {
                    name: c
                        .get("name")
                        .cloned()
                        .map(redis::from_redis_value::<String>)
                        .transpose()?
                        .unwrap_or_default(),
                    lane: queue.lane_name(lane).to_owned(),
                    pending: get("pending").transpose()?.unwrap_or(0),
                    idle_ms: get("idle").transpose()?.unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Removes consumers idle for at least `min_idle`. Their pending entries are
    /// first handed to [`HEIR_CONSUMER`] with their idle time kept, so the next
    /// reclaim of any live worker runs them: nothing is lost.
    pub async fn remove_dead_consumers(
        &self,
        queue: &Queue,
        min_idle: Duration,
    ) -> Result<Vec<RemovedConsumer>> {
        let consumers = self.consumers(queue).await?;
        let mut conn = self.broker.conn().await?;
        let mut removed = Vec::new();
        for c in consumers {
            if c.idle_ms < min_idle.as_millis() as u64 {
                continue;
            }
            if c.name == HEIR_CONSUMER && c.pending > 0 {
                continue; // its entries are waiting to be reclaimed
            }
            if let Some(moved) = self
                .evict_consumer(&mut conn, queue, &c.lane, &c.name, min_idle)
                .await?
            {
                removed.push(RemovedConsumer {
                    name: c.name,
                    lane: c.lane,
                    moved,
                });
            }
        }
        Ok(removed)
    }

    /// Removes consumer `name` of `lane` if it is still idle for `min_idle`,
    /// handing its pending entries to [`HEIR_CONSUMER`]; returns how many were
    /// handed over, or None when it was not idle (it resumed since it was listed).
    /// The idle check runs inside each eviction step, so a consumer that resumes
    /// in between never loses entries it just read.
    pub async fn evict_idle_consumer(
        &self,
        queue: &Queue,
        lane: &str,
        name: &str,
        min_idle: Duration,
    ) -> Result<Option<u64>> {
        let mut conn = self.broker.conn().await?;
        self.evict_consumer(&mut conn, queue, lane, name, min_idle)
            .await
    }

    async fn evict_consumer(
        &self,
        conn: &mut crate::broker::Connection,
        queue: &Queue,
        lane: &str,
        name: &str,
        min_idle: Duration,
    ) -> Result<Option<u64>> {
        let stream = &queue.streams()[queue.lane_by_name(lane)];
        let mut moved = 0;
        loop {
            let mut inv = scripts::EVICT_CONSUMER.prepare_invoke();
            inv.key(stream)
                .arg(&self.group)
                .arg(name)
                .arg(HEIR_CONSUMER)
                .arg(500)
                .arg(min_idle.as_millis() as u64);
            let (n, state): (u64, i64) = inv.invoke_async(conn).await?;
            moved += n;
            match state {
                1 => return Ok(Some(moved)),
                -1 if moved == 0 => return Ok(None),
                // Resumed after part of its entries moved (its idle time was
                // checked before each chunk): keep what it holds now.
                -1 => return Ok(Some(moved)),
                _ => {}
            }
        }
    }

    /// Moves due delayed jobs into their streams now (workers do this on their own).
    pub async fn promote_due(&self, queue: &Queue) -> Result<u64> {
        let mut conn = self.broker.conn().await?;
        let mut total = 0;
        loop {
            let (moved, _) = crate::worker::promote_due_jobs(&mut conn, queue, 1000).await?;
            total += moved as u64;
            if moved < 1000 {
                return Ok(total);
            }
        }
    }

    /// Deletes every key of the queue and its registry entry, running jobs included.
    /// For tests and for decommissioning a queue; not an everyday operation.
    pub async fn destroy(&self, queue: &Queue) -> Result<u64> {
        let mut conn = self.broker.conn().await?;
        let mut deleted = 0;
        // The queue's keys share one slot, but which master holds it is the
        // cluster's business: scan them all.
        for node in self.broker.scan_nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = self
                    .broker
                    .scan_step(&mut conn, &node, cursor, &queue.keys().pattern())
                    .await?;
                if !keys.is_empty() {
                    deleted += redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<u64>(&mut conn)
                        .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        redis::cmd("HDEL")
            .arg(queue.registry_key())
            .arg(queue.name())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(deleted)
    }

    /// Creates the queue's lane streams with the consumer group on each (from id
    /// 0, so jobs enqueued earlier are read too) and lists the queue in the
    /// registry, as its first worker would; idempotent. A deployment runs it
    /// before any worker starts, so an autoscaler reading the group's lag never
    /// finds the group missing.
    pub async fn create_groups(&self, queue: &Queue) -> Result<()> {
        let mut conn = self.broker.conn().await?;
        for stream in queue.streams() {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        queue.register_again(&mut conn).await
    }
}

impl DeadLetter {
    fn from_fields(id: String, mut f: HashMap<String, Vec<u8>>) -> Self {
        let text = |f: &HashMap<String, Vec<u8>>, k: &str| {
            f.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let raw = f.remove(fields::ENVELOPE).unwrap_or_default();
        let envelope = if raw.is_empty() {
            None
        } else {
            Envelope::decode(raw.as_slice()).ok()
        };
        let mut job_id = text(&f, dead_letter::JOB_ID);
        let mut kind = text(&f, dead_letter::KIND);
        if let Some(env) = &envelope {
            // Poison entries are recorded by a script that cannot decode protobuf.
            if job_id.is_empty() {
                job_id = env.id.clone();
            }
            if kind.is_empty() {
                kind = env.kind.clone();
            }
        }
        DeadLetter {
            job_id,
            kind,
            error: text(&f, dead_letter::ERROR),
            attempts: text(&f, dead_letter::ATTEMPTS)
                .parse()
                .ok()
                .filter(|a| *a > 0),
            failed_at_ms: text(&f, dead_letter::FAILED_AT).parse().unwrap_or(0),
            origin: text(&f, dead_letter::ORIGIN),
            lane: text(&f, dead_letter::LANE),
            enqueued_at_ms: envelope.as_ref().map(|e| e.enqueued_at_ms),
            payload_bytes: envelope.as_ref().map_or(raw.len(), |e| e.payload.len()),
            headers: envelope
                .as_ref()
                .map(|e| e.headers.clone())
                .unwrap_or_default(),
            envelope,
            id,
        }
    }
}

/// Whether `id` looks like a stream entry id (`ms-seq`).
fn is_entry_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((ms, seq)) => {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The millisecond timestamp inside a stream entry id.
fn entry_time_ms(id: &str) -> Option<i64> {
    id.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_told_apart_from_job_ids() {
        assert!(is_entry_id("1700000000000-0"));
        assert!(!is_entry_id("0191d5a4-7b7c-7c1e-9f00-1234567890ab"));
        assert!(!is_entry_id("abc"));
        assert_eq!(entry_time_ms("1700000000000-3"), Some(1_700_000_000_000));
    }
}
