//! The daily cleanup: a repeating job (`payment.cleanup`, daily at
//! `PAYMENT_CLEANUP_AT` UTC by default, once per period however many replicas
//! run: the period's dedup key) that removes the check history older than
//! `PAYMENT_RETENTION` and trims every queue of the registry to the retention
//! its workers wrote into it (`{P}_RETAIN_*`: dead letters and completions past
//! their age or count; see `queue_core::Retention`). A queue no worker wrote a
//! retention for is left alone. Payments and movements are records, never
//! removed. Each run is logged in `payment_cleanup_runs`; a redelivered run
//! deletes nothing new.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use jobs::JobHandler;
use jobs::v1::PaymentCleanup;
use queue_core::{Admin, Broker, Every, Job, JobError, RepeatingJob};
use store::PgPool;
use store::payments;
use tracing::{debug, info};

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
    /// Over every queue.
    pub dead_letters: u64,
    /// Over every queue.
    pub completions: u64,
}

/// Runs `payment.cleanup` jobs.
#[derive(Debug, Clone)]
pub struct Cleanup {
    pool: PgPool,
    admin: Admin,
    retention: Duration,
}

impl Cleanup {
    /// Removes the check history older than `retention`, and trims the queues
    /// under `broker`'s prefix.
    pub fn new(pool: PgPool, broker: Broker, retention: Duration) -> Self {
        Self {
            pool,
            admin: Admin::new(broker),
            retention,
        }
    }

    /// Removes what is past its retention and logs the run for `period`.
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
        let mut cleaned = Cleaned {
            checks,
            ..Cleaned::default()
        };
        for queue in self.admin.queues().await.context("listing the queues")? {
            let name = queue.name().to_owned();
            let Some(retention) = self
                .admin
                .retention(&queue)
                .await
                .with_context(|| format!("reading the retention of {name}"))?
            else {
                debug!(queue.name = name, "no worker wrote a retention; left alone");
                continue;
            };
            let trimmed = self
                .admin
                .trim(&queue, &retention)
                .await
                .with_context(|| format!("trimming {name}"))?;
            if trimmed != queue_core::Trimmed::default() {
                info!(
                    queue.name = name,
                    cleanup.dead_letters_deleted = trimmed.dead_letters,
                    cleanup.completions_deleted = trimmed.completions,
                    "queue trimmed to its retention"
                );
            }
            cleaned.dead_letters += trimmed.dead_letters;
            cleaned.completions += trimmed.completions;
        }
        payments::record_cleanup(&mut conn, period, checks, cleaned.dead_letters)
            .await
            .context("recording the cleanup run")?;
        Ok(cleaned)
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
            cleanup.completions_deleted = done.completions,
            retention_s = self.retention.as_secs(),
            "daily cleanup done"
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
