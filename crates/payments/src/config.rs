//! The settings the gateway and the payment-scheduler both read, so both sides
//! agree on the bank and on the checks: [`BankConfig`] (`BANK_*`, and
//! `BNB_*` with `BANK_PROVIDER=bnb`) and [`ScheduleConfig`]
//! (`PAYMENT_CHECK_DELAY_*`, `PAYMENT_MAX_CHECKS`).

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
/// How long a BNB token is trusted when it carries no `exp` claim.
pub const DEFAULT_BNB_TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// How to reach the bank.
#[derive(Debug, Clone)]
pub struct BankConfig {
    /// `BANK_URL`: the simulator contract's base URL, without a route.
    pub url: String,
    /// `BANK_API_KEY`: sent as a bearer token when set.
    pub api_key: Option<Secret>,
    /// `BANK_TIMEOUT`: one call, connection included (BNB's too).
    pub timeout: Duration,
    /// `BANK_PROVIDER=bnb`: BNB "QR Simple" instead of the simulator's contract.
    pub bnb: Option<BnbConfig>,
}

/// The bank behind `BANK_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankProvider {
    /// `sim`: the contract `upstream-sim` serves at `BANK_URL` (the demo's).
    Sim,
    /// `bnb`: BNB "QR Simple" at `BNB_API_URL`.
    Bnb,
}

impl std::str::FromStr for BankProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sim" => Ok(Self::Sim),
            "bnb" => Ok(Self::Bnb),
            _ => Err("must be sim or bnb".to_owned()),
        }
    }
}

/// BNB "QR Simple" (`BNB_*`): where it is and the credentials it issued.
#[derive(Debug, Clone)]
pub struct BnbConfig {
    /// `BNB_API_URL`: base of the QR calls (`{url}/QRSimple.API/api/v1/main/...`).
    pub api_url: String,
    /// `BNB_AUTH_URL`: base of the token call
    /// (`{url}/ClientAuthentication.API/api/v1/auth/token`); `BNB_API_URL` when unset.
    pub auth_url: String,
    /// `BNB_ACCOUNT_ID`, as the bank issued it.
    pub account_id: Secret,
    /// `BNB_AUTHORIZATION_ID`, as the bank issued it.
    pub authorization_id: Secret,
    /// `BNB_TOKEN_LIFETIME`: how long a token without an `exp` claim is used.
    pub token_lifetime: Duration,
    /// `BNB_DESTINATION_ACCOUNT_ID`: the account credited, when the bank
    /// issued several; unset: the bank's default.
    pub destination_account_id: Option<String>,
}

impl BnbConfig {
    /// The bank at `url` (token and QR calls alike) with these credentials
    /// and the defaults of the optional variables.
    pub fn new(url: &str, account_id: &str, authorization_id: &str) -> Self {
        Self {
            api_url: url.trim_end_matches('/').to_owned(),
            auth_url: url.trim_end_matches('/').to_owned(),
            account_id: Secret::new(account_id),
            authorization_id: Secret::new(authorization_id),
            token_lifetime: DEFAULT_BNB_TOKEN_LIFETIME,
            destination_account_id: None,
        }
    }

    /// Reads the `BNB_*` variables; the URL and both credentials are required.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            config::secret(vars, name)
                .ok_or_else(|| ConfigError::new(name, "is required with BANK_PROVIDER=bnb"))
        };
        required("BNB_API_URL")?;
        let api_url = config::url(vars, "BNB_API_URL", "", &["http", "https"])?;
        let api_url = api_url.expose().trim_end_matches('/').to_owned();
        let auth_url = match config::optional(vars, "BNB_AUTH_URL") {
            None => api_url.clone(),
            Some(_) => config::url(vars, "BNB_AUTH_URL", "", &["http", "https"])?
                .expose()
                .trim_end_matches('/')
                .to_owned(),
        };
        let token_lifetime =
            config::duration(vars, "BNB_TOKEN_LIFETIME", DEFAULT_BNB_TOKEN_LIFETIME)?;
        if token_lifetime.is_zero() {
            return Err(ConfigError::new(
                "BNB_TOKEN_LIFETIME",
                "must be greater than zero",
            ));
        }
        Ok(Self {
            api_url,
            auth_url,
            account_id: required("BNB_ACCOUNT_ID")?,
            authorization_id: required("BNB_AUTHORIZATION_ID")?,
            token_lifetime,
            destination_account_id: config::optional(vars, "BNB_DESTINATION_ACCOUNT_ID"),
        })
    }
}

impl BankConfig {
    /// Reads `BANK_PROVIDER`, `BANK_URL`, `BANK_API_KEY`, `BANK_TIMEOUT` and,
    /// for `bnb`, the `BNB_*` variables ([`BnbConfig::from_vars`]).
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let provider = config::parse(vars, "BANK_PROVIDER", BankProvider::Sim)?;
        let url = config::url(vars, "BANK_URL", DEFAULT_BANK_URL, &["http", "https"])?;
        let timeout = config::duration(vars, "BANK_TIMEOUT", DEFAULT_BANK_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "BANK_TIMEOUT",
                "must be greater than zero",
            ));
        }
        let bnb = match provider {
            BankProvider::Sim => None,
            BankProvider::Bnb => Some(BnbConfig::from_vars(vars)?),
        };
        Ok(Self {
            url: url.expose().trim_end_matches('/').to_owned(),
            api_key: config::secret(vars, "BANK_API_KEY"),
            timeout,
            bnb,
        })
    }

    /// The provider this configuration names.
    pub fn provider(&self) -> BankProvider {
        if self.bnb.is_some() {
            BankProvider::Bnb
        } else {
            BankProvider::Sim
        }
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
    fn bnb_reads_its_variables_and_never_prints_the_credentials() {
        let vars = [
            ("BANK_PROVIDER", "bnb"),
            ("BNB_API_URL", "http://test.bnb.com.bo/"),
            ("BNB_ACCOUNT_ID", "acc-secret=="),
            ("BNB_AUTHORIZATION_ID", "auth-secret*"),
            ("BNB_TOKEN_LIFETIME", "10m"),
        ];
        let bank = BankConfig::from_vars(&vars).expect("valid");
        assert_eq!(bank.provider(), BankProvider::Bnb);
        let bnb = bank.bnb.as_ref().expect("bnb");
        assert_eq!(bnb.api_url, "http://test.bnb.com.bo");
        assert_eq!(
            bnb.auth_url, bnb.api_url,
            "the token comes from the API's host"
        );
        assert_eq!(
            (bnb.account_id.expose(), bnb.authorization_id.expose()),
            ("acc-secret==", "auth-secret*")
        );
        assert_eq!(bnb.token_lifetime, Duration::from_secs(600));
        assert_eq!(bnb.destination_account_id, None);
        let printed = format!("{bank:?}");
        assert!(!printed.contains("acc-secret") && !printed.contains("auth-secret"));
        let apart = [
            ("BANK_PROVIDER", "BNB"),
            ("BNB_API_URL", "https://marketapi.bnb.com.bo"),
            ("BNB_AUTH_URL", "https://auth.bnb.example/"),
            ("BNB_ACCOUNT_ID", "a"),
            ("BNB_AUTHORIZATION_ID", "b"),
            ("BNB_DESTINATION_ACCOUNT_ID", "2"),
        ];
        let bnb = BankConfig::from_vars(&apart)
            .expect("valid")
            .bnb
            .expect("bnb");
        assert_eq!(bnb.auth_url, "https://auth.bnb.example");
        assert_eq!(bnb.destination_account_id.as_deref(), Some("2"));
        assert_eq!(bnb.token_lifetime, DEFAULT_BNB_TOKEN_LIFETIME);
        // The sim provider needs none of them.
        let sim = BankConfig::from_vars(&[("BANK_PROVIDER", "sim")]).expect("valid");
        assert_eq!(sim.provider(), BankProvider::Sim);
    }

    #[test]
    fn bnb_without_a_credential_names_the_missing_variable() {
        let all = [
            ("BANK_PROVIDER", "bnb"),
            ("BNB_API_URL", "http://test.bnb.com.bo"),
            ("BNB_ACCOUNT_ID", "a"),
            ("BNB_AUTHORIZATION_ID", "b"),
        ];
        for missing in ["BNB_API_URL", "BNB_ACCOUNT_ID", "BNB_AUTHORIZATION_ID"] {
            let vars: Vec<(&str, &str)> =
                all.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = BankConfig::from_vars(&vars.as_slice()).expect_err(missing);
            assert_eq!(err.var, missing, "{err}");
            assert!(err.reason.contains("BANK_PROVIDER=bnb"), "{err}");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("BANK_URL", "ftp://bank"),
            ("BANK_TIMEOUT", "0s"),
            ("BANK_PROVIDER", "bisa"),
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
