//! Consuming jobs: the handler trait, the worker configuration and the runner.
//!
//! A [`Worker`] reads entries of one queue through its consumer group, runs them
//! with bounded concurrency and settles every entry through one Lua script each
//! (complete, retry, dead-letter). Background loops promote due delayed jobs,
//! reclaim entries of stopped consumers, and keep long jobs' claims alive.

mod dispatch;
mod heartbeat;
mod hook;
mod janitor;
mod limits;
mod outage;
mod promote;
mod read;
mod reclaim;
mod repeat;
mod runner;
mod settle;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backoff::Backoff;
use crate::envelope::{self, Envelope};
use crate::{Broker, Error, Queue, Result};

pub use limits::RateLimit;
pub use outage::RedisStatus;
pub(crate) use promote::promote_due_jobs;
pub use runner::Worker;

/// Why a run failed, which decides what happens next.
#[derive(Debug)]
pub enum JobError {
    /// Try again after the backoff, while attempts remain.
    Retry(anyhow::Error),
    /// Do not try again: dead-letter now.
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        JobError::Retry(error.into())
    }

    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        JobError::Permanent(error.into())
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Permanent(_))
    }

    fn message(&self) -> String {
        match self {
            JobError::Retry(e) | JobError::Permanent(e) => format!("{e:#}"),
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// `?` on any error inside a handler means "retry".
impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::Retry(error.into())
    }
}

/// One delivery of a job to a handler.
#[derive(Debug, Clone)]
pub struct Job {
    envelope: Arc<Envelope>,
    entry_id: Arc<str>,
    deliveries: u64,
    max_attempts: u32,
}

impl Job {
    /// The job id (the same on every attempt).
    pub fn id(&self) -> &str {
        &self.envelope.id
    }

    pub fn kind(&self) -> &str {
        &self.envelope.kind
    }

    /// 1 on the first run.
    pub fn attempt(&self) -> u32 {
        self.envelope.attempt
    }

    /// Runs allowed in all; the last attempt is the one where `attempt == max_attempts`.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a retryable failure of this run will dead-letter the job.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt() >= self.max_attempts
    }

    pub fn payload(&self) -> &Bytes {
        &self.envelope.payload
    }

    /// Decodes the payload; a payload that does not decode is a permanent error.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, JobError> {
        M::decode(self.envelope.payload.clone()).map_err(|e| {
            JobError::permanent(anyhow::anyhow!(
                "payload of {} job {} does not decode: {e}",
                self.kind(),
                self.id()
            ))
        })
    }

    pub fn headers(&self) -> &HashMap<String, String> {
        &self.envelope.headers
    }

    /// Whether an operator moved this job back from the dead-letter stream
    /// (`Admin::retry_dead`): its row, marked `failed` by the dead letter, is to
    /// run again rather than be taken as settled. Stays true on the retry's own
    /// later attempts.
    pub fn is_dead_letter_retry(&self) -> bool {
        self.envelope
            .headers
            .contains_key(envelope::RETRIED_DEAD_LETTER)
    }

    /// Error of the previous attempt, empty on the first run.
    pub fn last_error(&self) -> &str {
        &self.envelope.last_error
    }

    pub fn enqueued_at_ms(&self) -> i64 {
        self.envelope.enqueued_at_ms
    }

    /// The stream entry id of this delivery.
    pub fn entry_id(&self) -> &str {
        &self.entry_id
    }

    /// Times this entry was delivered (more than 1 after a reclaim).
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }
}

/// Runs jobs. Implemented for async closures `Fn(Job) -> Future<Output = Result<(), JobError>>`.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, job: Job) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Runs once a job of this queue has been moved to the dead-letter stream,
    /// whatever moved it: its last attempt failed, timed out or panicked, it
    /// failed permanently, its envelope did not decode, or its worker died on
    /// every delivery. The place to mark the domain row `failed` with the reason,
    /// so nothing stays `pending` behind a dead letter. An error is retried with
    /// backoff until it succeeds (PostgreSQL being down is often why the job
    /// failed); the hook must be idempotent. By default it does nothing.
    fn on_dead_letter(
        &self,
        letter: DeadLettered,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = letter;
        std::future::ready(Ok(()))
    }
}

/// A job just moved to the dead-letter stream, as [`Handler::on_dead_letter`] sees it.
#[derive(Debug, Clone)]
pub struct DeadLettered {
    /// The job; None when its entry held no envelope that decodes.
    pub envelope: Option<Arc<Envelope>>,
    /// Why it was dead-lettered.
    pub error: String,
}

impl DeadLettered {
    /// The job id, empty when the envelope did not decode.
    pub fn job_id(&self) -> &str {
        self.envelope.as_ref().map_or("", |e| e.id.as_str())
    }

    /// The job kind, empty when the envelope did not decode.
    pub fn kind(&self) -> &str {
        self.envelope.as_ref().map_or("", |e| e.kind.as_str())
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send,
{
    fn handle(&self, job: Job) -> impl Future<Output = Result<(), JobError>> + Send {
        self(job)
    }
}

/// Settings of one worker. Every interval is a default that tests shrink to ms.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Consumer group shared by all workers of the queue.
    pub group: String,
    /// Consumer name; `None` picks `host-pid-random`, unique per process.
    pub consumer: Option<String>,
    /// Jobs run at once by this worker.
    pub concurrency: NonZeroUsize,
    /// Most entries fetched per read.
    pub batch_size: NonZeroUsize,
    /// How long a read waits for new entries when the queue is empty.
    pub block: Duration,
    /// A run that takes longer fails with a retryable timeout error.
    pub job_timeout: Duration,
    /// Attempts for jobs whose envelope does not set `max_attempts`.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// An entry idle this long (its worker stopped heart-beating) is reclaimed.
    pub visibility_timeout: Duration,
    /// How often running jobs' claims are refreshed; well under the visibility timeout.
    pub heartbeat_interval: Duration,
    /// How often this worker looks for entries to reclaim.
    pub reclaim_interval: Duration,
    /// Deliveries after which an entry whose worker keeps dying is dead-lettered.
    pub max_deliveries: u32,
    /// Longest sleep between two promotions of due delayed jobs.
    pub promote_interval: Duration,
    /// How often a paused worker checks whether it was resumed.
    pub pause_poll: Duration,
    /// Time in-flight jobs get to finish on shutdown.
    pub grace_period: Duration,
    /// Completions kept in the `done` stream: at least this many once reached, at
    /// most half as many again plus one settled batch (0 keeps none). The stream
    /// holds one record per settled batch; whole records are dropped oldest first.
    pub done_retention: usize,
    /// Completions older than this are dropped by [`crate::Admin::trim`]
    /// (None: only the count bounds them).
    pub done_max_age: Option<Duration>,
    /// Dead letters kept (approximately as they are added, exactly by
    /// [`crate::Admin::trim`]; 0 = unbounded).
    pub dlq_retention: usize,
    /// Dead letters older than this are dropped by [`crate::Admin::trim`]
    /// (None: only the count bounds them).
    pub dlq_max_age: Option<Duration>,
    /// Most outcomes settled per batch of scripts (at most 2,000).
    pub ack_batch: NonZeroUsize,
    /// Most of the queue's jobs running at once across every replica (None: no
    /// cap beyond each worker's `concurrency`).
    pub global_concurrency: Option<NonZeroUsize>,
    /// Most of the queue's jobs started per window across every replica.
    pub rate_limit: Option<RateLimit>,
    /// How often a run waiting for a global slot asks again (jittered ±50 %).
    pub limit_poll: Duration,
    /// While Redis is unreachable the worker's loops wait, and one prober asks
    /// again after these delays (doubling up to `max`): the first answer
    /// resumes them all.
    pub reconnect_backoff: Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            group: crate::fields::DEFAULT_GROUP.into(),
            consumer: None,
            concurrency: NonZeroUsize::new(10).expect("nonzero"),
            batch_size: NonZeroUsize::new(100).expect("nonzero"),
            block: Duration::from_secs(2),
            job_timeout: Duration::from_secs(60),
            max_attempts: 3,
            backoff: Backoff::default(),
            visibility_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            reclaim_interval: Duration::from_secs(1),
            max_deliveries: 5,
            promote_interval: Duration::from_millis(250),
            pause_poll: Duration::from_millis(250),
            grace_period: Duration::from_secs(30),
            done_retention: 1000,
            done_max_age: None,
            dlq_retention: 10_000,
            dlq_max_age: None,
            ack_batch: NonZeroUsize::new(512).expect("nonzero"),
            global_concurrency: None,
            rate_limit: None,
            limit_poll: Duration::from_millis(100),
            reconnect_backoff: Backoff {
                initial: Duration::from_millis(100),
                factor: 2.0,
                max: Duration::from_secs(5),
                jitter: 0.2,
            },
        }
    }
}

impl WorkerConfig {
    /// What the queue keeps, as the worker writes it into the queue's
    /// `retention` hash when it starts.
    pub fn retention(&self) -> crate::Retention {
        crate::Retention {
            completed: self.done_retention,
            completed_max_age: self.done_max_age,
            dead_letters: self.dlq_retention,
            dead_letters_max_age: self.dlq_max_age,
        }
    }

    /// Checks the settings against each other; called before any I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.group.is_empty() {
            return bad("group must not be empty".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1".into());
        }
        if self.max_deliveries == 0 {
            return bad("max_deliveries must be at least 1".into());
        }
        for (name, d) in [
            ("block", self.block),
            ("job_timeout", self.job_timeout),
            ("visibility_timeout", self.visibility_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("reclaim_interval", self.reclaim_interval),
            ("promote_interval", self.promote_interval),
            ("pause_poll", self.pause_poll),
            ("limit_poll", self.limit_poll),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be greater than zero"));
            }
        }
        if self.ack_batch.get() > 2000 {
            // Lua's unpack() of the acknowledged ids has a stack limit.
            return bad(format!(
                "ack_batch must be at most 2000, got {}",
                self.ack_batch
            ));
        }
        if self.heartbeat_interval * 2 >= self.visibility_timeout {
            return bad(format!(
                "heartbeat_interval ({:?}) must be less than half of visibility_timeout ({:?}), \
                 or running jobs get reclaimed",
                self.heartbeat_interval, self.visibility_timeout
            ));
        }
        self.reconnect_backoff
            .validate()
            .map_err(|e| Error::InvalidConfig(format!("reconnect_{e}")))?;
        if self.reconnect_backoff.initial.is_zero() {
            return bad("reconnect_backoff initial must be greater than zero".into());
        }
        self.backoff.validate().map_err(Error::InvalidConfig)
    }
}

/// Builds the default consumer name: host, process id and a random suffix, so two
/// processes (or two workers in one process) never share a pending-entry list.
pub(crate) fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into());
    // A random start survives pid reuse; the counter keeps workers of one process apart.
    static NEXT: std::sync::LazyLock<std::sync::atomic::AtomicU32> =
        std::sync::LazyLock::new(|| {
            std::sync::atomic::AtomicU32::new(rand::random::<u16>().into())
        });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{host}-{}-{n:x}", std::process::id())
}

/// Creates a worker; shorthand for [`Worker::new`].
pub fn worker<H: Handler>(
    broker: &Broker,
    queue: &Queue,
    config: WorkerConfig,
    handler: H,
) -> Result<Worker<H>> {
    Worker::new(broker.clone(), queue.clone(), config, handler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_slower_than_half_the_visibility_timeout_is_rejected() {
        let cfg = WorkerConfig {
            heartbeat_interval: Duration::from_secs(3),
            ..WorkerConfig::default()
        };
        let err = cfg.validate().expect_err("must be rejected").to_string();
        assert!(err.contains("heartbeat_interval"), "{err}");
        assert!(WorkerConfig::default().validate().is_ok());
    }

    #[test]
    fn a_reconnect_backoff_that_does_not_grow_or_starts_at_zero_is_rejected() {
        for reconnect_backoff in [
            Backoff {
                factor: 0.5,
                ..WorkerConfig::default().reconnect_backoff
            },
            Backoff {
                initial: Duration::ZERO,
                ..WorkerConfig::default().reconnect_backoff
            },
        ] {
            let cfg = WorkerConfig {
                reconnect_backoff,
                ..WorkerConfig::default()
            };
            let err = cfg.validate().expect_err("must be rejected").to_string();
            assert!(err.contains("reconnect_backoff"), "{err}");
        }
    }

    #[test]
    fn consumer_names_differ_between_workers() {
        let a = default_consumer_name();
        let b = default_consumer_name();
        assert!(a.contains(&std::process::id().to_string()));
        assert_ne!(a, b);
    }
}
