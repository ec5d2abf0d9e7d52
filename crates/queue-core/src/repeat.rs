//! Repeating jobs: "every N" or "daily at HH:MM UTC", enqueued once per period
//! however many replicas run.
//!
//! Time is cut into periods aligned to the Unix epoch (every 30 s: :00 and :30 of
//! each minute; daily at 03:00: each day from 03:00 UTC). Every worker that
//! declares a repeating job enqueues the job of the period it is in, with a dedup
//! key derived from the job's name and the period's start (`repeat:NAME:START_MS`):
//! the first replica adds it, the others are answered "duplicate". Nothing is kept
//! in memory between runs, so a restart neither repeats a period nor loses one:
//! the replica that starts enqueues the current period's job if nobody has yet.
//! Missed earlier periods are not replayed (a reconciler or a cleanup only needs
//! its latest run). The last period enqueued is recorded in `rsq:{q}:repeat`
//! and shown by `Admin::stats`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::fields::done::SEPARATOR;
use crate::{Error, NewJob, Result};

const DAY_MS: i64 = 86_400_000;

/// When a repeating job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Once per interval, periods aligned to the Unix epoch.
    Interval(Duration),
    /// Once a day at this UTC time.
    DailyAt { hour: u8, minute: u8 },
}

impl Every {
    /// Every `interval` (at least 1 s: shorter periods would flood the queue).
    pub fn interval(interval: Duration) -> Result<Self> {
        if interval < Duration::from_secs(1) || interval.as_millis() > DAY_MS as u128 * 366 {
            return Err(Error::InvalidConfig(format!(
                "a repeat interval must be between 1 s and 366 days, got {interval:?}"
            )));
        }
        Ok(Every::Interval(interval))
    }

    /// Daily at `hour:minute` UTC.
    pub fn daily_at(hour: u8, minute: u8) -> Result<Self> {
        if hour > 23 || minute > 59 {
            return Err(Error::InvalidConfig(format!(
                "daily time must be HH:MM between 00:00 and 23:59, got {hour}:{minute}"
            )));
        }
        Ok(Every::DailyAt { hour, minute })
    }

    fn period_ms(&self) -> i64 {
        match self {
            Every::Interval(d) => d.as_millis() as i64,
            Every::DailyAt { .. } => DAY_MS,
        }
    }

    fn offset_ms(&self) -> i64 {
        match self {
            Every::Interval(_) => 0,
            Every::DailyAt { hour, minute } => {
                (i64::from(*hour) * 60 + i64::from(*minute)) * 60_000
            }
        }
    }

    /// Start (Unix ms) of the period that contains `now_ms`.
    pub fn period_start(&self, now_ms: i64) -> i64 {
        let (period, offset) = (self.period_ms(), self.offset_ms());
        let since = now_ms - offset;
        since - since.rem_euclid(period) + offset
    }

    /// Start of the period after the one containing `now_ms`.
    pub fn next_start(&self, now_ms: i64) -> i64 {
        self.period_start(now_ms) + self.period_ms()
    }
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Every::Interval(d) => write!(f, "every {}ms", d.as_millis()),
            Every::DailyAt { hour, minute } => write!(f, "daily at {hour:02}:{minute:02} UTC"),
        }
    }
}

type MakeJob = dyn Fn(SystemTime) -> NewJob + Send + Sync;

/// A job a worker enqueues once per period. Its name is unique within the queue.
#[derive(Clone)]
pub struct RepeatingJob {
    name: String,
    every: Every,
    make: Arc<MakeJob>,
}

impl std::fmt::Debug for RepeatingJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepeatingJob")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish()
    }
}

impl RepeatingJob {
    /// `make` builds the job of the period that starts at its argument (e.g. a
    /// daily cleanup naming its day). Its id and dedup key are set by the worker.
    pub fn new(
        name: impl Into<String>,
        every: Every,
        make: impl Fn(SystemTime) -> NewJob + Send + Sync + 'static,
    ) -> Result<Self> {
        let name = name.into();
        crate::keys::validate_queue_name(&name).map_err(|_| {
            Error::InvalidConfig(format!(
                "repeating job name {name:?} must be 1 to 100 characters of A-Z a-z 0-9 . _ -"
            ))
        })?;
        Ok(Self {
            name,
            every,
            make: Arc::new(make),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn every(&self) -> Every {
        self.every
    }

    /// The job of the period starting at `start_ms`, with its deterministic id and
    /// dedup key. The key outlives the period by a minute so that a replica whose
    /// clock lags still finds it.
    pub(crate) fn job_for(&self, start_ms: i64) -> NewJob {
        let start = UNIX_EPOCH + Duration::from_millis(start_ms.max(0) as u64);
        let ttl = Duration::from_millis(self.every.period_ms() as u64) + Duration::from_secs(60);
        (self.make)(start)
            .id(format!("{}:{start_ms}", self.name))
            .dedup_key(format!("repeat:{}:{start_ms}", self.name), ttl)
    }

    /// The value recorded in the queue's repeat hash for the period `start_ms`.
    pub(crate) fn record(&self, start_ms: i64, job_id: &str) -> String {
        format!("{}{SEPARATOR}{start_ms}{SEPARATOR}{job_id}", self.every)
    }
}

/// A repeating job as the queue's stats show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatingStatus {
    pub name: String,
    /// e.g. `every 30000ms`, `daily at 03:00 UTC`.
    pub schedule: String,
    /// Start (Unix ms) of the last period whose job was enqueued.
    pub last_period_ms: i64,
    /// Id of that job.
    pub last_job_id: String,
}

impl RepeatingStatus {
    pub(crate) fn parse(name: String, record: &str) -> Self {
        let mut parts = record.split(SEPARATOR);
        let mut next = || parts.next().unwrap_or("").to_owned();
        let (schedule, start, job_id) = (next(), next(), next());
        Self {
            name,
            schedule,
            last_period_ms: start.parse().unwrap_or(0),
            last_job_id: job_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_periods_are_aligned_to_the_epoch() {
        let every = Every::interval(Duration::from_secs(30)).expect("valid");
        assert_eq!(every.period_start(1_000_029_999), 1_000_020_000);
        assert_eq!(every.period_start(1_000_020_000), 1_000_020_000);
        assert_eq!(every.next_start(1_000_020_000), 1_000_050_000);
    }

    #[test]
    fn a_daily_period_starts_at_its_utc_time_and_before_it_belongs_to_yesterday() {
        let every = Every::daily_at(3, 0).expect("valid");
        // 2026-12-01T00:00:00Z
        let midnight = 1_796_083_200_000;
        let three = midnight + 3 * 3_600_000;
        assert_eq!(every.period_start(three), three);
        assert_eq!(every.period_start(three + 5 * 3_600_000), three);
        assert_eq!(every.period_start(three - 1), three - DAY_MS);
        assert_eq!(every.next_start(three - 1), three);
        assert_eq!(every.to_string(), "daily at 03:00 UTC");
    }

    #[test]
    fn bad_schedules_and_names_are_refused() {
        assert!(Every::interval(Duration::from_millis(10)).is_err());
        assert!(Every::daily_at(24, 0).is_err());
        assert!(Every::daily_at(0, 60).is_err());
        let every = Every::daily_at(0, 0).expect("valid");
        assert!(RepeatingJob::new("has space", every, |_| NewJob::new("k", "")).is_err());
    }

    #[test]
    fn the_job_of_a_period_has_a_deterministic_id() {
        let every = Every::interval(Duration::from_secs(60)).expect("valid");
        let r = RepeatingJob::new("reconcile", every, |_| NewJob::new("t.reconcile", ""))
            .expect("valid");
        let record = r.record(120_000, "reconcile:120000");
        let status = RepeatingStatus::parse("reconcile".into(), &record);
        assert_eq!(status.schedule, "every 60000ms");
        assert_eq!(
            (status.last_period_ms, status.last_job_id.as_str()),
            (120_000, "reconcile:120000")
        );
    }
}
