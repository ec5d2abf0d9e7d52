//! The worker's settings: its own variables (`WISPRO_URL`, `WISPRO_TOKEN`,
//! `WISPRO_TIMEOUT`, `SYNC_BCRYPT_COST`, `SYNC_HASH_THREADS`,
//! `SYNC_PROGRESS_EVERY`) on top of the `service` kit's base and per-queue
//! settings (`WISPRO_SYNC_*`).

use std::num::NonZeroUsize;
use std::time::Duration;

use queue_core::WorkerConfig;
use service::Secret;
use service::config::{self, BaseConfig, ConfigError, ReconcileConfig, Vars};

/// `HEALTH_ADDR` is `127.0.0.1:9103` unless set.
pub const DEFAULT_HEALTH_PORT: u16 = 9103;
/// The simulator of the demo stack.
pub const DEFAULT_WISPRO_URL: &str = "http://127.0.0.1:9200";
pub const DEFAULT_WISPRO_TIMEOUT: Duration = Duration::from_secs(30);
/// Laravel's default cost.
pub const DEFAULT_BCRYPT_COST: u32 = 10;
pub const DEFAULT_PROGRESS_EVERY: u32 = 10;

/// How to reach Wispro.
#[derive(Debug, Clone)]
pub struct WisproConfig {
    /// `WISPRO_URL`: the API's base URL (`/api/v1/...` is appended).
    pub url: String,
    /// `WISPRO_TOKEN`: sent as the bare `Authorization` header.
    pub token: Secret,
    /// `WISPRO_TIMEOUT`: one page request.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub base: BaseConfig,
    /// `WISPRO_SYNC_CONCURRENCY`, `WISPRO_SYNC_JOB_TIMEOUT` (15 min), ...
    pub worker: WorkerConfig,
    pub wispro: WisproConfig,
    /// `SYNC_BCRYPT_COST`: cost of the password hashes of created users (4 to 31).
    pub bcrypt_cost: u32,
    /// `SYNC_HASH_THREADS`: customers of a page handled at once, which is how
    /// many hashes run in parallel (default: the cores).
    pub hash_threads: NonZeroUsize,
    /// `SYNC_PROGRESS_EVERY`: a progress line every this many pages.
    pub progress_every: u32,
    /// `WISPRO_SYNC_RECONCILE_INTERVAL`, `_AFTER`, `_BATCH`: an active run
    /// that has not moved for `AFTER` gets its job again (same key).
    pub reconcile: ReconcileConfig,
}

impl Config {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let url = config::url(vars, "WISPRO_URL", DEFAULT_WISPRO_URL, &["http", "https"])?;
        let token = config::secret(vars, "WISPRO_TOKEN").ok_or_else(|| {
            ConfigError::new("WISPRO_TOKEN", "must be set (the Wispro API token)")
        })?;
        let timeout = config::duration(vars, "WISPRO_TIMEOUT", DEFAULT_WISPRO_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ConfigError::new("WISPRO_TIMEOUT", "must be longer than 0"));
        }
        let bcrypt_cost: u32 = config::integer(vars, "SYNC_BCRYPT_COST", DEFAULT_BCRYPT_COST)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(ConfigError::new(
                "SYNC_BCRYPT_COST",
                "must be between 4 and 31",
            ));
        }
        let cores = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        let progress_every: u32 =
            config::integer(vars, "SYNC_PROGRESS_EVERY", DEFAULT_PROGRESS_EVERY)?;
        if progress_every == 0 {
            return Err(ConfigError::new(
                "SYNC_PROGRESS_EVERY",
                "must be at least 1",
            ));
        }
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker: config::worker_config(vars, &jobs::WISPRO_SYNC)?,
            wispro: WisproConfig {
                url: url.expose().trim_end_matches('/').to_owned(),
                token,
                timeout,
            },
            bcrypt_cost,
            hash_threads: config::nonzero(vars, "SYNC_HASH_THREADS", cores)?,
            progress_every,
            reconcile: config::reconcile_config(vars, "WISPRO_SYNC")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_required_and_never_printed() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            Config::from_vars(&none).expect_err("no token").var,
            "WISPRO_TOKEN"
        );
        let c = Config::from_vars(&[("WISPRO_TOKEN", "tok-secret")]).expect("valid");
        assert_eq!(c.bcrypt_cost, 10);
        assert_eq!(c.worker.job_timeout, Duration::from_secs(15 * 60));
        assert_eq!(c.base.health_addr.port(), DEFAULT_HEALTH_PORT);
        assert!(!format!("{c:?}").contains("tok-secret"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("WISPRO_URL", "ftp://x"),
            ("WISPRO_TIMEOUT", "0s"),
            ("SYNC_BCRYPT_COST", "3"),
            ("SYNC_HASH_THREADS", "0"),
            ("SYNC_PROGRESS_EVERY", "0"),
        ] {
            let err = Config::from_vars(&[("WISPRO_TOKEN", "t"), (var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
