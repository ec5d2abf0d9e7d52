//! Enqueueing jobs: one, many (pipelined), delayed, deduplicated, by priority.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use redis::Value;
use tracing::warn;

use crate::envelope::{self, Envelope};
use crate::fields;
use crate::queue::{Priority, Queue};
use crate::scripts;
use crate::{Broker, Error, Result};

/// When a job becomes runnable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    #[default]
    Now,
    /// After a delay measured by the Redis server clock.
    After(Duration),
    /// At a wall-clock time.
    At(SystemTime),
}

/// How long a dedup key suppresses other jobs with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedup {
    /// For a fixed time from the enqueue, whatever happens to the job.
    Ttl(Duration),
    /// Until the job completes or is dead-lettered (retries keep it).
    UntilSettled,
}

/// A job to enqueue: its kind, payload and options.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: String,
    payload: Bytes,
    id: Option<String>,
    max_attempts: u32,
    schedule: Schedule,
    dedup: Option<(String, Dedup)>,
    priority: Priority,
    headers: HashMap<String, String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            kind: kind.into(),
            payload: payload.into(),
            id: None,
            max_attempts: 0,
            schedule: Schedule::Now,
            dedup: None,
            priority: Priority::Normal,
            headers: HashMap::new(),
        }
    }

    /// A job whose payload is a protobuf message.
    pub fn message(kind: impl Into<String>, payload: &impl Message) -> Self {
        Self::new(kind, payload.encode_to_vec())
    }

    /// Sets the job id (default: a new UUIDv7).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Runs allowed before dead-lettering (default: the worker's `max_attempts`).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.schedule = Schedule::After(delay);
        self
    }

    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.schedule = Schedule::At(at);
        self
    }

    /// Suppresses any other job with the same key enqueued within `ttl`.
    pub fn dedup_key(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.dedup = Some((key.into(), Dedup::Ttl(ttl)));
        self
    }

    /// Makes this job the only one with `key` until it settles: while it waits,
    /// runs, or waits for a retry, enqueueing another job with the same key
    /// creates nothing and answers [`Enqueued::Duplicate`] with this job's id.
    /// Completion or dead-lettering releases the key, so "make sure this job
    /// exists" can be said any number of times (e.g. `qr:person:42`).
    ///
    /// Keys are per queue and at most 200 bytes.
    pub fn unique_until_settled(mut self, key: impl Into<String>) -> Self {
        self.dedup = Some((key.into(), Dedup::UntilSettled));
        self
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    fn is_plain(&self) -> bool {
        self.dedup.is_none() && self.schedule == Schedule::Now
    }
}

/// What happened to an enqueued job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Enqueued {
    /// In the stream, runnable now.
    Added { id: String, entry_id: String },
    /// In the delayed set until `due_ms` (Unix ms).
    Scheduled { id: String, due_ms: i64 },
    /// Suppressed by its dedup key; `id` is the job that holds the key.
    Duplicate { id: String },
}

impl Enqueued {
    /// The id of the job that will run (for a duplicate, the original's).
    pub fn id(&self) -> &str {
        match self {
            Enqueued::Added { id, .. }
            | Enqueued::Scheduled { id, .. }
            | Enqueued::Duplicate { id } => id,
        }
    }
}

/// Puts jobs on queues. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Producer {
    broker: Broker,
}

/// A job turned into the command that enqueues it.
struct Prepared {
    id: String,
    cmd: redis::Cmd,
    kind: PreparedKind,
}

enum PreparedKind {
    Xadd,
    Script,
}

impl Producer {
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// Enqueues one job.
    pub async fn enqueue(&self, queue: &Queue, job: NewJob) -> Result<Enqueued> {
        let mut conn = self.broker.shared();
        queue.register(&mut conn).await?;
        let prepared = prepare(queue, job)?;
        let reply: Value = match prepared.kind {
            PreparedKind::Xadd => prepared.cmd.query_async(&mut conn).await?,
            PreparedKind::Script => match prepared.cmd.query_async(&mut conn).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    scripts::ENQUEUE
                        .prepare_invoke()
                        .load_async(&mut conn)
                        .await?;
                    prepared.cmd.query_async(&mut conn).await?
                }
                other => other?,
            },
        };
        interpret(prepared.id, &prepared.kind, reply)
    }

    /// Enqueues many jobs in pipelined round trips (1,000 jobs per round trip).
    ///
    /// Each job is added independently: on an error part of the batch may already be
    /// enqueued, exactly as if they had been enqueued one by one.
    pub async fn enqueue_many(
        &self,
        queue: &Queue,
        jobs: impl IntoIterator<Item = NewJob>,
    ) -> Result<Vec<Enqueued>> {
        let mut conn = self.broker.conn().await?;
        queue.register(&mut conn).await?;
        let prepared = jobs
            .into_iter()
            .map(|job| prepare(queue, job))
            .collect::<Result<Vec<_>>>()?;
        if prepared
            .iter()
            .any(|p| matches!(p.kind, PreparedKind::Script))
        {
            // Loaded up front: a NOSCRIPT in the middle of a pipeline could not be
            // replayed without enqueueing the jobs before it twice.
            scripts::ENQUEUE
                .prepare_invoke()
                .load_async(&mut conn)
                .await?;
        }
        let mut out = Vec::with_capacity(prepared.len());
        for chunk in prepared.chunks(1000) {
            let mut pipe = redis::pipe();
            for p in chunk {
                pipe.add_command(p.cmd.clone());
            }
            let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
            for (p, reply) in chunk.iter().zip(replies) {
                out.push(interpret(p.id.clone(), &p.kind, reply)?);
            }
        }
        Ok(out)
    }
}

fn prepare(queue: &Queue, job: NewJob) -> Result<Prepared> {
    let lane = queue.lane_of(job.priority)?;
    let plain = job.is_plain();
    let id = job.id.unwrap_or_else(envelope::new_job_id);
    let unique_key = match &job.dedup {
        Some((key, Dedup::UntilSettled)) => {
            validate_unique_key(key)?;
            key.clone()
        }
        _ => String::new(),
    };
    let mut headers = job.headers;
    crate::trace::inject_current(&mut headers);
    let now = envelope::now_ms();
    let available_at_ms = match job.schedule {
        Schedule::Now => now,
        Schedule::After(d) => now + d.as_millis() as i64,
        Schedule::At(t) => unix_ms(t),
    };
    let env = Envelope {
        id: id.clone(),
        kind: job.kind,
        attempt: 1,
        max_attempts: job.max_attempts,
        enqueued_at_ms: now,
        available_at_ms,
        headers,
        payload: job.payload,
        last_error: String::new(),
        unique_key,
    };
    let bytes = env.encode_to_vec();
    let stream = &queue.streams()[lane];
    if plain {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*").arg(fields::ENVELOPE).arg(bytes);
        return Ok(Prepared {
            id,
            cmd,
            kind: PreparedKind::Xadd,
        });
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(scripts::ENQUEUE.get_hash());
    // A unique key's holder may live in the delayed set or any lane: the
    // script looks there before it answers "duplicate".
    let keys = match &job.dedup {
        None => 1,
        Some((_, Dedup::Ttl(_))) => 2,
        Some((_, Dedup::UntilSettled)) => 3 + queue.streams().len(),
    };
    cmd.arg(keys);
    let (mode, when, payload) = match job.schedule {
        Schedule::Now => ("now", 0, bytes),
        Schedule::After(d) => ("after", d.as_millis() as i64, delayed_member(lane, &bytes)),
        Schedule::At(t) => ("at", unix_ms(t), delayed_member(lane, &bytes)),
    };
    if mode == "now" {
        cmd.arg(stream);
    } else {
        cmd.arg(queue.keys().delayed());
    }
    // 0 means "no expiry": the key lives until the job settles.
    let ttl_ms = match &job.dedup {
        Some((key, dedup)) => {
            cmd.arg(queue.keys().uniq(key));
            match dedup {
                Dedup::Ttl(ttl) => ttl.as_millis().max(1) as u64,
                Dedup::UntilSettled => {
                    cmd.arg(queue.keys().delayed()).arg(queue.streams());
                    0
                }
            }
        }
        None => 0,
    };
    cmd.arg(mode)
        .arg(payload)
        .arg(when)
        .arg(&id)
        .arg(ttl_ms)
        .arg(lane);
    Ok(Prepared {
        id,
        cmd,
        kind: PreparedKind::Script,
    })
}

/// Unique keys become part of a Redis key name and of every settled record.
fn validate_unique_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 {
        return Err(Error::InvalidConfig(format!(
            "unique key must be 1 to 200 bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

/// A delayed-set member: the lane digit, then the envelope bytes.
pub(crate) fn delayed_member(lane: usize, envelope: &[u8]) -> Vec<u8> {
    let mut member = Vec::with_capacity(envelope.len() + 1);
    member.push(b'0' + lane as u8);
    member.extend_from_slice(envelope);
    member
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn interpret(id: String, kind: &PreparedKind, reply: Value) -> Result<Enqueued> {
    match kind {
        PreparedKind::Xadd => Ok(Enqueued::Added {
            id,
            entry_id: redis::from_redis_value(reply)?,
        }),
        PreparedKind::Script => {
            let mut reply: Vec<Value> = redis::from_redis_value(reply)?;
            // A third element: the job the unique key named, gone without settling.
            if reply.len() == 3 {
                let gone: String = redis::from_redis_value(reply.remove(2))?;
                warn!(
                    job.id = %id,
                    job.previous_id = %gone,
                    "the unique key named a job that no longer exists (removed by hand?): the new job takes it over"
                );
            }
            let (added, value): (i64, String) = redis::from_redis_value(Value::Array(reply))?;
            if added == 0 {
                return Ok(Enqueued::Duplicate { id: value });
            }
            if value.contains('-') {
                Ok(Enqueued::Added {
                    id,
                    entry_id: value,
                })
            } else {
                let due_ms = value
                    .parse()
                    .map_err(|_| Error::Protocol(format!("enqueue returned {value:?}")))?;
                Ok(Enqueued::Scheduled { id, due_ms })
            }
        }
    }
}
