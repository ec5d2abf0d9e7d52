#![doc = include_str!("../README.md")]

pub mod admin;
pub mod backoff;
pub mod broker;
pub mod envelope;
mod error;
pub mod fields;
pub mod keys;
pub mod producer;
pub mod queue;
pub mod repeat;
mod scripts;
#[cfg(feature = "testing")]
pub mod testing;
mod trace;
pub mod worker;

pub use admin::{
    Admin, JobDetail, JobPage, JobState, JobSummary, MinuteStats, QueueStats, Retention, Trimmed,
};
pub use backoff::Backoff;
pub use broker::{Broker, BrokerConfig};
pub use envelope::Envelope;
pub use error::{Error, Result};
pub use producer::{Enqueued, NewJob, Producer, Schedule};
pub use queue::{Lanes, Priority, Queue};
pub use repeat::{Every, RepeatingJob, RepeatingStatus};
pub use worker::{
    DeadLettered, Handler, Job, JobError, RateLimit, RedisStatus, Worker, WorkerConfig,
};

/// Re-exported so binaries and tests need no direct dependency to shut workers down.
pub use tokio_util::sync::CancellationToken;
