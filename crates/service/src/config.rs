//! Configuration read from variables: one [`Vars`] source (the process
//! environment in `main`, a map in tests), typed readers whose errors name the
//! variable and its rule, the settings every binary shares ([`BaseConfig`]) and
//! the per-queue worker settings ([`worker_config`]), read with one naming rule.
//!
//! Unset and blank variables take their defaults. Nothing here calls `set_var`,
//! and an error is a [`ConfigError`] carrying the variable: callers never
//! recover it from message text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use jobs::QueueSpec;
use queue_core::WorkerConfig;
use queue_core::broker::redact_url;
use telemetry::{LogFormat, TelemetryConfig};

/// A source of configuration variables.
pub trait Vars {
    /// The raw value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment. For `main` only: tests pass a map.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Vars for Env {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Vars for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Vars for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl<const N: usize> Vars for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<V: Vars + ?Sized> Vars for &V {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }
}

/// A setting that breaks its rule. Displayed as `invalid configuration: VAR: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    /// The variable to fix, e.g. `QR_CONCURRENCY`.
    pub var: String,
    /// The rule it breaks, with the offending value when it is not secret.
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of the readers.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A string that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL that may carry a password, printed with the password masked
/// (`redis://user:***@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password masked; what logs and errors show.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// The scheme, lower-cased (`redis`, `postgres`, ...).
    pub fn scheme(&self) -> Option<String> {
        self.0
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

// ---------------------------------------------------------------------------
// Typed readers

/// The trimmed value of `name`; `None` when unset or blank.
pub fn optional(vars: &dyn Vars, name: &str) -> Option<String> {
    vars.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `name` as a string, or `default`.
pub fn string(vars: &dyn Vars, name: &str, default: &str) -> String {
    optional(vars, name).unwrap_or_else(|| default.to_owned())
}

/// `name` as a [`Secret`]; `None` when unset or blank.
pub fn secret(vars: &dyn Vars, name: &str) -> Option<Secret> {
    optional(vars, name).map(Secret::new)
}

/// `name` parsed with [`FromStr`]; the parse error is the rule
/// (`QR_ECC: "X": must be one of L, M, Q, H`).
pub fn parse<T>(vars: &dyn Vars, name: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| ConfigError::new(name, format!("{v:?}: {e}"))),
    }
}

/// `name` as a whole number (any integer type).
pub fn integer<T: FromStr>(vars: &dyn Vars, name: &str, default: T) -> Result<T> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError::new(name, format!("{v:?} is not a whole number"))),
    }
}

/// `name` as a whole number of at least 1 (any `NonZero*` type).
pub fn nonzero<T: FromStr>(vars: &dyn Vars, name: &str, default: T) -> Result<T> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::new(name, format!("{v:?} is not a whole number of at least 1"))
        }),
    }
}

/// `name` as a duration written with its unit: `30s`, `500ms`, `2m`, `1h`, `1h 30m`.
pub fn duration(vars: &dyn Vars, name: &str, default: Duration) -> Result<Duration> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(&v).map_err(|_| {
            ConfigError::new(
                name,
                format!("{v:?} is not a duration such as 30s, 500ms, 2m or 1h"),
            )
        }),
    }
}

/// `name` as an `IP:port` address; port 0 lets the system pick one.
pub fn socket_addr(vars: &dyn Vars, name: &str, default: SocketAddr) -> Result<SocketAddr> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::new(
                name,
                format!("{v:?} is not an IP:port address such as 127.0.0.1:9101"),
            )
        }),
    }
}

/// `name` as a URL whose scheme is one of `schemes`; the error shows the URL
/// with its password masked.
pub fn url(vars: &dyn Vars, name: &str, default: &str, schemes: &[&str]) -> Result<SecretUrl> {
    let url = SecretUrl::new(string(vars, name, default));
    check_scheme(name, &url, schemes)?;
    Ok(url)
}

fn check_scheme(name: &str, url: &SecretUrl, schemes: &[&str]) -> Result<()> {
    match url.scheme() {
        Some(scheme) if schemes.contains(&scheme.as_str()) => Ok(()),
        _ => {
            let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            Err(ConfigError::new(
                name,
                format!(
                    "{:?} must start with {}",
                    url.redacted(),
                    allowed.join(", ")
                ),
            ))
        }
    }
}

/// `name` as a yes/no switch: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub fn boolean(vars: &dyn Vars, name: &str, default: bool) -> Result<bool> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                format!("{v:?} must be true or false (also 1/0, yes/no, on/off)"),
            )),
        },
    }
}

// ---------------------------------------------------------------------------
// The settings every binary shares

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_DATABASE_URL: &str = store::DEFAULT_DATABASE_URL;

/// `REDIS_URL`: `redis://`, `rediss://` (TLS) or `redis+unix://`; may carry a
/// password. Several comma-separated `redis://`/`rediss://` URLs are the seed
/// nodes of a Redis Cluster.
pub fn redis_url(vars: &dyn Vars) -> Result<SecretUrl> {
    let url = SecretUrl::new(string(vars, "REDIS_URL", DEFAULT_REDIS_URL));
    let nodes = queue_core::broker::node_urls(url.expose());
    if nodes.len() <= 1 {
        check_scheme(
            "REDIS_URL",
            &url,
            &["redis", "rediss", "redis+unix", "unix"],
        )?;
        return Ok(url);
    }
    for node in nodes {
        check_scheme("REDIS_URL", &SecretUrl::new(node), &["redis", "rediss"])?;
    }
    Ok(url)
}

/// `REDIS_CLUSTER`: talk to a Redis Cluster even when `REDIS_URL` names one
/// node (default false; several URLs mean a cluster anyway).
pub fn redis_cluster(vars: &dyn Vars) -> Result<bool> {
    boolean(vars, "REDIS_CLUSTER", false)
}

/// How to reach Redis with `REDIS_URL`, `REDIS_CLUSTER` and `RSQ_PREFIX` as read.
pub fn broker_config(url: &SecretUrl, cluster: bool, prefix: &str) -> queue_core::BrokerConfig {
    queue_core::BrokerConfig::new(url.expose())
        .cluster(cluster)
        .prefix(prefix)
}

/// `RSQ_PREFIX`: the key prefix of every queue (default `rsq`).
pub fn redis_prefix(vars: &dyn Vars) -> Result<String> {
    let prefix = string(vars, "RSQ_PREFIX", queue_core::keys::DEFAULT_PREFIX);
    queue_core::keys::validate_prefix(&prefix).map_err(|_| {
        ConfigError::new(
            "RSQ_PREFIX",
            format!("{prefix:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ - :"),
        )
    })?;
    Ok(prefix)
}

/// `DATABASE_URL`: `postgres://` or `postgresql://`. Usable alone (`migrate`).
pub fn database_url(vars: &dyn Vars) -> Result<SecretUrl> {
    url(
        vars,
        "DATABASE_URL",
        DEFAULT_DATABASE_URL,
        &["postgres", "postgresql"],
    )
}

/// `HEALTH_ADDR`: where `/healthz`, `/readyz` and `/metrics` answer; defaults to
/// `127.0.0.1:<default_port>` (each binary has its own port).
pub fn health_addr(vars: &dyn Vars, default_port: u16) -> Result<SocketAddr> {
    socket_addr(
        vars,
        "HEALTH_ADDR",
        SocketAddr::from((Ipv4Addr::LOCALHOST, default_port)),
    )
}

/// `RUST_LOG` (default `info`), `LOG_FORMAT` (`auto`, `json`, `pretty`) and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (no trace export when unset).
pub fn telemetry(vars: &dyn Vars, service: &str) -> Result<TelemetryConfig> {
    let mut config = TelemetryConfig::new(service);
    if let Some(filter) = optional(vars, "RUST_LOG") {
        tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| {
            ConfigError::new("RUST_LOG", format!("{filter:?} is not a log filter: {e}"))
        })?;
        config.filter = filter;
    }
    if let Some(format) = optional(vars, "LOG_FORMAT") {
        config.format = format.parse::<LogFormat>().map_err(|_| {
            ConfigError::new(
                "LOG_FORMAT",
                format!("{format:?} must be auto, json or pretty"),
            )
        })?;
    }
    if let Some(endpoint) = optional(vars, "OTEL_EXPORTER_OTLP_ENDPOINT") {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!(
                    "{:?} must start with http:// or https://",
                    redact_url(&endpoint)
                ),
            ));
        }
        config.otlp_endpoint = Some(endpoint);
    }
    Ok(config)
}

/// Settings every worker binary shares.
#[derive(Debug, Clone)]
pub struct BaseConfig {
    /// `REDIS_URL`.
    pub redis_url: SecretUrl,
    /// `REDIS_CLUSTER`.
    pub redis_cluster: bool,
    /// `RSQ_PREFIX`.
    pub redis_prefix: String,
    /// `DATABASE_URL`.
    pub database_url: SecretUrl,
    /// `HEALTH_ADDR`; port 0 picks a free port.
    pub health_addr: SocketAddr,
}

impl BaseConfig {
    /// How to reach Redis.
    pub fn broker_config(&self) -> queue_core::BrokerConfig {
        broker_config(&self.redis_url, self.redis_cluster, &self.redis_prefix)
    }

    /// Reads `REDIS_URL`, `REDIS_CLUSTER`, `RSQ_PREFIX`, `DATABASE_URL` and `HEALTH_ADDR`
    /// (default `127.0.0.1:<default_health_port>`).
    pub fn from_vars(vars: &dyn Vars, default_health_port: u16) -> Result<Self> {
        Ok(Self {
            redis_url: redis_url(vars)?,
            redis_cluster: redis_cluster(vars)?,
            redis_prefix: redis_prefix(vars)?,
            database_url: database_url(vars)?,
            health_addr: health_addr(vars, default_health_port)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Storage of generated files

/// `STORAGE_DIR` default.
pub const DEFAULT_STORAGE_DIR: &str = "./storage";
/// `STORAGE_TEMP_MAX_AGE` default.
pub const DEFAULT_STORAGE_TEMP_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// `STORAGE_SWEEP_INTERVAL` default.
pub const DEFAULT_STORAGE_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Where a worker writes generated files (QR codes, thumbnails), and the sweep
/// of temporary files that killed writers leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `STORAGE_DIR`: the root the stored paths are relative to.
    pub dir: std::path::PathBuf,
    /// `STORAGE_TEMP_MAX_AGE`: a temporary file older than this was left by a
    /// writer that died (a killed process) and is removed by the sweep.
    pub temp_max_age: Duration,
    /// `STORAGE_SWEEP_INTERVAL`: how often the sweep runs, besides once at start.
    pub sweep_interval: Duration,
}

/// Reads `STORAGE_DIR`, `STORAGE_TEMP_MAX_AGE` (longer than the job timeout of
/// `spec`'s queue, `worker`) and `STORAGE_SWEEP_INTERVAL`.
pub fn storage_config(
    vars: &dyn Vars,
    spec: &QueueSpec,
    worker: &WorkerConfig,
) -> Result<StorageConfig> {
    let temp_max_age = duration(vars, "STORAGE_TEMP_MAX_AGE", DEFAULT_STORAGE_TEMP_MAX_AGE)?;
    // A younger file may belong to a job still writing it.
    if temp_max_age <= worker.job_timeout {
        return Err(ConfigError::new(
            "STORAGE_TEMP_MAX_AGE",
            format!(
                "must be longer than {}_JOB_TIMEOUT ({:?}), or a write in progress could be removed",
                spec.env_prefix(),
                worker.job_timeout
            ),
        ));
    }
    let sweep_interval = duration(
        vars,
        "STORAGE_SWEEP_INTERVAL",
        DEFAULT_STORAGE_SWEEP_INTERVAL,
    )?;
    if sweep_interval.is_zero() {
        return Err(ConfigError::new(
            "STORAGE_SWEEP_INTERVAL",
            "must be longer than 0",
        ));
    }
    Ok(StorageConfig {
        dir: string(vars, "STORAGE_DIR", DEFAULT_STORAGE_DIR).into(),
        temp_max_age,
        sweep_interval,
    })
}

// ---------------------------------------------------------------------------
// Reconcilers

/// Defaults of every reconciler: far above the enqueue-to-done latency of a
/// healthy system, cheap to run.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_RECONCILE_AFTER: Duration = Duration::from_secs(30);
pub const DEFAULT_RECONCILE_BATCH: u32 = 500;

/// A workload's reconciler: a repeating job that re-enqueues, with the row's
/// own dedup key, the jobs of rows still pending past a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `{P}_RECONCILE_INTERVAL`: how often it runs (once per period across
    /// replicas); 1s to 366 days.
    pub interval: Duration,
    /// `{P}_RECONCILE_AFTER`: a row pending this long gets its job again.
    pub after: Duration,
    /// `{P}_RECONCILE_BATCH`: rows per page, oldest first (a run reads up to
    /// `reconcile::MAX_PAGES` pages).
    pub batch: u32,
}

/// Reads `{P}_RECONCILE_INTERVAL` (checked here, so that a bad value exits 64
/// before any connection), `_AFTER` and `_BATCH`, where `P` is the queue's
/// [`QueueSpec::env_prefix`] as for [`worker_config`] (`QR`, `PHOTOS`).
pub fn reconcile_config(vars: &dyn Vars, spec: &QueueSpec) -> Result<ReconcileConfig> {
    reconcile_config_prefixed(vars, &spec.env_prefix())
}

/// [`reconcile_config`] under a prefix of its own: the payment scheduler's
/// reconciler reads `PAYMENT_RECONCILE_*`, not `PAYMENT_CHECKS_RECONCILE_*`,
/// and deployed configurations keep those names.
pub fn reconcile_config_prefixed(vars: &dyn Vars, prefix: &str) -> Result<ReconcileConfig> {
    let var = |suffix: &str| format!("{prefix}_RECONCILE_{suffix}");
    let interval = duration(vars, &var("INTERVAL"), DEFAULT_RECONCILE_INTERVAL)?;
    // The repeating job's rule (shorter periods would flood the queue), checked
    // here so that a bad value exits 64 before any connection.
    queue_core::Every::interval(interval)
        .map_err(|_| ConfigError::new(var("INTERVAL"), "must be between 1s and 366 days"))?;
    let after = duration(vars, &var("AFTER"), DEFAULT_RECONCILE_AFTER)?;
    let batch: u32 = integer(vars, &var("BATCH"), DEFAULT_RECONCILE_BATCH)?;
    if !(1..=10_000).contains(&batch) {
        return Err(ConfigError::new(
            var("BATCH"),
            "must be between 1 and 10000",
        ));
    }
    Ok(ReconcileConfig {
        interval,
        after,
        batch,
    })
}

// ---------------------------------------------------------------------------
// Per-queue worker settings

/// The variables [`worker_config`] reads, after the queue's prefix and `_`.
pub const WORKER_VARIABLES: [&str; 16] = [
    "CONCURRENCY",
    "MAX_ATTEMPTS",
    "JOB_TIMEOUT",
    "VISIBILITY_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "BACKOFF",
    "BACKOFF_MAX",
    "BATCH_SIZE",
    "MAX_DELIVERIES",
    "GRACE_PERIOD",
    "GLOBAL_CONCURRENCY",
    "RATE_LIMIT",
    "RETAIN_COMPLETED",
    "RETAIN_COMPLETED_MAX_AGE",
    "RETAIN_DEAD_LETTERS",
    "RETAIN_DEAD_LETTERS_MAX_AGE",
];

/// The value written for "no limit" in the retention variables.
pub const UNLIMITED: &str = "unlimited";

/// The worker settings of `spec`'s queue: its catalogue defaults, overridden by
/// `{P}_CONCURRENCY`, `{P}_MAX_ATTEMPTS`, `{P}_JOB_TIMEOUT`,
/// `{P}_VISIBILITY_TIMEOUT`, `{P}_HEARTBEAT_INTERVAL`, `{P}_BACKOFF` (first retry
/// delay), `{P}_BACKOFF_MAX`, `{P}_BATCH_SIZE`, `{P}_MAX_DELIVERIES` and
/// `{P}_GRACE_PERIOD`, plus the limits across every replica
/// `{P}_GLOBAL_CONCURRENCY` and `{P}_RATE_LIMIT` (`10/1s`), and what the queue
/// keeps ([`retention`]), where `P` is the queue's
/// [`QueueSpec::env_prefix`] (`QR`, `PAYMENT_CHECKS`). A rule that ties two settings
/// together is reported against the one the operator set.
pub fn worker_config(vars: &dyn Vars, spec: &QueueSpec) -> Result<WorkerConfig> {
    let prefix = spec.env_prefix();
    let var = |suffix: &str| format!("{prefix}_{suffix}");
    let is_set = |suffix: &str| optional(vars, &var(suffix)).is_some();
    let mut c = spec.worker_config();

    c.concurrency = nonzero(vars, &var("CONCURRENCY"), c.concurrency)?;
    c.max_attempts = at_least_one(vars, &var("MAX_ATTEMPTS"), c.max_attempts)?;
    c.job_timeout = positive_duration(vars, &var("JOB_TIMEOUT"), c.job_timeout)?;
    c.visibility_timeout =
        positive_duration(vars, &var("VISIBILITY_TIMEOUT"), c.visibility_timeout)?;
    c.heartbeat_interval =
        positive_duration(vars, &var("HEARTBEAT_INTERVAL"), c.heartbeat_interval)?;
    c.backoff.initial = duration(vars, &var("BACKOFF"), c.backoff.initial)?;
    c.backoff.max = duration(vars, &var("BACKOFF_MAX"), c.backoff.max)?;
    c.batch_size = nonzero(vars, &var("BATCH_SIZE"), c.batch_size)?;
    c.max_deliveries = at_least_one(vars, &var("MAX_DELIVERIES"), c.max_deliveries)?;
    c.grace_period = duration(vars, &var("GRACE_PERIOD"), c.grace_period)?;
    if optional(vars, &var("GLOBAL_CONCURRENCY")).is_some() {
        c.global_concurrency = Some(nonzero(
            vars,
            &var("GLOBAL_CONCURRENCY"),
            std::num::NonZeroUsize::MIN,
        )?);
    }
    if let Some(rate) = optional(vars, &var("RATE_LIMIT")) {
        c.rate_limit = Some(
            rate.parse()
                .map_err(|e: String| ConfigError::new(var("RATE_LIMIT"), e))?,
        );
    }
    retention(vars, &prefix, &mut c)?;

    let doubled = c.heartbeat_interval.checked_mul(2);
    if doubled.is_none_or(|d| d >= c.visibility_timeout) {
        // Blame the one the operator changed; both when both were.
        let culprit = if is_set("VISIBILITY_TIMEOUT") && !is_set("HEARTBEAT_INTERVAL") {
            "VISIBILITY_TIMEOUT"
        } else {
            "HEARTBEAT_INTERVAL"
        };
        return Err(ConfigError::new(
            var(culprit),
            format!(
                "the heartbeat interval ({}) must be less than half of the visibility timeout \
                 ({}), or running jobs get reclaimed",
                humantime::format_duration(c.heartbeat_interval),
                humantime::format_duration(c.visibility_timeout)
            ),
        ));
    }
    if c.backoff.max < c.backoff.initial {
        let culprit = if is_set("BACKOFF") && !is_set("BACKOFF_MAX") {
            "BACKOFF"
        } else {
            "BACKOFF_MAX"
        };
        return Err(ConfigError::new(
            var(culprit),
            format!(
                "the longest retry delay ({}) must not be shorter than the first ({})",
                humantime::format_duration(c.backoff.max),
                humantime::format_duration(c.backoff.initial)
            ),
        ));
    }
    // Every rule a variable can break is checked above, so this only fails on
    // a catalogue entry that breaks one: name the whole family.
    c.validate()
        .map_err(|e| ConfigError::new(format!("{prefix}_*"), e.to_string()))?;
    Ok(c)
}

/// What the queue keeps of its settled jobs (`queue_core::Retention`), each
/// setting read from the queue's own `{P}_RETAIN_*` variable, else from the
/// same variable without the prefix (the default of every queue), else the
/// queue's defaults:
/// - `RETAIN_COMPLETED`: completions kept for the dashboard, at least 1 (1000);
/// - `RETAIN_COMPLETED_MAX_AGE`: older completions are dropped (`unlimited`);
/// - `RETAIN_DEAD_LETTERS`: dead letters kept at most, the newest, at least 1
///   or `unlimited` (10000);
/// - `RETAIN_DEAD_LETTERS_MAX_AGE`: older dead letters are dropped (`unlimited`).
///
/// The counts hold as jobs settle; the ages (and the exact dead-letter count)
/// by the daily cleanup, which trims every queue by what its workers wrote
/// into it at start.
pub fn retention(vars: &dyn Vars, prefix: &str, c: &mut WorkerConfig) -> Result<()> {
    // The queue's own variable wins over the default of every queue.
    let read = |name: &str| {
        let own = format!("{prefix}_{name}");
        optional(vars, &own)
            .map(|v| (own, v))
            .or_else(|| optional(vars, name).map(|v| (name.to_owned(), v)))
    };
    let count = |name: &str, default: usize, unlimited: bool| -> Result<usize> {
        let Some((var, v)) = read(name) else {
            return Ok(default);
        };
        if unlimited && v.eq_ignore_ascii_case(UNLIMITED) {
            return Ok(0);
        }
        v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            let rule = if unlimited {
                format!("{v:?} is not a whole number of at least 1, nor {UNLIMITED}")
            } else {
                format!("{v:?} is not a whole number of at least 1")
            };
            ConfigError::new(var, rule)
        })
    };
    let age = |name: &str, default: Option<Duration>| -> Result<Option<Duration>> {
        let Some((var, v)) = read(name) else {
            return Ok(default);
        };
        if v.eq_ignore_ascii_case(UNLIMITED) {
            return Ok(None);
        }
        match humantime::parse_duration(&v) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(ConfigError::new(
                var,
                format!("{v:?} is not a duration above zero such as 7days or 12h, nor {UNLIMITED}"),
            )),
        }
    };
    c.done_retention = count("RETAIN_COMPLETED", c.done_retention, false)?;
    c.done_max_age = age("RETAIN_COMPLETED_MAX_AGE", c.done_max_age)?;
    c.dlq_retention = count("RETAIN_DEAD_LETTERS", c.dlq_retention, true)?;
    c.dlq_max_age = age("RETAIN_DEAD_LETTERS_MAX_AGE", c.dlq_max_age)?;
    Ok(())
}

fn at_least_one(vars: &dyn Vars, name: &str, default: u32) -> Result<u32> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) => v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ConfigError::new(name, format!("{v:?} is not a whole number of at least 1"))
        }),
    }
}

fn positive_duration(vars: &dyn Vars, name: &str, default: Duration) -> Result<Duration> {
    let d = duration(vars, name, default)?;
    if d.is_zero() {
        return Err(ConfigError::new(name, "must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_blank_variables_take_their_defaults() {
        let vars = [("REDIS_URL", "  "), ("HEALTH_ADDR", "")];
        let base = BaseConfig::from_vars(&vars, 9101).expect("defaults are valid");
        assert_eq!(base.redis_url.expose(), DEFAULT_REDIS_URL);
        assert_eq!(base.redis_prefix, "rsq");
        assert_eq!(base.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(base.health_addr.to_string(), "127.0.0.1:9101");
        let t = telemetry(&vars, "qr-worker").expect("defaults are valid");
        assert_eq!((t.filter.as_str(), t.format), ("info", LogFormat::Auto));
        assert_eq!(t.otlp_endpoint, None);
    }

    #[test]
    fn maps_and_slices_are_variable_sources() {
        let map: HashMap<String, String> = [("RSQ_PREFIX".to_owned(), "staging".to_owned())].into();
        assert_eq!(redis_prefix(&map).expect("valid"), "staging");
        let tree: BTreeMap<String, String> = [("RSQ_PREFIX".to_owned(), "b".to_owned())].into();
        assert_eq!(redis_prefix(&tree).expect("valid"), "b");
        let slice: &[(&str, &str)] = &[("RSQ_PREFIX", "c")];
        assert_eq!(redis_prefix(&slice).expect("valid"), "c");
    }

    #[test]
    fn every_base_variable_is_read() {
        let vars = [
            ("REDIS_URL", "rediss://u:pw@redis:6380/1"),
            ("RSQ_PREFIX", "staging"),
            ("DATABASE_URL", "postgresql://app:pw@db/app"),
            ("HEALTH_ADDR", "0.0.0.0:0"),
            ("RUST_LOG", "debug,sqlx=warn"),
            ("LOG_FORMAT", "json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ];
        let base = BaseConfig::from_vars(&vars, 9101).expect("valid");
        assert_eq!(base.redis_url.expose(), "rediss://u:pw@redis:6380/1");
        assert!(!base.redis_cluster);
        assert_eq!(base.redis_prefix, "staging");
        assert_eq!(base.database_url.expose(), "postgresql://app:pw@db/app");
        assert_eq!(base.health_addr.port(), 0);
        let t = telemetry(&vars, "qr-worker").expect("valid");
        assert_eq!(t.filter, "debug,sqlx=warn");
        assert_eq!(t.format, LogFormat::Json);
        assert_eq!(t.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(t.service, "qr-worker");
    }

    #[test]
    fn several_redis_urls_or_redis_cluster_mean_a_cluster() {
        let one = BaseConfig::from_vars(&[("REDIS_URL", "redis://a:6379")], 9101).expect("valid");
        assert!(!one.broker_config().is_cluster());
        let flagged = [("REDIS_URL", "redis://a:7000"), ("REDIS_CLUSTER", "true")];
        let flagged = BaseConfig::from_vars(&flagged, 9101).expect("valid");
        assert!(flagged.redis_cluster && flagged.broker_config().is_cluster());
        let list = [("REDIS_URL", "redis://:pw@a:7000,rediss://:pw@b:7001")];
        let list = BaseConfig::from_vars(&list, 9101).expect("valid");
        let broker = list.broker_config();
        assert!(broker.is_cluster());
        assert_eq!(
            broker.nodes(),
            ["redis://:pw@a:7000", "rediss://:pw@b:7001"]
        );
        assert!(!format!("{list:?}").contains("pw@"), "{list:?}");
    }

    #[test]
    fn a_bad_base_value_names_the_variable_and_the_rule() {
        for (var, value, rule) in [
            ("REDIS_URL", "http://x", "redis://"),
            ("REDIS_URL", "redis://a:7000,http://b:7001", "redis://"),
            ("REDIS_URL", "redis://a:7000,redis+unix:///s", "rediss://"),
            ("REDIS_CLUSTER", "maybe", "true or false"),
            ("DATABASE_URL", "mysql://x", "postgres://"),
            ("RSQ_PREFIX", "a b", "1 to 64"),
            ("HEALTH_ADDR", "localhost", "IP:port"),
            ("LOG_FORMAT", "xml", "auto, json or pretty"),
            ("RUST_LOG", "info,[", "log filter"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "http://"),
        ] {
            let vars = [(var, value)];
            let err = BaseConfig::from_vars(&vars, 9101)
                .and_then(|_| telemetry(&vars, "svc"))
                .expect_err(var);
            assert_eq!(err.var, var);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("invalid configuration: {var}: ")) && text.contains(rule),
                "{text}"
            );
        }
    }

    #[test]
    fn passwords_never_print() {
        let vars = [
            ("REDIS_URL", "redis://:redispw@h"),
            ("DATABASE_URL", "postgres://u:dbpw@h/db"),
        ];
        let base = BaseConfig::from_vars(&vars, 9101).expect("valid");
        let shown = format!("{base:?} {} {}", base.redis_url, base.database_url);
        assert!(
            !shown.contains("redispw") && !shown.contains("dbpw"),
            "{shown}"
        );
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
        let err = database_url(&[("DATABASE_URL", "mysql://u:dbpw@h")]).expect_err("bad scheme");
        assert!(!err.to_string().contains("dbpw"), "{err}");
        let token = Secret::new("tok3n");
        assert_eq!(format!("{token} {token:?}"), "*** ***");
        assert_eq!(token.expose(), "tok3n");
    }

    #[test]
    fn durations_are_written_with_their_unit() {
        let read = |v: &str| duration(&[("D", v)], "D", Duration::ZERO);
        assert_eq!(read("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(read("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(read("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(read("1h"), Ok(Duration::from_secs(3600)));
        let err = read("30").expect_err("no unit");
        assert_eq!(err.var, "D");
        assert!(err.reason.contains("such as 30s"), "{err}");
    }

    #[test]
    fn storage_and_reconcile_settings_have_their_defaults() {
        let none: [(&str, &str); 0] = [];
        let worker = worker_config(&none, &jobs::QR).expect("valid");
        let s = storage_config(&none, &jobs::QR, &worker).expect("valid");
        assert_eq!(s.dir, std::path::PathBuf::from("./storage"));
        assert_eq!(s.temp_max_age, Duration::from_secs(15 * 60));
        assert_eq!(s.sweep_interval, Duration::from_secs(5 * 60));
        let r = reconcile_config(&none, &jobs::PHOTOS).expect("valid");
        let thirty = Duration::from_secs(30);
        assert_eq!((r.interval, r.after, r.batch), (thirty, thirty, 500));
    }

    #[test]
    fn reconcile_settings_are_read_with_the_queue_prefix() {
        let vars = [
            ("WISPRO_SYNC_RECONCILE_INTERVAL", "1m"),
            ("WISPRO_SYNC_RECONCILE_AFTER", "2m"),
            ("WISPRO_SYNC_RECONCILE_BATCH", "100"),
            // Another queue's variables do not leak in.
            ("QR_RECONCILE_BATCH", "7"),
        ];
        let r = reconcile_config(&vars, &jobs::WISPRO_SYNC).expect("valid");
        let (minute, two) = (Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!((r.interval, r.after, r.batch), (minute, two, 100));
        let own = reconcile_config_prefixed(&[("PAYMENT_RECONCILE_BATCH", "9")], "PAYMENT");
        assert_eq!(own.expect("valid").batch, 9);
    }

    #[test]
    fn a_bad_storage_or_reconcile_value_names_the_variable_and_the_rule() {
        for (var, value, rule) in [
            ("STORAGE_TEMP_MAX_AGE", "15", "duration"),
            ("STORAGE_TEMP_MAX_AGE", "30s", "QR_JOB_TIMEOUT (30s)"),
            ("STORAGE_SWEEP_INTERVAL", "0s", "longer than 0"),
            ("QR_RECONCILE_INTERVAL", "500ms", "366 days"),
            ("QR_RECONCILE_INTERVAL", "400days", "366 days"),
            ("QR_RECONCILE_AFTER", "soon", "duration"),
            ("QR_RECONCILE_BATCH", "0", "1 and 10000"),
        ] {
            let vars = [(var, value)];
            let err = worker_config(&vars, &jobs::QR)
                .and_then(|worker| storage_config(&vars, &jobs::QR, &worker))
                .and_then(|_| reconcile_config(&vars, &jobs::QR))
                .expect_err(var);
            assert_eq!(err.var, var);
            assert!(err.reason.contains(rule), "{err}");
        }
    }

    #[test]
    fn worker_settings_default_to_the_catalogue() {
        let none: [(&str, &str); 0] = [];
        for spec in jobs::CATALOGUE {
            let c = worker_config(&none, spec).expect("catalogue defaults are valid");
            assert_eq!(c.concurrency.get(), spec.concurrency);
            assert_eq!(c.max_attempts, spec.max_attempts);
            assert_eq!(c.job_timeout, spec.job_timeout);
        }
    }

    #[test]
    fn every_worker_variable_is_read_with_the_queue_prefix() {
        let vars = [
            ("PAYMENT_CHECKS_CONCURRENCY", "7"),
            ("PAYMENT_CHECKS_MAX_ATTEMPTS", "20"),
            ("PAYMENT_CHECKS_JOB_TIMEOUT", "45s"),
            ("PAYMENT_CHECKS_VISIBILITY_TIMEOUT", "1m"),
            ("PAYMENT_CHECKS_HEARTBEAT_INTERVAL", "10s"),
            ("PAYMENT_CHECKS_BACKOFF", "500ms"),
            ("PAYMENT_CHECKS_BACKOFF_MAX", "2m"),
            ("PAYMENT_CHECKS_BATCH_SIZE", "50"),
            ("PAYMENT_CHECKS_MAX_DELIVERIES", "9"),
            ("PAYMENT_CHECKS_GRACE_PERIOD", "0s"),
            ("PAYMENT_CHECKS_GLOBAL_CONCURRENCY", "2"),
            ("PAYMENT_CHECKS_RATE_LIMIT", "10/1s"),
            // Another queue's variables do not leak in.
            ("QR_CONCURRENCY", "1"),
        ];
        let c = worker_config(&vars, &jobs::PAYMENT_CHECKS).expect("valid");
        assert_eq!(c.concurrency.get(), 7);
        assert_eq!(c.max_attempts, 20);
        assert_eq!(c.job_timeout, Duration::from_secs(45));
        assert_eq!(c.visibility_timeout, Duration::from_secs(60));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.backoff.initial, Duration::from_millis(500));
        assert_eq!(c.backoff.max, Duration::from_secs(120));
        assert_eq!(c.batch_size.get(), 50);
        assert_eq!(c.max_deliveries, 9);
        assert_eq!(c.grace_period, Duration::ZERO);
        assert_eq!(c.global_concurrency.map(|n| n.get()), Some(2));
        let rate = c.rate_limit.expect("a rate limit");
        assert_eq!((rate.count.get(), rate.per), (10, Duration::from_secs(1)));
        let none = worker_config(&[("QR_CONCURRENCY", "1")], &jobs::QR).expect("valid");
        assert_eq!((none.global_concurrency, none.rate_limit), (None, None));
    }

    #[test]
    fn retention_defaults_to_what_the_code_kept_and_is_read_per_queue_over_a_default() {
        let none: [(&str, &str); 0] = [];
        let c = worker_config(&none, &jobs::QR).expect("valid");
        let r = c.retention();
        assert_eq!((r.completed, r.completed_max_age), (1000, None));
        assert_eq!((r.dead_letters, r.dead_letters_max_age), (10_000, None));
        let vars = [
            ("RETAIN_COMPLETED", "50"),
            ("RETAIN_DEAD_LETTERS_MAX_AGE", "14days"),
            ("RETAIN_DEAD_LETTERS", "unlimited"),
            ("PHOTOS_RETAIN_COMPLETED", "200"),
            ("PHOTOS_RETAIN_COMPLETED_MAX_AGE", "1h"),
            ("PHOTOS_RETAIN_DEAD_LETTERS", "500"),
            ("PHOTOS_RETAIN_DEAD_LETTERS_MAX_AGE", "Unlimited"),
        ];
        let qr = worker_config(&vars, &jobs::QR).expect("valid").retention();
        let day = Duration::from_secs(86_400);
        assert_eq!(
            qr,
            queue_core::Retention {
                completed: 50,
                completed_max_age: None,
                dead_letters: 0,
                dead_letters_max_age: Some(14 * day),
            }
        );
        let photos = worker_config(&vars, &jobs::PHOTOS)
            .expect("valid")
            .retention();
        assert_eq!(
            photos,
            queue_core::Retention {
                completed: 200,
                completed_max_age: Some(Duration::from_secs(3600)),
                dead_letters: 500,
                dead_letters_max_age: None,
            }
        );
    }

    #[test]
    fn the_queues_own_retention_wins_over_a_bad_default() {
        // The queue's own good value is read, so a bad default is not.
        let both = [("RETAIN_COMPLETED", "0"), ("QR_RETAIN_COMPLETED", "10")];
        let c = worker_config(&both, &jobs::QR).expect("the queue's own wins");
        assert_eq!(c.done_retention, 10);
    }

    #[test]
    fn the_workspace_readme_lists_every_worker_variable() {
        let readme = include_str!("../../../README.md");
        for name in WORKER_VARIABLES {
            assert!(readme.contains(&format!("`{{P}}_{name}`")), "{name}");
        }
    }

    #[test]
    fn a_bad_value_of_each_worker_variable_names_it() {
        let cases = [
            ("QR_CONCURRENCY", "0", "at least 1"),
            ("QR_CONCURRENCY", "many", "whole number"),
            ("QR_MAX_ATTEMPTS", "0", "at least 1"),
            ("QR_JOB_TIMEOUT", "0s", "greater than zero"),
            ("QR_JOB_TIMEOUT", "30", "duration"),
            ("QR_VISIBILITY_TIMEOUT", "soon", "duration"),
            ("QR_HEARTBEAT_INTERVAL", "0ms", "greater than zero"),
            ("QR_BACKOFF", "-1s", "duration"),
            ("QR_BACKOFF_MAX", "1x", "duration"),
            ("QR_BATCH_SIZE", "0", "at least 1"),
            ("QR_MAX_DELIVERIES", "0", "at least 1"),
            ("QR_GRACE_PERIOD", "forever", "duration"),
            ("QR_GLOBAL_CONCURRENCY", "0", "at least 1"),
            ("QR_RATE_LIMIT", "10", "10/1s"),
            ("QR_RATE_LIMIT", "0/1s", "10/1s"),
            // Rules between two settings blame the one that was set.
            (
                "QR_HEARTBEAT_INTERVAL",
                "3s",
                "half of the visibility timeout",
            ),
            (
                "QR_VISIBILITY_TIMEOUT",
                "1s",
                "half of the visibility timeout",
            ),
            ("QR_BACKOFF", "2h", "must not be shorter"),
            // Retention, from the queue's variable or the default of every
            // queue: the error names the one it was read from.
            ("QR_RETAIN_COMPLETED", "0", "at least 1"),
            ("QR_RETAIN_COMPLETED", "unlimited", "at least 1"),
            ("RETAIN_COMPLETED", "1k", "whole number"),
            ("QR_RETAIN_DEAD_LETTERS", "0", "nor unlimited"),
            ("RETAIN_DEAD_LETTERS", "-5", "nor unlimited"),
            ("QR_RETAIN_COMPLETED_MAX_AGE", "0s", "above zero"),
            ("RETAIN_COMPLETED_MAX_AGE", "7", "such as 7days"),
            ("QR_RETAIN_DEAD_LETTERS_MAX_AGE", "forever", "nor unlimited"),
            ("RETAIN_DEAD_LETTERS_MAX_AGE", "30 dayz", "duration"),
        ];
        for (var, value, rule) in cases {
            let err = worker_config(&[(var, value)], &jobs::QR).expect_err(var);
            assert_eq!(err.var, var, "{err}");
            assert!(err.reason.contains(rule), "{err}");
        }
        let both = [("QR_BACKOFF", "2h"), ("QR_BACKOFF_MAX", "1h")];
        assert_eq!(
            worker_config(&both, &jobs::QR)
                .expect_err("max < initial")
                .var,
            "QR_BACKOFF_MAX"
        );
    }
}
