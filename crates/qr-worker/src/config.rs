//! The worker's settings: its own variables (`STORAGE_DIR`,
//! `STORAGE_TEMP_MAX_AGE`, `STORAGE_SWEEP_INTERVAL`, `QR_SIZE`, `QR_MARGIN`,
//! `QR_ECC`, `QR_RENDER_THREADS`, `QR_BATCH_MAX`, `QR_RECONCILE_INTERVAL`, `QR_RECONCILE_AFTER`, `QR_RECONCILE_BATCH`)
//! on top of the `service` kit's base and per-queue
//! settings. Read from the environment only by `main`; tests build a [`Config`]
//! directly or from a map.

use queue_core::WorkerConfig;
use service::config::{self, BaseConfig, ConfigError, ReconcileConfig, StorageConfig, Vars};

use crate::batch::BatchOptions;
use crate::render::RenderOptions;

/// `HEALTH_ADDR` is `127.0.0.1:9101` unless set.
pub const DEFAULT_HEALTH_PORT: u16 = 9101;
pub use service::config::{
    DEFAULT_RECONCILE_AFTER, DEFAULT_RECONCILE_BATCH, DEFAULT_RECONCILE_INTERVAL,
};

/// Settings of the QR worker.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`, `RSQ_PREFIX`, `DATABASE_URL`, `HEALTH_ADDR`.
    pub base: BaseConfig,
    /// `QR_CONCURRENCY`, `QR_MAX_ATTEMPTS`, `QR_JOB_TIMEOUT`, ... over the
    /// `jobs::QR` catalogue defaults.
    pub worker: WorkerConfig,
    /// `STORAGE_DIR`, `STORAGE_TEMP_MAX_AGE`, `STORAGE_SWEEP_INTERVAL`.
    pub storage: StorageConfig,
    /// `QR_SIZE`, `QR_MARGIN`, `QR_ECC`.
    pub qr: RenderOptions,
    /// `QR_RENDER_THREADS`, `QR_BATCH_MAX`: how the jobs in flight are
    /// batched and how many threads render a batch (`crate::batch`).
    pub batch: BatchOptions,
    /// `QR_RECONCILE_INTERVAL`, `_AFTER`, `_BATCH`: a person still pending
    /// `after` its registration gets its QR job enqueued again (with the same
    /// key: never a second job), checked every `interval`, `batch` at a time.
    pub reconcile: ReconcileConfig,
}

impl Config {
    /// Reads and validates every setting; unset or blank variables take their defaults.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let defaults = RenderOptions::default();
        let qr = RenderOptions {
            size: config::integer(vars, "QR_SIZE", defaults.size)?,
            margin: config::integer(vars, "QR_MARGIN", defaults.margin)?,
            ecc: config::parse(vars, "QR_ECC", defaults.ecc)?,
        };
        RenderOptions::check_size(qr.size).map_err(|rule| ConfigError::new("QR_SIZE", rule))?;
        RenderOptions::check_margin(qr.margin)
            .map_err(|rule| ConfigError::new("QR_MARGIN", rule))?;
        let batch_defaults = BatchOptions::default();
        let batch = BatchOptions {
            render_threads: config::nonzero(
                vars,
                "QR_RENDER_THREADS",
                batch_defaults.render_threads,
            )?,
            max_jobs: config::nonzero(vars, "QR_BATCH_MAX", batch_defaults.max_jobs)?,
        };
        let worker = config::worker_config(vars, &jobs::QR)?;
        let storage = config::storage_config(vars, &jobs::QR, &worker)?;
        let reconcile = config::reconcile_config(vars, &jobs::QR)?;
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker,
            storage,
            qr,
            batch,
            reconcile,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::render::EccLevel;

    // The kit's own settings (base, worker, storage, reconciler) have their
    // defaults and rules tested in `service::config`; here, what this worker adds.
    #[test]
    fn defaults_suit_a_laptop() {
        let none: [(&str, &str); 0] = [];
        let c = Config::from_vars(&none).expect("defaults are valid");
        assert_eq!(c.base.health_addr.to_string(), "127.0.0.1:9101");
        assert_eq!(c.qr, RenderOptions::default());
        assert_eq!((c.qr.size, c.qr.margin, c.qr.ecc), (512, 4, EccLevel::M));
    }

    #[test]
    fn every_variable_is_read() {
        let c = Config::from_vars(&[
            ("REDIS_URL", "rediss://u:pw@redis:6380/1"),
            ("RSQ_PREFIX", "staging"),
            ("DATABASE_URL", "postgresql://app:pw@db/app"),
            ("STORAGE_DIR", "/var/lib/rsq"),
            ("STORAGE_TEMP_MAX_AGE", "1h"),
            ("STORAGE_SWEEP_INTERVAL", "30s"),
            ("HEALTH_ADDR", "0.0.0.0:0"),
            ("QR_CONCURRENCY", "3"),
            ("QR_JOB_TIMEOUT", "10s"),
            ("QR_SIZE", "256"),
            ("QR_MARGIN", "2"),
            ("QR_ECC", "h"),
            ("QR_RENDER_THREADS", "1"),
            ("QR_BATCH_MAX", "16"),
            ("QR_RECONCILE_INTERVAL", "1m"),
            ("QR_RECONCILE_AFTER", "2m"),
            ("QR_RECONCILE_BATCH", "100"),
        ])
        .expect("valid");
        assert_eq!(c.base.redis_prefix, "staging");
        assert_eq!(c.storage.dir, PathBuf::from("/var/lib/rsq"));
        assert_eq!(c.storage.temp_max_age, Duration::from_secs(3600));
        assert_eq!(c.storage.sweep_interval, Duration::from_secs(30));
        assert_eq!(c.base.health_addr.port(), 0);
        assert_eq!(c.worker.concurrency.get(), 3);
        assert_eq!(c.worker.job_timeout, std::time::Duration::from_secs(10));
        assert_eq!((c.qr.size, c.qr.margin, c.qr.ecc), (256, 2, EccLevel::H));
        assert_eq!(
            (c.batch.render_threads.get(), c.batch.max_jobs.get()),
            (1, 16)
        );
        assert_eq!(
            (c.reconcile.interval, c.reconcile.after, c.reconcile.batch),
            (Duration::from_secs(60), Duration::from_secs(120), 100)
        );
    }

    #[test]
    fn a_bad_value_is_refused_with_the_variable_and_the_rule() {
        for (var, value, rule) in [
            ("QR_ECC", "X", "L, M, Q, H"),
            ("QR_SIZE", "big", "whole number"),
            ("QR_SIZE", "10", "between 21 and 4096"),
            ("QR_MARGIN", "100", "at most 64"),
            ("QR_RENDER_THREADS", "0", "at least 1"),
            ("QR_BATCH_MAX", "0", "at least 1"),
            ("QR_RECONCILE_BATCH", "0", "between 1 and 10000"),
        ] {
            let err = Config::from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var);
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(rule), "{text}");
        }
    }

    #[test]
    fn passwords_never_print() {
        let c = Config::from_vars(&[
            ("REDIS_URL", "redis://:redispw@h"),
            ("DATABASE_URL", "postgres://u:dbpw@h/db"),
        ])
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("redispw") && !shown.contains("dbpw"),
            "{shown}"
        );
        let err =
            Config::from_vars(&[("DATABASE_URL", "mysql://u:dbpw@h")]).expect_err("bad scheme");
        assert!(!err.to_string().contains("dbpw"), "{err}");
    }
}
