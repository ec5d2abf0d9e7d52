//! How much of its past a queue keeps, and trimming it to that.
//!
//! A queue keeps its recent completions (the `done` stream, for the dashboard)
//! and its dead letters (for an operator to read and retry). Each is bounded by
//! a count and, optionally, an age, like BullMQ's `removeOnComplete` /
//! `removeOnFail` `{count, age}` and Sidekiq's dead set (`dead_max_jobs`,
//! `dead_timeout_in_seconds`). The counts are kept as records are added (the
//! settling scripts); the ages, and the exact dead-letter count, by
//! [`Admin::trim`], which a cleanup runs now and then.
//!
//! A worker writes its queue's retention into the queue's `retention` hash when
//! it starts (and again with the registry, after Redis lost its data), so an
//! operator tool and a cleanup read the numbers the workers use.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::Admin;
use crate::queue::Queue;
use crate::{Result, scripts};

/// Fields of the `retention` hash.
mod field {
    pub const COMPLETED: &str = "completed";
    pub const COMPLETED_MAX_AGE_MS: &str = "completed_max_age_ms";
    pub const DEAD_LETTERS: &str = "dead_letters";
    pub const DEAD_LETTERS_MAX_AGE_MS: &str = "dead_letters_max_age_ms";
}

/// What a queue keeps of its settled jobs. Serialized with the ages in
/// milliseconds (`completed_max_age_ms`), as the rest of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// Completions kept in the `done` stream (0 keeps none).
    pub completed: usize,
    /// Completions older than this are dropped; None keeps them until the count.
    #[serde(rename = "completed_max_age_ms", serialize_with = "as_ms")]
    pub completed_max_age: Option<Duration>,
    /// Dead letters kept at most, the newest (0: no cap).
    pub dead_letters: usize,
    /// Dead letters older than this are dropped; None keeps them until the count.
    #[serde(rename = "dead_letters_max_age_ms", serialize_with = "as_ms")]
    pub dead_letters_max_age: Option<Duration>,
}

fn as_ms<S: serde::Serializer>(age: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    age.map(|d| ms(Some(d))).serialize(s)
}

/// What one [`Admin::trim`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Trimmed {
    pub dead_letters: u64,
    pub completions: u64,
}

fn ms(age: Option<Duration>) -> u64 {
    age.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Retention {
    fn fields(&self) -> [(&'static str, u64); 4] {
        [
            (field::COMPLETED, self.completed as u64),
            (field::COMPLETED_MAX_AGE_MS, ms(self.completed_max_age)),
            (field::DEAD_LETTERS, self.dead_letters as u64),
            (
                field::DEAD_LETTERS_MAX_AGE_MS,
                ms(self.dead_letters_max_age),
            ),
        ]
    }

    /// None unless every field is there: a half-written hash is no retention.
    pub(super) fn from_fields(f: &HashMap<String, u64>) -> Option<Self> {
        let age = |k: &str| {
            f.get(k)
                .map(|&ms| (ms > 0).then(|| Duration::from_millis(ms)))
        };
        Some(Self {
            completed: usize::try_from(*f.get(field::COMPLETED)?).ok()?,
            completed_max_age: age(field::COMPLETED_MAX_AGE_MS)?,
            dead_letters: usize::try_from(*f.get(field::DEAD_LETTERS)?).ok()?,
            dead_letters_max_age: age(field::DEAD_LETTERS_MAX_AGE_MS)?,
        })
    }
}

/// Writes `retention` into `queue`'s hash (what a worker does at start).
pub(crate) async fn write(
    conn: &mut impl redis::aio::ConnectionLike,
    queue: &Queue,
    retention: &Retention,
) -> Result<()> {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(queue.keys().retention());
    for (k, v) in retention.fields() {
        cmd.arg(k).arg(v);
    }
    cmd.query_async::<()>(conn).await?;
    Ok(())
}

impl Admin {
    /// The retention `queue`'s workers last wrote; None when none has started
    /// since the queue was created (or Redis lost its data).
    pub async fn retention(&self, queue: &Queue) -> Result<Option<Retention>> {
        let mut conn = self.broker.conn().await?;
        let f: HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(queue.keys().retention())
            .query_async(&mut conn)
            .await?;
        Ok(Retention::from_fields(&f))
    }

    /// Records `retention` as `queue`'s, as its workers do when they start.
    pub async fn set_retention(&self, queue: &Queue, retention: &Retention) -> Result<()> {
        let mut conn = self.broker.conn().await?;
        write(&mut conn, queue, retention).await
    }

    /// Removes from `queue` the dead letters and completions `retention` does
    /// not keep: older than its ages (on Redis's clock), beyond its counts. One
    /// script, so a worker settling meanwhile sees the trim whole or not at all.
    /// A completions count of 0 leaves the count to the workers.
    pub async fn trim(&self, queue: &Queue, retention: &Retention) -> Result<Trimmed> {
        let mut conn = self.broker.conn().await?;
        let keys = queue.keys();
        let (dead_letters, completions): (u64, u64) = scripts::TRIM
            .prepare_invoke()
            .key(keys.dlq())
            .key(keys.done())
            .key(keys.stats())
            .key(keys.done_index())
            .arg(retention.completed)
            .arg(ms(retention.completed_max_age))
            .arg(retention.dead_letters)
            .arg(ms(retention.dead_letters_max_age))
            .invoke_async(&mut conn)
            .await?;
        Ok(Trimmed {
            dead_letters,
            completions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_reads_back_from_its_fields_and_a_partial_hash_is_none() {
        let r = Retention {
            completed: 1000,
            completed_max_age: None,
            dead_letters: 10_000,
            dead_letters_max_age: Some(Duration::from_secs(30 * 86_400)),
        };
        let fields: HashMap<String, u64> = r
            .fields()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        assert_eq!(Retention::from_fields(&fields), Some(r));
        let mut partial = fields;
        partial.remove(field::DEAD_LETTERS);
        assert_eq!(Retention::from_fields(&partial), None);
    }
}
