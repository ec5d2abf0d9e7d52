//! The wire envelope (generated from `proto/jobs/v1/envelope.proto`) and helpers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Generated protobuf types of package `jobs.v1` (the envelope).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/jobs.v1.rs"));
}

pub use proto::Envelope;

/// Header carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying the caller's idempotency key, if any.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header set on a job that an operator moved back from the dead-letter stream
/// (`Admin::retry_dead`, `queuectl retry`): the dead letter's entry id. A handler
/// whose row was marked `failed` by the dead letter reopens it when it sees this
/// (`Job::is_dead_letter_retry`), instead of taking the job for a stale duplicate.
pub const RETRIED_DEAD_LETTER: &str = "rsq-retried-dead-letter";

/// Milliseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh, time-ordered job id.
pub(crate) fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
