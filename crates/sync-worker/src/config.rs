//! The worker's settings: its own variables (`WISPRO_URL`, `WISPRO_TOKEN`,
//! `WISPRO_TIMEOUT`, `SYNC_BCRYPT_COST`, `SYNC_HASH_THREADS`,
//! `SYNC_PROGRESS_EVERY`, `SYNC_PAGE_ATTEMPTS`, `SYNC_PAGE_BACKOFF`,
//! `SYNC_MAX_PASSES`) on top of the `service` kit's base and per-queue
//! settings (`WISPRO_SYNC_*`).

use std::num::{NonZeroU32, NonZeroUsize};
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
/// Tries of one page within a run: a page fails the job after 2+4+8+16 s of waits.
pub const DEFAULT_PAGE_ATTEMPTS: NonZeroU32 = NonZeroU32::new(5).expect("nonzero");
pub const DEFAULT_PAGE_BACKOFF: Duration = Duration::from_secs(2);
/// Most tries of a page (the backoff doubles each time).
pub const MAX_PAGE_ATTEMPTS: u32 = 20;
pub const DEFAULT_MAX_PASSES: NonZeroU32 = NonZeroU32::new(3).expect("nonzero");

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
    /// `SYNC_PAGE_ATTEMPTS`: tries of one page within a run, the first
    /// included, before the job fails (and is retried from that page).
    pub page_attempts: NonZeroU32,
    /// `SYNC_PAGE_BACKOFF`: the wait before a page's second try, doubled
    /// before each further one.
    pub page_backoff: Duration,
    /// `SYNC_MAX_PASSES`: passes over the pages at most, when Wispro's
    /// customer count changes during a pass.
    pub max_passes: NonZeroU32,
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
        let worker = config::worker_config(vars, &jobs::WISPRO_SYNC)?;
        let page_attempts: NonZeroU32 =
            config::nonzero(vars, "SYNC_PAGE_ATTEMPTS", DEFAULT_PAGE_ATTEMPTS)?;
        if page_attempts.get() > MAX_PAGE_ATTEMPTS {
            return Err(ConfigError::new(
                "SYNC_PAGE_ATTEMPTS",
                format!("must be at most {MAX_PAGE_ATTEMPTS}"),
            ));
        }
        let page_backoff = config::duration(vars, "SYNC_PAGE_BACKOFF", DEFAULT_PAGE_BACKOFF)?;
        // A page's retries happen within one job: they must fit in its timeout.
        let waits = page_waits(page_backoff, page_attempts);
        if waits >= worker.job_timeout {
            return Err(ConfigError::new(
                "SYNC_PAGE_BACKOFF",
                format!(
                    "the waits of one page's {page_attempts} tries ({waits:?}) must be shorter \
                     than WISPRO_SYNC_JOB_TIMEOUT ({:?})",
                    worker.job_timeout
                ),
            ));
        }
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker,
            wispro: WisproConfig {
                url: url.expose().trim_end_matches('/').to_owned(),
                token,
                timeout,
            },
            bcrypt_cost,
            hash_threads: config::nonzero(vars, "SYNC_HASH_THREADS", cores)?,
            progress_every,
            page_attempts,
            page_backoff,
            max_passes: config::nonzero(vars, "SYNC_MAX_PASSES", DEFAULT_MAX_PASSES)?,
            reconcile: config::reconcile_config(vars, &jobs::WISPRO_SYNC)?,
        })
    }
}

/// The wait before try `n` (2 or more) of a page: `backoff`, doubled per try.
pub fn page_wait(backoff: Duration, n: u32) -> Duration {
    backoff.saturating_mul(1 << n.saturating_sub(2).min(MAX_PAGE_ATTEMPTS))
}

/// Every wait of one page's `attempts` tries together.
fn page_waits(backoff: Duration, attempts: NonZeroU32) -> Duration {
    (2..=attempts.get()).map(|n| page_wait(backoff, n)).sum()
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
        assert_eq!(
            (c.page_attempts.get(), c.page_backoff, c.max_passes.get()),
            (5, Duration::from_secs(2), 3)
        );
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
            ("SYNC_PAGE_ATTEMPTS", "0"),
            ("SYNC_PAGE_ATTEMPTS", "21"),
            ("SYNC_PAGE_BACKOFF", "soon"),
            ("SYNC_MAX_PASSES", "0"),
        ] {
            let err = Config::from_vars(&[("WISPRO_TOKEN", "t"), (var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn a_page_waits_twice_as_long_before_each_try_and_the_waits_fit_in_the_job() {
        let backoff = Duration::from_secs(2);
        let waits: Vec<u64> = (2..=5).map(|n| page_wait(backoff, n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16]);
        assert_eq!(
            page_waits(backoff, DEFAULT_PAGE_ATTEMPTS),
            Duration::from_secs(30)
        );
        let err = Config::from_vars(&[
            ("WISPRO_TOKEN", "t"),
            ("SYNC_PAGE_BACKOFF", "1m"),
            ("SYNC_PAGE_ATTEMPTS", "6"),
        ])
        .expect_err("31 minutes of waits in a 15-minute job");
        assert_eq!(err.var, "SYNC_PAGE_BACKOFF", "{err}");
        assert!(err.to_string().contains("WISPRO_SYNC_JOB_TIMEOUT"), "{err}");
    }
}
