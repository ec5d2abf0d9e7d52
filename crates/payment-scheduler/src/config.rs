//! The scheduler's settings: its own variables (`PAYMENT_RETENTION`,
//! `PAYMENT_CLEANUP_*`, `PAYMENT_RECONCILE_*`) and those it shares with the
//! gateway (`BANK_*`, `PAYMENT_CHECK_DELAY_*`, `PAYMENT_MAX_CHECKS`: the
//! `payments` crate reads them for both), on top of the `service` kit's base and
//! the `PAYMENT_CHECKS_*` queue settings.

use std::time::Duration;

use queue_core::{Every, WorkerConfig};
use service::config::{self, BaseConfig, ConfigError, ReconcileConfig, Vars};

pub use payments::config::{BankConfig, ScheduleConfig};

/// `HEALTH_ADDR` is `127.0.0.1:9104` unless set.
pub const DEFAULT_HEALTH_PORT: u16 = 9104;
/// The first bank call and three retries (2 s, 4 s, 8 s with the default backoff).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_CLEANUP_AT: (u8, u8) = (3, 0);

/// The cleanup of old bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupConfig {
    /// `PAYMENT_CLEANUP_AT` (`03:00`, UTC) or, when set, `PAYMENT_CLEANUP_INTERVAL`.
    pub every: Every,
    /// `PAYMENT_RETENTION` (30 days): check history older than this is
    /// removed; also the payment queue's dead-letter age unless a
    /// `RETAIN_DEAD_LETTERS_MAX_AGE` variable says otherwise.
    pub retention: Duration,
}

impl CleanupConfig {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let every = match config::optional(vars, "PAYMENT_CLEANUP_INTERVAL") {
            Some(_) => {
                let d = config::duration(vars, "PAYMENT_CLEANUP_INTERVAL", Duration::ZERO)?;
                Every::interval(d).map_err(|_| {
                    ConfigError::new(
                        "PAYMENT_CLEANUP_INTERVAL",
                        "must be between 1s and 366 days",
                    )
                })?
            }
            None => {
                let at = config::string(vars, "PAYMENT_CLEANUP_AT", "03:00");
                let (h, m) = parse_hh_mm(&at).ok_or_else(|| {
                    ConfigError::new(
                        "PAYMENT_CLEANUP_AT",
                        format!("{at:?} is not a UTC time of day such as 03:00"),
                    )
                })?;
                Every::daily_at(h, m)
                    .map_err(|e| ConfigError::new("PAYMENT_CLEANUP_AT", e.to_string()))?
            }
        };
        let retention = config::duration(vars, "PAYMENT_RETENTION", DEFAULT_RETENTION)?;
        if retention.is_zero() {
            return Err(ConfigError::new(
                "PAYMENT_RETENTION",
                "must be greater than zero",
            ));
        }
        Ok(Self { every, retention })
    }
}

/// `"03:00"` -> (3, 0).
fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 23 && m <= 59).then_some((h, m))
}

/// Settings of the payment scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`, `RSQ_PREFIX`, `DATABASE_URL`, `HEALTH_ADDR`.
    pub base: BaseConfig,
    /// `PAYMENT_CHECKS_CONCURRENCY`, `_MAX_ATTEMPTS` (default 4: the first call
    /// and 3 retries), `_BACKOFF` (2s, doubling), `_RATE_LIMIT`, ... over the
    /// `jobs::PAYMENT_CHECKS` defaults.
    pub worker: WorkerConfig,
    pub bank: BankConfig,
    pub schedule: ScheduleConfig,
    pub cleanup: CleanupConfig,
    /// `PAYMENT_RECONCILE_INTERVAL`, `_AFTER`, `_BATCH`.
    pub reconcile: ReconcileConfig,
}

impl Config {
    /// Reads and validates every setting; unset or blank variables take their defaults.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let mut worker = config::worker_config(vars, &jobs::PAYMENT_CHECKS)?;
        if config::optional(vars, "PAYMENT_CHECKS_MAX_ATTEMPTS").is_none() {
            worker.max_attempts = DEFAULT_MAX_ATTEMPTS;
        }
        let cleanup = CleanupConfig::from_vars(vars)?;
        // Before the queue's retention was configurable, PAYMENT_RETENTION
        // trimmed its dead letters: it stays their default.
        if config::optional(vars, "PAYMENT_CHECKS_RETAIN_DEAD_LETTERS_MAX_AGE").is_none()
            && config::optional(vars, "RETAIN_DEAD_LETTERS_MAX_AGE").is_none()
        {
            worker.dlq_max_age = Some(cleanup.retention);
        }
        let bank = BankConfig::from_vars(vars)?;
        if bank.timeout >= worker.job_timeout {
            return Err(ConfigError::new(
                "BANK_TIMEOUT",
                format!(
                    "must be less than PAYMENT_CHECKS_JOB_TIMEOUT ({:?}), or the job times out before the call",
                    worker.job_timeout
                ),
            ));
        }
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker,
            bank,
            schedule: ScheduleConfig::from_vars(vars)?,
            cleanup,
            // `PAYMENT_RECONCILE_*`, not the queue's `PAYMENT_CHECKS_` prefix.
            reconcile: config::reconcile_config_prefixed(vars, "PAYMENT")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() {
        let none: [(&str, &str); 0] = [];
        let c = Config::from_vars(&none).expect("defaults are valid");
        assert_eq!(c.base.health_addr.port(), 9104);
        // The bank's and the schedule's own defaults are tested in `payments`.
        assert_eq!(c.bank.url, payments::config::DEFAULT_BANK_URL);
        assert_eq!(c.schedule, ScheduleConfig::default());
        assert_eq!(c.worker.max_attempts, 4, "one call and 3 retries");
        assert_eq!(c.worker.backoff.initial, Duration::from_secs(2));
        assert_eq!(c.worker.backoff.factor, 2.0);
        assert_eq!(c.cleanup.every, Every::daily_at(3, 0).expect("valid"));
        assert_eq!(c.cleanup.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.reconcile.after, Duration::from_secs(30));
        assert_eq!(c.worker.dlq_max_age, Some(c.cleanup.retention));
    }

    #[test]
    fn payment_retention_is_the_dead_letter_age_unless_a_retain_variable_is_set() {
        let week = Duration::from_secs(7 * 86_400);
        let c = Config::from_vars(&[("PAYMENT_RETENTION", "7days")]).expect("valid");
        assert_eq!(c.worker.dlq_max_age, Some(week));
        for var in [
            "PAYMENT_CHECKS_RETAIN_DEAD_LETTERS_MAX_AGE",
            "RETAIN_DEAD_LETTERS_MAX_AGE",
        ] {
            let vars = [("PAYMENT_RETENTION", "7days"), (var, "90days")];
            let c = Config::from_vars(&vars).expect("valid");
            assert_eq!(c.cleanup.retention, week, "{var}");
            assert_eq!(
                c.worker.dlq_max_age,
                Some(Duration::from_secs(90 * 86_400)),
                "{var}"
            );
        }
        let c = Config::from_vars(&[("RETAIN_DEAD_LETTERS_MAX_AGE", "unlimited")]).expect("valid");
        assert_eq!(c.worker.dlq_max_age, None);
    }

    #[test]
    fn every_own_variable_is_read_and_the_key_never_prints() {
        // Besides the scheduler's own, one variable of the bank and one of
        // the schedule, to show they are read (`payments` tests them all).
        let vars = [
            ("BANK_API_KEY", "bank-secret"),
            ("PAYMENT_MAX_CHECKS", "5"),
            ("PAYMENT_RETENTION", "7days"),
            ("PAYMENT_CLEANUP_AT", "23:45"),
            ("PAYMENT_CHECKS_MAX_ATTEMPTS", "2"),
            ("PAYMENT_CHECKS_RATE_LIMIT", "10/1s"),
            ("PAYMENT_RECONCILE_AFTER", "1m"),
        ];
        let c = Config::from_vars(&vars).expect("valid");
        assert!(c.bank.api_key.is_some());
        assert_eq!(c.schedule.max_checks, 5);
        assert_eq!(c.cleanup.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.cleanup.every, Every::daily_at(23, 45).expect("valid"));
        assert_eq!(c.worker.max_attempts, 2);
        assert!(c.worker.rate_limit.is_some());
        assert_eq!(c.reconcile.after, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("bank-secret"));
        let every = Config::from_vars(&[("PAYMENT_CLEANUP_INTERVAL", "2s")]).expect("valid");
        assert_eq!(
            every.cleanup.every,
            Every::interval(Duration::from_secs(2)).expect("valid")
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("BANK_URL", "ftp://bank"),
            // The scheduler's own rule: a call shorter than its job.
            ("BANK_TIMEOUT", "5m"),
            ("PAYMENT_MAX_CHECKS", "0"),
            ("PAYMENT_RETENTION", "forever"),
            ("PAYMENT_CLEANUP_AT", "3am"),
            ("PAYMENT_CLEANUP_AT", "24:00"),
            ("PAYMENT_CLEANUP_INTERVAL", "10ms"),
            ("PAYMENT_RECONCILE_BATCH", "0"),
            ("PAYMENT_CHECKS_RATE_LIMIT", "fast"),
        ] {
            let err = Config::from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
