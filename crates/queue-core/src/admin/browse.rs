//! Browsing a queue's jobs by state, finding one job by id in any state, and
//! an operator's moves on one job: run a delayed job now, delete a waiting or
//! delayed one.
//!
//! There is no index from job id to where the job lives: producers in other
//! languages write entries with a plain `XADD` (docs/design.md, "The queue
//! contract"), so an index could not be complete, and keeping one would cost
//! every enqueue and settle a write. A lookup scans instead, on the server and in
//! chunks (`lua/find.lua`), looking only at entries recent enough to hold the
//! job when its id is a UUIDv7 (the default), and at most [`FIND_SCAN_LIMIT`]
//! entries per place.

use std::collections::HashMap;

use prost::Message;
use redis::Value;
use serde::{Deserialize, Serialize};

use super::{Admin, DeadLetter, entry_time_ms, is_entry_id};
use crate::envelope::{self, Envelope, TRACEPARENT};
use crate::fields;
use crate::queue::Queue;
use crate::{Error, Result, scripts};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// In its lane stream, not yet delivered to a worker.
    Waiting,
    /// Delivered to a worker and not yet settled (running, or held by a worker
    /// that stopped, until another reclaims it).
    Active,
    /// In the delayed set: scheduled for later, or a retry waiting out its backoff.
    Delayed,
    /// In the dead-letter stream.
    Failed,
    /// Recorded in the capped `done` stream (only the last completions are kept).
    Completed,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Waiting,
        JobState::Active,
        JobState::Delayed,
        JobState::Failed,
        JobState::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Active => "active",
            JobState::Delayed => "delayed",
            JobState::Failed => "failed",
            JobState::Completed => "completed",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!("unknown job state {s:?} (waiting, active, delayed, failed, completed)")
            })
    }
}

/// One job in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    /// The job id (empty for an entry whose envelope does not decode).
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub enqueued_at_ms: Option<u64>,
    /// When a delayed job is due (Redis clock).
    pub due_at_ms: Option<u64>,
    /// The attempt it is on (waiting, active, delayed), failed on, or completed on.
    pub attempts: Option<u32>,
    /// The consumer that holds an active job.
    pub consumer: Option<String>,
    /// A dead letter's error; otherwise the previous attempt's, if any.
    pub error: Option<String>,
    /// Its lane: `high`, `normal` or `low`.
    pub lane: String,
    /// Its entry: in the lane stream (waiting, active), the dead-letter stream
    /// (failed) or the `done` stream (completed, one record per settled batch);
    /// None while delayed. [`Admin::find_job`] takes it in place of the job id,
    /// the only handle of an entry that does not decode.
    pub entry_id: Option<String>,
    /// When it failed or completed (ms).
    pub finished_at_ms: Option<u64>,
}

/// Everything known about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobDetail {
    pub summary: JobSummary,
    /// The envelope's headers, sorted by name.
    pub headers: Vec<(String, String)>,
    /// The typed payload (for a completed job: empty, the `done` stream keeps
    /// only id, kind, attempt and duration; for an entry that does not decode:
    /// its raw bytes).
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub payload_bytes: usize,
    /// Same as `summary.entry_id`.
    pub entry_id: Option<String>,
    /// The trace id of the `traceparent` header.
    pub trace_id: Option<String>,
    /// Runs allowed; None: the worker's default.
    pub max_attempts: Option<u32>,
    /// When this attempt became ready to run (enqueue, due time, end of backoff).
    pub available_at_ms: Option<u64>,
    /// The previous attempt's error (for a dead letter: its final error).
    pub last_error: Option<String>,
    /// The unique-until-settled key it holds, if any.
    pub unique_key: Option<String>,
    /// Active: ms since its consumer last read, claimed or heart-beat it.
    pub idle_ms: Option<u64>,
    /// Active: times the entry was delivered.
    pub deliveries: Option<u64>,
    /// Completed: how long the run took.
    pub duration_ms: Option<u64>,
    /// Failed: the lane stream entry it had when it failed.
    pub origin: Option<String>,
    /// The entry holds no envelope that decodes (a malformed dead letter, or a
    /// pending entry deleted from its stream by hand).
    pub undecodable: bool,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `after` for the next page; None on the last.
    pub next: Option<String>,
}

/// Largest page of [`Admin::jobs`].
pub const MAX_PAGE: usize = 1000;
/// Entries a lookup looks at, at most, in each place (each lane stream, the
/// delayed set, the dead letters, the completions): a job behind that many
/// others is not found.
pub const FIND_SCAN_LIMIT: usize = 200_000;
/// Entries per `lua/find.lua` call: about a millisecond of Redis time (1.7 µs
/// an entry on the benchmark machine), so a lookup never stalls the workers long.
const FIND_CHUNK: usize = 500;
/// How far behind a UUIDv7 job id's time its entries may be stamped (the
/// producer's clock against Redis's).
const CLOCK_SKEW_MS: u64 = 60_000;

/// A stream entry as read: id, fields.
type Entry = (String, HashMap<String, Vec<u8>>);

/// Where a found job is, with what the move operations need.
enum Place {
    Stream { lane: usize, entry: String },
    Delayed { member: Vec<u8> },
    Dead { entry: String },
    Done,
}

impl Admin {
    /// One page of the queue's jobs in `state`, `limit` (1 to [`MAX_PAGE`]) per
    /// page, from the cursor `after` (the previous page's `next`). Waiting and
    /// active jobs come lane by lane (highest first) in entry order, delayed ones
    /// by due time, failed and completed ones newest first.
    pub async fn jobs(
        &self,
        queue: &Queue,
        state: JobState,
        after: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        match state {
            JobState::Waiting | JobState::Active => {
                self.stream_jobs(queue, state, after, limit).await
            }
            JobState::Delayed => self.delayed_jobs(queue, after, limit).await,
            JobState::Failed => {
                if let Some(before) = after
                    && entry_id_parts(before).is_none()
                {
                    return Err(Error::InvalidCursor(before.to_owned()));
                }
                // Nothing is older than the first id there is (and Redis refuses to look).
                if after.and_then(entry_id_parts) == Some((0, 0)) {
                    return Ok(JobPage {
                        jobs: Vec::new(),
                        next: None,
                    });
                }
                let page = self.dead_letters(queue, after, limit).await?;
                Ok(JobPage {
                    jobs: page.items.iter().map(dead_summary).collect(),
                    next: page.next,
                })
            }
            JobState::Completed => self.completed_jobs(queue, after, limit).await,
        }
    }

    async fn stream_jobs(
        &self,
        queue: &Queue,
        state: JobState,
        after: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        // Cursor: "lane:entry id", the last entry of the previous page.
        let (lane, entry) = match after {
            None => (0, String::new()),
            Some(cursor) => cursor
                .split_once(':')
                .and_then(|(lane, entry)| {
                    let lane: usize = lane.parse().ok()?;
                    (lane < queue.streams().len() && entry_id_parts(entry).is_some())
                        .then(|| (lane, entry.to_owned()))
                })
                .ok_or_else(|| Error::InvalidCursor(cursor.to_owned()))?,
        };
        let mut inv = scripts::BROWSE.prepare_invoke();
        for stream in queue.streams() {
            inv.key(stream);
        }
        inv.arg(&self.group)
            .arg(state.as_str())
            .arg(lane)
            .arg(&entry)
            .arg(limit + 1);
        let mut conn = self.broker.conn().await?;
        type Row = (usize, String, Option<Vec<u8>>, String, u64, u64);
        let mut rows: Vec<Row> = inv.invoke_async(&mut conn).await?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(lane, id, ..)| format!("{lane}:{id}"))
        } else {
            None
        };
        let jobs = rows
            .into_iter()
            .map(|(lane, id, raw, consumer, ..)| {
                let env = raw.as_deref().and_then(|r| Envelope::decode(r).ok());
                let mut s = envelope_summary(env.as_ref(), state, queue.lane_name(lane));
                s.entry_id = Some(id);
                s.consumer = (state == JobState::Active).then_some(consumer);
                s
            })
            .collect();
        Ok(JobPage { jobs, next })
    }

    async fn delayed_jobs(
        &self,
        queue: &Queue,
        after: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        // Cursor: "due ms:members of that due time already listed".
        let (due, skip) = match after {
            None => (0, 0),
            Some(cursor) => cursor
                .split_once(':')
                .and_then(|(due, skip)| Some((due.parse::<u64>().ok()?, skip.parse::<u64>().ok()?)))
                .ok_or_else(|| Error::InvalidCursor(cursor.to_owned()))?,
        };
        let mut conn = self.broker.conn().await?;
        let mut members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(queue.keys().delayed())
            .arg(due)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(skip)
            .arg(limit + 1)
            .query_async(&mut conn)
            .await?;
        let next = if members.len() > limit {
            members.truncate(limit);
            let last = members.last().map_or(0, |(_, s)| *s as u64);
            let same = members.iter().filter(|(_, s)| *s as u64 == last).count() as u64;
            Some(format!(
                "{last}:{}",
                same + if last == due { skip } else { 0 }
            ))
        } else {
            None
        };
        let jobs = members
            .iter()
            .map(|(member, score)| delayed_detail(queue, member, *score as u64).summary)
            .collect();
        Ok(JobPage { jobs, next })
    }

    async fn completed_jobs(
        &self,
        queue: &Queue,
        after: Option<&str>,
        limit: usize,
    ) -> Result<JobPage> {
        // Cursor: "record id:jobs of that record already listed" (newest first).
        let (mut end, mut skip) = match after {
            None => ("+".to_owned(), 0),
            Some(cursor) => cursor
                .rsplit_once(':')
                .and_then(|(record, skip)| {
                    entry_id_parts(record)?;
                    Some((record.to_owned(), skip.parse::<usize>().ok()?))
                })
                .ok_or_else(|| Error::InvalidCursor(cursor.to_owned()))?,
        };
        let mut conn = self.broker.conn().await?;
        let mut jobs = Vec::new();
        loop {
            let records: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                .arg(queue.keys().done())
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(100)
                .query_async(&mut conn)
                .await?;
            let Some(last) = records.last().map(|(id, _)| id.clone()) else {
                return Ok(JobPage { jobs, next: None });
            };
            for (record, values) in records {
                // Newest first: a record's fields, and a batch's jobs, backwards.
                let record_jobs = values
                    .iter()
                    .rev()
                    .flat_map(|(field, value)| fields::done::jobs(field, value).rev());
                for (n, value) in record_jobs.enumerate().skip(skip) {
                    if jobs.len() == limit {
                        return Ok(JobPage {
                            jobs,
                            next: Some(format!("{record}:{n}")),
                        });
                    }
                    jobs.push(done_summary(&record, value));
                }
                skip = 0;
            }
            end = format!("({last}");
        }
    }

    /// The job with this id, in whatever state it is, or None. `id` may also be
    /// an entry id as listed in `entry_id` (a lane stream's or a dead letter's).
    /// Looks in the lane streams, the delayed set, the dead letters and the
    /// completions, in that order, at most [`FIND_SCAN_LIMIT`] entries each; a
    /// job that moves while it is looked for may be missed (look again).
    pub async fn find_job(&self, queue: &Queue, id: &str) -> Result<Option<JobDetail>> {
        Ok(self.locate(queue, id).await?.map(|(_, detail)| detail))
    }

    async fn locate(&self, queue: &Queue, id: &str) -> Result<Option<(Place, JobDetail)>> {
        let mut conn = self.broker.conn().await?;
        if is_entry_id(id)
            && entry_id_parts(id).is_some()
            && let Some(found) = self.at_entry(&mut conn, queue, id).await?
        {
            return Ok(Some(found));
        }
        if id.is_empty() {
            return Ok(None);
        }
        // Field 1 (the id) opens an envelope: tag, length, bytes.
        let mut opening = vec![0x0a];
        prost::encoding::encode_varint(id.len() as u64, &mut opening);
        opening.extend_from_slice(id.as_bytes());
        // An entry is never stamped before its job was created, nor a job
        // completed before: a UUIDv7 id bounds where to look.
        let since = uuid_v7_ms(id).map(|ms| ms.saturating_sub(CLOCK_SKEW_MS));
        let first = since.map_or("-".to_owned(), |ms| format!("{ms}-0"));
        for (lane, stream) in queue.streams().iter().enumerate() {
            let found: Option<(String, Value)> = self
                .scan(&mut conn, stream, "stream", &opening, &first, "+")
                .await?;
            if let Some((entry, raw)) = found {
                let raw: Vec<u8> = redis::from_redis_value(raw)?;
                let detail = self
                    .stream_detail(&mut conn, queue, lane, &entry, Some(raw))
                    .await?;
                return Ok(Some((Place::Stream { lane, entry }, detail)));
            }
        }
        let delayed = queue.keys().delayed();
        let found: Option<(Vec<u8>, Value)> = self
            .scan(&mut conn, &delayed, "delayed", &opening, "0", "")
            .await?;
        if let Some((member, due)) = found {
            let due: f64 = redis::from_redis_value(due)?;
            let detail = delayed_detail(queue, &member, due as u64);
            return Ok(Some((Place::Delayed { member }, detail)));
        }
        let found: Option<(String, Value)> = self
            .scan(
                &mut conn,
                &queue.keys().dlq(),
                "stream",
                &opening,
                &first,
                "+",
            )
            .await?;
        if let Some((entry, _)) = found
            && let Some(found) = self.dead_at(&mut conn, queue, &entry).await?
        {
            return Ok(Some(found));
        }
        let mut done_key = id.as_bytes().to_vec();
        done_key.push(fields::done::SEPARATOR as u8);
        let oldest = since.map_or("-".to_owned(), |ms| format!("{ms}-0"));
        let found: Option<(String, Value)> = self
            .scan(
                &mut conn,
                &queue.keys().done(),
                "done",
                &done_key,
                "+",
                &oldest,
            )
            .await?;
        if let Some((record, value)) = found {
            let value: String = redis::from_redis_value(value)?;
            let summary = done_summary(&record, &value);
            let mut detail = bare_detail(summary);
            detail.duration_ms = value
                .rsplit(fields::done::SEPARATOR)
                .next()
                .and_then(|ms| ms.parse().ok());
            return Ok(Some((Place::Done, detail)));
        }
        Ok(None)
    }

    /// Pages through one place with `lua/find.lua`; the found element's id (or
    /// member) and its envelope (or due time, or done value).
    async fn scan<T: redis::FromRedisValue>(
        &self,
        conn: &mut crate::broker::Connection,
        key: &str,
        mode: &str,
        opening: &[u8],
        start: &str,
        stop: &str,
    ) -> Result<Option<(T, Value)>> {
        let mut start = start.to_owned();
        for _ in 0..FIND_SCAN_LIMIT.div_ceil(FIND_CHUNK) {
            let mut inv = scripts::FIND.prepare_invoke();
            inv.key(key)
                .arg(mode)
                .arg(opening)
                .arg(&start)
                .arg(stop)
                .arg(FIND_CHUNK);
            let reply: Vec<Value> = inv.invoke_async(conn).await?;
            let mut reply = reply.into_iter();
            let (Some(found), Some(at)) = (reply.next(), reply.next()) else {
                return Err(Error::Protocol("find.lua answered too few values".into()));
            };
            if redis::from_redis_value::<i64>(found)? == 1 {
                let what = reply
                    .next()
                    .ok_or_else(|| Error::Protocol("find.lua answered no value".into()))?;
                return Ok(Some((redis::from_redis_value(at)?, what)));
            }
            start = redis::from_redis_value(at)?;
            if start.is_empty() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The job at a lane stream entry or a dead-letter entry, if there is one.
    async fn at_entry(
        &self,
        conn: &mut crate::broker::Connection,
        queue: &Queue,
        id: &str,
    ) -> Result<Option<(Place, JobDetail)>> {
        let mut pipe = redis::pipe();
        for stream in queue.streams() {
            pipe.cmd("XRANGE").arg(stream).arg(id).arg(id);
        }
        let found: Vec<Vec<Entry>> = pipe.query_async(conn).await?;
        for (lane, entries) in found.into_iter().enumerate() {
            if let Some((entry, mut fields)) = entries.into_iter().next() {
                let raw = fields.remove(fields::ENVELOPE);
                let detail = self.stream_detail(conn, queue, lane, &entry, raw).await?;
                return Ok(Some((Place::Stream { lane, entry }, detail)));
            }
        }
        self.dead_at(conn, queue, id).await
    }

    async fn dead_at(
        &self,
        conn: &mut crate::broker::Connection,
        queue: &Queue,
        id: &str,
    ) -> Result<Option<(Place, JobDetail)>> {
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(queue.keys().dlq())
            .arg(id)
            .arg(id)
            .query_async(conn)
            .await?;
        Ok(entries.into_iter().next().map(|(entry, fields)| {
            let dead = DeadLetter::from_fields(entry.clone(), fields);
            (Place::Dead { entry }, dead_detail(&dead))
        }))
    }

    /// A lane stream entry: active when the group holds it pending, else waiting.
    async fn stream_detail(
        &self,
        conn: &mut crate::broker::Connection,
        queue: &Queue,
        lane: usize,
        entry: &str,
        raw: Option<Vec<u8>>,
    ) -> Result<JobDetail> {
        let pending: redis::RedisResult<Vec<(String, String, u64, u64)>> = redis::cmd("XPENDING")
            .arg(&queue.streams()[lane])
            .arg(&self.group)
            .arg(entry)
            .arg(entry)
            .arg(1)
            .query_async(conn)
            .await;
        let pending = match pending {
            Ok(p) => p.into_iter().next(),
            // No group yet: nothing was ever delivered.
            Err(e) if e.code() == Some("NOGROUP") => None,
            Err(e) => return Err(e.into()),
        };
        let state = if pending.is_some() {
            JobState::Active
        } else {
            JobState::Waiting
        };
        let mut detail = raw_detail(raw.as_deref(), state, queue.lane_name(lane));
        detail.summary.entry_id = Some(entry.to_owned());
        detail.entry_id = Some(entry.to_owned());
        if let Some((_, consumer, idle, deliveries)) = pending {
            detail.summary.consumer = Some(consumer);
            detail.idle_ms = Some(idle);
            detail.deliveries = Some(deliveries);
        }
        Ok(detail)
    }

    /// Moves a delayed job into its lane stream now, ready to run at once.
    /// Ok(false) when there is no such job; an error naming its state when it is
    /// not delayed. A unique key it holds follows it.
    pub async fn promote(&self, queue: &Queue, job_id: &str) -> Result<bool> {
        let Some((place, detail)) = self.locate(queue, job_id).await? else {
            return Ok(false);
        };
        let Place::Delayed { member } = place else {
            return Err(not_in_state(
                queue,
                job_id,
                detail.summary.state,
                "promoted",
            ));
        };
        // Ready now: the wait (history, metrics) counts from here.
        let raw = &member[1..];
        let envelope = match Envelope::decode(raw) {
            Ok(mut env) => {
                env.available_at_ms = envelope::now_ms();
                env.encode_to_vec()
            }
            Err(_) => raw.to_vec(),
        };
        let mut inv = scripts::PROMOTE_JOB.prepare_invoke();
        inv.key(queue.keys().delayed());
        for stream in queue.streams() {
            inv.key(stream);
        }
        inv.arg(&member)
            .arg(envelope)
            .arg(queue.keys().uniq_prefix());
        let mut conn = self.broker.conn().await?;
        let entry: Option<String> = inv.invoke_async(&mut conn).await?;
        match entry {
            Some(_) => Ok(true),
            // Promoted by a worker, retried or deleted meanwhile: say where it is now.
            None => match self.find_job(queue, job_id).await? {
                Some(now) => Err(not_in_state(queue, job_id, now.summary.state, "promoted")),
                None => Ok(false),
            },
        }
    }

    /// Deletes a waiting, delayed or failed job, releasing the unique key it
    /// holds. Ok(false) when there is no such job; an error naming its state when
    /// it is active (a worker holds it) or completed.
    pub async fn delete_job(&self, queue: &Queue, job_id: &str) -> Result<bool> {
        let Some((place, detail)) = self.locate(queue, job_id).await? else {
            return Ok(false);
        };
        let (key, mode, target) = match place {
            Place::Stream { lane, entry } if detail.summary.state == JobState::Waiting => {
                (queue.streams()[lane].clone(), "stream", entry.into_bytes())
            }
            Place::Delayed { member } => (queue.keys().delayed(), "delayed", member),
            Place::Dead { entry } => {
                return match self.delete_dead(queue, &entry).await {
                    Ok(()) => Ok(true),
                    Err(Error::NoSuchDeadLetter { .. }) => Ok(false),
                    Err(e) => Err(e),
                };
            }
            Place::Stream { .. } | Place::Done => {
                return Err(not_in_state(queue, job_id, detail.summary.state, "deleted"));
            }
        };
        let mut inv = scripts::DELETE_JOB.prepare_invoke();
        inv.key(key)
            .arg(mode)
            .arg(target)
            .arg(&self.group)
            .arg(queue.keys().uniq_prefix());
        let mut conn = self.broker.conn().await?;
        let deleted: i64 = inv.invoke_async(&mut conn).await?;
        match deleted {
            1 => Ok(true),
            -1 => Err(not_in_state(queue, job_id, JobState::Active, "deleted")),
            _ => Ok(false),
        }
    }
}

fn not_in_state(queue: &Queue, id: &str, state: JobState, action: &'static str) -> Error {
    Error::JobState {
        queue: queue.name().to_owned(),
        id: id.to_owned(),
        state,
        action,
    }
}

/// A summary from an envelope (None: it does not decode).
fn envelope_summary(env: Option<&Envelope>, state: JobState, lane: &str) -> JobSummary {
    JobSummary {
        id: env.map(|e| e.id.clone()).unwrap_or_default(),
        kind: env.map(|e| e.kind.clone()).unwrap_or_default(),
        state,
        enqueued_at_ms: env.and_then(|e| u64::try_from(e.enqueued_at_ms).ok()),
        due_at_ms: None,
        attempts: env.map(|e| e.attempt),
        consumer: None,
        error: env
            .map(|e| e.last_error.clone())
            .filter(|error| !error.is_empty()),
        lane: lane.to_owned(),
        entry_id: None,
        finished_at_ms: None,
    }
}

/// A detail with only its summary known (a completion).
fn bare_detail(summary: JobSummary) -> JobDetail {
    JobDetail {
        entry_id: summary.entry_id.clone(),
        summary,
        headers: Vec::new(),
        payload: Vec::new(),
        payload_bytes: 0,
        trace_id: None,
        max_attempts: None,
        available_at_ms: None,
        last_error: None,
        unique_key: None,
        idle_ms: None,
        deliveries: None,
        duration_ms: None,
        origin: None,
        undecodable: false,
    }
}

/// The detail of an entry's envelope bytes (None: the entry has none).
fn raw_detail(raw: Option<&[u8]>, state: JobState, lane: &str) -> JobDetail {
    let env = raw.and_then(|r| Envelope::decode(r).ok());
    let mut detail = bare_detail(envelope_summary(env.as_ref(), state, lane));
    match env {
        Some(env) => fill_from_envelope(&mut detail, env),
        None => {
            detail.undecodable = true;
            detail.payload = raw.unwrap_or_default().to_vec();
            detail.payload_bytes = detail.payload.len();
        }
    }
    detail
}

fn fill_from_envelope(detail: &mut JobDetail, env: Envelope) {
    let mut headers: Vec<(String, String)> = env.headers.into_iter().collect();
    headers.sort();
    detail.trace_id = headers
        .iter()
        .find(|(k, _)| k == TRACEPARENT)
        .and_then(|(_, v)| v.split('-').nth(1))
        .map(str::to_owned);
    detail.headers = headers;
    detail.payload_bytes = env.payload.len();
    detail.payload = env.payload.to_vec();
    detail.max_attempts = (env.max_attempts > 0).then_some(env.max_attempts);
    detail.available_at_ms = u64::try_from(env.available_at_ms).ok();
    detail.last_error = Some(env.last_error).filter(|e| !e.is_empty());
    detail.unique_key = Some(env.unique_key).filter(|k| !k.is_empty());
}

/// A delayed set member: the lane digit, then the envelope.
fn delayed_detail(queue: &Queue, member: &[u8], due: u64) -> JobDetail {
    let lane = member
        .first()
        .and_then(|d| (*d as char).to_digit(10))
        .map_or(0, |d| (d as usize).min(queue.streams().len() - 1));
    let mut detail = raw_detail(member.get(1..), JobState::Delayed, queue.lane_name(lane));
    detail.summary.due_at_ms = Some(due);
    detail
}

fn dead_summary(dead: &DeadLetter) -> JobSummary {
    JobSummary {
        id: dead.job_id.clone(),
        kind: dead.kind.clone(),
        state: JobState::Failed,
        enqueued_at_ms: dead.enqueued_at_ms.and_then(|ms| u64::try_from(ms).ok()),
        due_at_ms: None,
        attempts: dead.attempts,
        consumer: None,
        error: Some(dead.error.clone()),
        lane: if dead.lane.is_empty() {
            "normal".to_owned()
        } else {
            dead.lane.clone()
        },
        entry_id: Some(dead.id.clone()),
        finished_at_ms: u64::try_from(dead.failed_at_ms).ok(),
    }
}

fn dead_detail(dead: &DeadLetter) -> JobDetail {
    let mut detail = bare_detail(dead_summary(dead));
    match &dead.envelope {
        Some(env) => fill_from_envelope(&mut detail, env.clone()),
        None => {
            detail.undecodable = true;
            detail.payload_bytes = dead.payload_bytes;
        }
    }
    // The final error, not the one before it.
    detail.last_error = Some(dead.error.clone());
    detail.origin = Some(dead.origin.clone()).filter(|o| !o.is_empty());
    detail
}

/// A job of a `done` record: "job id ␟ kind ␟ attempt ␟ duration ms".
fn done_summary(record: &str, value: &str) -> JobSummary {
    let mut parts = value.split(fields::done::SEPARATOR);
    let mut next = || parts.next().unwrap_or("").to_owned();
    let (id, kind, attempt) = (next(), next(), next());
    JobSummary {
        id,
        kind,
        state: JobState::Completed,
        enqueued_at_ms: None,
        due_at_ms: None,
        attempts: attempt.parse().ok(),
        consumer: None,
        error: None,
        lane: String::new(),
        entry_id: Some(record.to_owned()),
        finished_at_ms: entry_time_ms(record).and_then(|ms| u64::try_from(ms).ok()),
    }
}

/// The parts of a stream entry id `ms-seq` Redis accepts (each within 64 bits).
fn entry_id_parts(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let part = |p: &str| {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u64>().ok())
            .flatten()
    };
    Some((part(ms)?, part(seq)?))
}

/// The creation time in a UUIDv7 job id (our default ids), if it is one.
fn uuid_v7_ms(id: &str) -> Option<u64> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_read_and_print_the_same_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("dead".parse::<JobState>().is_err());
    }

    #[test]
    fn a_uuid_v7_job_id_tells_when_it_was_made() {
        let before = envelope::now_ms() as u64;
        let id = envelope::new_job_id();
        let ms = uuid_v7_ms(&id).expect("a v7 id");
        assert!(ms >= before && ms <= envelope::now_ms() as u64, "{ms}");
        assert_eq!(uuid_v7_ms("qr-reconcile:1700000000"), None);
        assert_eq!(uuid_v7_ms(&uuid::Uuid::new_v4().to_string()), None);
    }

    #[test]
    fn entry_ids_redis_would_refuse_are_not_entry_ids() {
        assert_eq!(
            entry_id_parts("1700000000000-3"),
            Some((1_700_000_000_000, 3))
        );
        assert_eq!(entry_id_parts("99999999999999999999-0"), None);
        assert_eq!(entry_id_parts("1-"), None);
        assert_eq!(entry_id_parts("abc"), None);
    }
}
