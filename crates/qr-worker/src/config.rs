//! The worker's settings: typed, validated before any I/O, read from the
//! environment only by `main` (tests build a [`Config`] directly).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use queue_core::WorkerConfig;
use queue_core::broker::redact_url;

use crate::render::{EccLevel, RenderOptions};

/// Settings of the QR worker.
#[derive(Clone)]
pub struct Config {
    /// `REDIS_URL`: `redis://`, `rediss://` (TLS) or `redis+unix://`; may carry a password.
    pub redis_url: String,
    /// `RSQ_PREFIX`: key prefix of every queue.
    pub redis_prefix: String,
    /// `DATABASE_URL`: `postgres://user:password@host:port/db`.
    pub database_url: String,
    /// `STORAGE_DIR`: root of the local storage the QR paths are relative to.
    pub storage_dir: PathBuf,
    /// `HEALTH_ADDR`: where `/healthz`, `/readyz` and `/metrics` are served; port 0
    /// picks a free port (see [`crate::QrWorker::health_addr`]).
    pub health_addr: SocketAddr,
    /// `QR_SIZE`, `QR_MARGIN`, `QR_ECC`.
    pub qr: RenderOptions,
    /// Runner settings; `QR_CONCURRENCY` sets `worker.concurrency`. Attempts and the
    /// job timeout default to the `jobs::QR` catalogue entry.
    pub worker: WorkerConfig,
}

/// A setting that breaks its rule; names the variable so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable";
pub const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9101";

impl Default for Config {
    /// Laptop defaults: local Redis and PostgreSQL, `./storage`, health on 9101.
    fn default() -> Self {
        Self {
            redis_url: DEFAULT_REDIS_URL.into(),
            redis_prefix: queue_core::keys::DEFAULT_PREFIX.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            storage_dir: PathBuf::from("./storage"),
            health_addr: DEFAULT_HEALTH_ADDR.parse().expect("valid default address"),
            qr: RenderOptions::default(),
            worker: jobs::QR.worker_config(),
        }
    }
}

impl std::fmt::Debug for Config {
    /// URLs are shown with their passwords masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("database_url", &redact_url(&self.database_url))
            .field("storage_dir", &self.storage_dir)
            .field("health_addr", &self.health_addr)
            .field("qr", &self.qr)
            .field("worker", &self.worker)
            .finish()
    }
}

impl Config {
    /// Reads the process environment. For `main` only.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Builds and validates a config from `var` (the environment in production, a
    /// map in tests). Unset or empty variables take their defaults.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        if let Some(v) = get("REDIS_URL") {
            c.redis_url = v;
        }
        if let Some(v) = get("RSQ_PREFIX") {
            c.redis_prefix = v;
        }
        if let Some(v) = get("DATABASE_URL") {
            c.database_url = v;
        }
        if let Some(v) = get("STORAGE_DIR") {
            c.storage_dir = PathBuf::from(v);
        }
        if let Some(v) = get("HEALTH_ADDR") {
            c.health_addr = v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "HEALTH_ADDR",
                    format!("{v:?} is not an IP:port address such as 127.0.0.1:9101"),
                )
            })?;
        }
        if let Some(v) = get("QR_CONCURRENCY") {
            c.worker.concurrency = v.trim().parse::<NonZeroUsize>().map_err(|_| {
                ConfigError::new(
                    "QR_CONCURRENCY",
                    format!("{v:?} is not a whole number of at least 1"),
                )
            })?;
        }
        if let Some(v) = get("QR_SIZE") {
            c.qr.size = number("QR_SIZE", &v)?;
        }
        if let Some(v) = get("QR_MARGIN") {
            c.qr.margin = number("QR_MARGIN", &v)?;
        }
        if let Some(v) = get("QR_ECC") {
            c.qr.ecc = v
                .parse::<EccLevel>()
                .map_err(|rule| ConfigError::new("QR_ECC", format!("{v:?} {rule}")))?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every setting; [`crate::run`] calls it before connecting anywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme(&self.redis_url).as_deref() {
            Some("redis" | "rediss" | "redis+unix" | "unix") => {}
            _ => {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    format!(
                        "{:?} must start with redis://, rediss:// or redis+unix://",
                        redact_url(&self.redis_url)
                    ),
                ));
            }
        }
        queue_core::keys::validate_prefix(&self.redis_prefix).map_err(|_| {
            ConfigError::new(
                "RSQ_PREFIX",
                format!(
                    "{:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ - :",
                    self.redis_prefix
                ),
            )
        })?;
        match scheme(&self.database_url).as_deref() {
            Some("postgres" | "postgresql") => {}
            _ => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    format!(
                        "{:?} must start with postgres:// or postgresql://",
                        redact_url(&self.database_url)
                    ),
                ));
            }
        }
        if self.storage_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("STORAGE_DIR", "must not be empty"));
        }
        self.qr.validate().map_err(|rule| {
            let var = if rule.starts_with("size") {
                "QR_SIZE"
            } else {
                "QR_MARGIN"
            };
            ConfigError::new(var, rule)
        })?;
        self.worker
            .validate()
            .map_err(|e| ConfigError::new("worker", e.to_string()))?;
        Ok(())
    }
}

fn number(var: &'static str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(var, format!("{value:?} is not a whole number")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_suit_a_laptop_and_follow_the_catalogue() {
        let c = from(&[]).expect("defaults are valid");
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.redis_prefix, "rsq");
        assert_eq!(c.storage_dir, PathBuf::from("./storage"));
        assert_eq!(c.health_addr.to_string(), "127.0.0.1:9101");
        assert_eq!(c.worker.concurrency.get(), jobs::QR.concurrency);
        assert_eq!(c.worker.max_attempts, jobs::QR.max_attempts);
        assert_eq!(c.qr, RenderOptions::default());
        assert_eq!((c.qr.size, c.qr.margin, c.qr.ecc), (512, 4, EccLevel::M));
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("REDIS_URL", "rediss://u:pw@redis:6380/1"),
            ("RSQ_PREFIX", "staging"),
            ("DATABASE_URL", "postgresql://app:pw@db/app"),
            ("STORAGE_DIR", "/var/lib/rsq"),
            ("HEALTH_ADDR", "0.0.0.0:0"),
            ("QR_CONCURRENCY", "3"),
            ("QR_SIZE", "256"),
            ("QR_MARGIN", "2"),
            ("QR_ECC", "h"),
        ])
        .expect("valid");
        assert_eq!(c.redis_prefix, "staging");
        assert_eq!(c.storage_dir, PathBuf::from("/var/lib/rsq"));
        assert_eq!(c.health_addr.port(), 0);
        assert_eq!(c.worker.concurrency.get(), 3);
        assert_eq!((c.qr.size, c.qr.margin, c.qr.ecc), (256, 2, EccLevel::H));
    }

    #[test]
    fn a_bad_value_is_refused_with_the_variable_and_the_rule() {
        for (var, value, rule) in [
            ("QR_ECC", "X", "L, M, Q, H"),
            ("QR_SIZE", "big", "whole number"),
            ("QR_SIZE", "10", "between 21 and 4096"),
            ("QR_MARGIN", "100", "at most 64"),
            ("QR_CONCURRENCY", "0", "at least 1"),
            ("HEALTH_ADDR", "localhost", "IP:port"),
            ("REDIS_URL", "http://x", "redis://"),
            ("DATABASE_URL", "mysql://x", "postgres://"),
            ("RSQ_PREFIX", "a b", "1 to 64"),
        ] {
            let err = from(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var);
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(rule), "{text}");
        }
    }

    #[test]
    fn passwords_never_print() {
        let c = from(&[
            ("REDIS_URL", "redis://:redispw@h"),
            ("DATABASE_URL", "postgres://u:dbpw@h/db"),
        ])
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("redispw") && !shown.contains("dbpw"),
            "{shown}"
        );
        let err = from(&[("DATABASE_URL", "mysql://u:dbpw@h")]).expect_err("bad scheme");
        assert!(!err.to_string().contains("dbpw"), "{err}");
    }
}
