//! The payment cleanup: a repeating job (`payment.cleanup`, daily at
//! `PAYMENT_CLEANUP_AT` UTC by default, once per period however many replicas
//! run: the period's dedup key) that removes bookkeeping older than
//! `PAYMENT_RETENTION`: the check history and the queue's dead letters. Payments
//! and movements are records, never removed. Each run is logged in
//! `payment_cleanup_runs`; a redelivered run deletes nothing new.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use jobs::JobHandler;
use jobs::v1::PaymentCleanup;
use queue_core::{Broker, Every, Job, JobError, Queue, RepeatingJob};
use store::PgPool;
use store::payments;
use tracing::info;

/// The repeating job's name (its dedup key per period).
pub const NAME: &str = "payment-cleanup";

/// The name of the period starting at `start`: its day (`2026-12-04`) for a
/// daily cleanup, its start time otherwise.
pub fn period_name(every: Every, start: SystemTime) -> String {
    let start: DateTime<Utc> = start.into();
    match every {
        Every::DailyAt { .. } => start.format("%Y-%m-%d").to_string(),
        Every::Interval(_) => start.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// The repeating job to declare on the worker.
pub fn repeating_job(every: Every) -> queue_core::Result<RepeatingJob> {
    RepeatingJob::new(NAME, every, move |start| {
        jobs::new_job(&PaymentCleanup {
            day: period_name(every, start),
        })
    })
}

/// What one run removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleaned {
    pub checks: u64,
    pub dead_letters: u64,
}

/// Runs `payment.cleanup` jobs.
#[derive(Debug, Clone)]
pub struct Cleanup {
    pool: PgPool,
    broker: Broker,
    queue: Queue,
    retention: Duration,
}

impl Cleanup {
    pub fn new(pool: PgPool, broker: Broker, queue: Queue, retention: Duration) -> Self {
        Self {
            pool,
            broker,
            queue,
            retention,
        }
    }

    /// Removes what is older than the retention and logs the run for `period`.
    pub async fn run_once(&self, period: &str) -> anyhow::Result<Cleaned> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(self.retention).context("the retention")?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        let checks = payments::delete_checks_before(&mut conn, cutoff)
            .await
            .context("deleting old check history")?;
        // Dead-letter entry ids are the server's time of dead-lettering in ms.
        let mut redis = self
            .broker
            .connection()
            .await
            .context("connecting to Redis")?;
        let dead_letters: u64 = redis::cmd("XTRIM")
            .arg(self.queue.keys().dlq())
            .arg("MINID")
            .arg(cutoff.timestamp_millis().max(0))
            .query_async(&mut redis)
            .await
            .context("trimming old dead letters")?;
        payments::record_cleanup(&mut conn, period, checks, dead_letters)
            .await
            .context("recording the cleanup run")?;
        Ok(Cleaned {
            checks,
            dead_letters,
        })
    }
}

impl JobHandler<PaymentCleanup> for Cleanup {
    async fn handle(&self, msg: PaymentCleanup, job: Job) -> Result<(), JobError> {
        let done = self.run_once(&msg.day).await.map_err(JobError::Retry)?;
        info!(
            job.id = job.id(),
            cleanup.period = msg.day,
            cleanup.checks_deleted = done.checks,
            cleanup.dead_letters_deleted = done.dead_letters,
            retention_s = self.retention.as_secs(),
            "payment cleanup done"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_period_is_named_by_its_day() {
        // 2026-12-04T03:00:00Z
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_353_200);
        let daily = Every::daily_at(3, 0).expect("valid");
        assert_eq!(period_name(daily, start), "2026-12-04");
        let every = Every::interval(Duration::from_secs(2)).expect("valid");
        assert_eq!(period_name(every, start), "2026-12-04T03:00:00.000Z");
        assert_eq!(repeating_job(daily).expect("valid").every(), daily);
    }
}
