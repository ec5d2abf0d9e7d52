//! A queue's per-minute history: completions, failed runs, dead letters and
//! waits, counted by the workers' settling scripts (`lua/history.lua`) in the
//! step that settles, kept a day and an hour.

use serde::Serialize;

use super::Admin;
use crate::queue::Queue;
use crate::{Result, scripts};

/// Longest history [`Admin::history`] reads: the last day.
pub const HISTORY_MAX_MINUTES: u32 = 24 * 60;

/// A queue's counts for one minute (by Redis's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MinuteStats {
    /// Unix time in minutes (seconds / 60).
    pub minute: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Runs that failed: each retry and each dead letter counts one.
    pub failed: u64,
    /// Jobs moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Sum of the waits, from when each run's job was ready (enqueued, due, or
    /// out of its backoff) to when a worker started it, of the runs settled.
    pub wait_ms_total: u64,
    /// Runs whose wait is in `wait_ms_total`.
    pub waited: u64,
}

impl MinuteStats {
    /// The minutes added up, as one (its `minute` the first's).
    pub fn sum(minutes: &[MinuteStats]) -> MinuteStats {
        minutes.iter().fold(
            MinuteStats {
                minute: minutes.first().map_or(0, |m| m.minute),
                ..MinuteStats::default()
            },
            |t, m| MinuteStats {
                completed: t.completed + m.completed,
                failed: t.failed + m.failed,
                dead_lettered: t.dead_lettered + m.dead_lettered,
                wait_ms_total: t.wait_ms_total + m.wait_ms_total,
                waited: t.waited + m.waited,
                ..t
            },
        )
    }

    /// The mean wait of the minute's runs, if any was settled.
    pub fn mean_wait_ms(&self) -> Option<u64> {
        (self.waited > 0).then(|| self.wait_ms_total / self.waited)
    }
}

impl Admin {
    /// The last `minutes` minutes (1 to [`HISTORY_MAX_MINUTES`]) of the queue's
    /// history, oldest first, the current minute last; a minute without
    /// activity is all zeros.
    pub async fn history(&self, queue: &Queue, minutes: u32) -> Result<Vec<MinuteStats>> {
        let minutes = minutes.clamp(1, HISTORY_MAX_MINUTES);
        let keys = queue.keys();
        let mut inv = scripts::HISTORY.prepare_invoke();
        inv.key(keys.stats())
            .arg(keys.history_prefix())
            .arg(minutes);
        let mut conn = self.broker.conn().await?;
        type Counts = (
            Option<u64>,
            Option<u64>,
            Option<u64>,
            Option<u64>,
            Option<u64>,
        );
        let (first, counts): (u64, Vec<Counts>) = inv.invoke_async(&mut conn).await?;
        Ok(counts
            .into_iter()
            .zip(first..)
            .map(
                |((completed, failed, dead_lettered, wait_ms_total, waited), minute)| MinuteStats {
                    minute,
                    completed: completed.unwrap_or(0),
                    failed: failed.unwrap_or(0),
                    dead_lettered: dead_lettered.unwrap_or(0),
                    wait_ms_total: wait_ms_total.unwrap_or(0),
                    waited: waited.unwrap_or(0),
                },
            )
            .collect())
    }
}
