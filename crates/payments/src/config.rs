//! The settings the gateway and the payment-scheduler both read, so both sides
//! agree on the bank and on the checks: [`BankConfig`] (`BANK_*`) and
//! [`ScheduleConfig`] (`PAYMENT_CHECK_DELAY_*`, `PAYMENT_MAX_CHECKS`).

use std::time::Duration;

use queue_core::Priority;
use service::Secret;
use service::config::{self, ConfigError, Vars};
use store::payments::PaymentStatus;

use crate::schedule::lane;

/// The simulator of the demo stack.
pub const DEFAULT_BANK_URL: &str = "http://127.0.0.1:9200";
pub const DEFAULT_BANK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DELAY_PENDING: Duration = Duration::from_secs(2 * 60);
pub const DEFAULT_DELAY_PROCESSING: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_DELAY_ACTIVE: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_MAX_CHECKS: u32 = 20;

/// How to reach the bank.
#[derive(Debug, Clone)]
pub struct BankConfig {
    /// `BANK_URL`: the bank API's base URL, without a route.
    pub url: String,
    /// `BANK_API_KEY`: sent as a bearer token when set.
    pub api_key: Option<Secret>,
    /// `BANK_TIMEOUT`: one call, connection included.
    pub timeout: Duration,
}

impl BankConfig {
    /// Reads `BANK_URL`, `BANK_API_KEY` and `BANK_TIMEOUT`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let url = config::url(vars, "BANK_URL", DEFAULT_BANK_URL, &["http", "https"])?;
        let timeout = config::duration(vars, "BANK_TIMEOUT", DEFAULT_BANK_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "BANK_TIMEOUT",
                "must be greater than zero",
            ));
        }
        Ok(Self {
            url: url.expose().trim_end_matches('/').to_owned(),
            api_key: config::secret(vars, "BANK_API_KEY"),
            timeout,
        })
    }
}

/// When checks run: the delay of the next check by status (each status has
/// its lane, [`lane`]), and the most checks a payment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// `PAYMENT_CHECK_DELAY_PENDING` (2m): next check of a pending payment, high lane.
    pub delay_pending: Duration,
    /// `PAYMENT_CHECK_DELAY_PROCESSING` (5m): normal lane.
    pub delay_processing: Duration,
    /// `PAYMENT_CHECK_DELAY_ACTIVE` (15m): low lane.
    pub delay_active: Duration,
    /// `PAYMENT_MAX_CHECKS` (20): after this many checks without a final
    /// status, the payment is flagged for an operator and checks stop.
    pub max_checks: u32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            delay_pending: DEFAULT_DELAY_PENDING,
            delay_processing: DEFAULT_DELAY_PROCESSING,
            delay_active: DEFAULT_DELAY_ACTIVE,
            max_checks: DEFAULT_MAX_CHECKS,
        }
    }
}

impl ScheduleConfig {
    /// Reads `PAYMENT_CHECK_DELAY_PENDING`, `_PROCESSING`, `_ACTIVE` and `PAYMENT_MAX_CHECKS`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let max_checks = config::integer(vars, "PAYMENT_MAX_CHECKS", DEFAULT_MAX_CHECKS)?;
        if !(1..=10_000).contains(&max_checks) {
            return Err(ConfigError::new(
                "PAYMENT_MAX_CHECKS",
                "must be between 1 and 10000",
            ));
        }
        Ok(Self {
            delay_pending: config::duration(
                vars,
                "PAYMENT_CHECK_DELAY_PENDING",
                DEFAULT_DELAY_PENDING,
            )?,
            delay_processing: config::duration(
                vars,
                "PAYMENT_CHECK_DELAY_PROCESSING",
                DEFAULT_DELAY_PROCESSING,
            )?,
            delay_active: config::duration(
                vars,
                "PAYMENT_CHECK_DELAY_ACTIVE",
                DEFAULT_DELAY_ACTIVE,
            )?,
            max_checks,
        })
    }

    /// The delay of the check after one that saw `status`; None for a final
    /// status (checks end). Each lane has its delay; the lane itself is the
    /// job's, applied where the check job is built (`jobs::rows::check_job`).
    pub fn next_delay(&self, status: PaymentStatus) -> Option<Duration> {
        Some(match lane(status)? {
            Priority::High => self.delay_pending,
            Priority::Normal => self.delay_processing,
            Priority::Low => self.delay_active,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_the_delay_of_its_lane_and_a_final_one_ends_the_checks() {
        let s = ScheduleConfig::default();
        assert_eq!(
            s.next_delay(PaymentStatus::Pending),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            s.next_delay(PaymentStatus::Processing),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            s.next_delay(PaymentStatus::Active),
            Some(Duration::from_secs(900))
        );
        for end in [
            PaymentStatus::Completed,
            PaymentStatus::Cancelled,
            PaymentStatus::Expired,
        ] {
            assert_eq!(s.next_delay(end), None);
            assert_eq!(lane(end), None);
        }
        assert_eq!(s.max_checks, 20);
    }

    #[test]
    fn every_variable_is_read_and_the_key_never_prints() {
        let vars = [
            ("BANK_URL", "https://bank.example/api/"),
            ("BANK_API_KEY", "bank-secret"),
            ("BANK_TIMEOUT", "3s"),
            ("PAYMENT_CHECK_DELAY_PENDING", "20ms"),
            ("PAYMENT_CHECK_DELAY_PROCESSING", "50ms"),
            ("PAYMENT_CHECK_DELAY_ACTIVE", "1s"),
            ("PAYMENT_MAX_CHECKS", "5"),
        ];
        let bank = BankConfig::from_vars(&vars).expect("valid");
        assert_eq!(bank.url, "https://bank.example/api");
        assert_eq!(bank.timeout, Duration::from_secs(3));
        assert!(!format!("{bank:?}").contains("bank-secret"));
        let s = ScheduleConfig::from_vars(&vars).expect("valid");
        assert_eq!(
            s,
            ScheduleConfig {
                delay_pending: Duration::from_millis(20),
                delay_processing: Duration::from_millis(50),
                delay_active: Duration::from_secs(1),
                max_checks: 5,
            }
        );
        let none: [(&str, &str); 0] = [];
        let bank = BankConfig::from_vars(&none).expect("defaults are valid");
        assert_eq!(
            (bank.url.as_str(), bank.timeout, bank.api_key.is_none()),
            (DEFAULT_BANK_URL, DEFAULT_BANK_TIMEOUT, true)
        );
        assert_eq!(
            ScheduleConfig::from_vars(&none).expect("defaults are valid"),
            ScheduleConfig::default()
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("BANK_URL", "ftp://bank"),
            ("BANK_TIMEOUT", "0s"),
            ("PAYMENT_CHECK_DELAY_PENDING", "2"),
            ("PAYMENT_MAX_CHECKS", "0"),
        ] {
            let vars = [(var, value)];
            let err = BankConfig::from_vars(&vars)
                .map(drop)
                .and_then(|()| ScheduleConfig::from_vars(&vars).map(drop))
                .expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
