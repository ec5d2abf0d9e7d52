//! The worker's settings: its own variables (`STORAGE_DIR`, `STORAGE_TEMP_MAX_AGE`,
//! `STORAGE_SWEEP_INTERVAL`, `PHOTO_MAX_PIXELS`, `PHOTO_MAX_DIMENSION`,
//! `PHOTO_MAX_DECODE_BYTES`, `PHOTO_MEMORY_BUDGET`, `PHOTO_MAX_CANDIDATES`,
//! `PHOTO_THUMBNAIL_SIZE`, `PHOTO_MIN_CONFIDENCE`,
//! `PHOTO_FETCH_*`, `PHOTOS_RECONCILE_*`) on top of the `service` kit's base and
//! per-queue settings (`PHOTOS_CONCURRENCY`, ...). Read from the environment
//! only by `main`; tests build a [`Config`] directly or from a map.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use queue_core::WorkerConfig;
use service::config::{self, BaseConfig, ConfigError, ReconcileConfig, StorageConfig, Vars};

use crate::fetch::{AllowedHosts, FetchPolicy};
use crate::imaging::{self, ImageLimits};

/// `HEALTH_ADDR` is `127.0.0.1:9105` unless set.
pub const DEFAULT_HEALTH_PORT: u16 = 9105;
/// `PHOTO_THUMBNAIL_SIZE` default: the longest side of a thumbnail, in pixels.
pub const DEFAULT_THUMBNAIL_SIZE: u32 = 320;
/// `PHOTO_MIN_CONFIDENCE` default: the detector's own.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;
/// `PHOTO_MEMORY_BUDGET` default: 1 GiB, the pixels of every photo in work at
/// once. The Kubernetes limit is this plus the process's baseline
/// (`deploy/k8s/base/photo-worker.yaml`).
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;
/// What the process holds besides the photos' budget: the process at rest
/// (49 MB measured), one Tesseract handle per blocking thread and the
/// allocator's slack. A pod's memory limit is `PHOTO_MEMORY_BUDGET` plus this.
pub const MEMORY_BASELINE: u64 = 512 << 20;

/// Settings of the photo worker.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`, `RSQ_PREFIX`, `DATABASE_URL`, `HEALTH_ADDR`.
    pub base: BaseConfig,
    /// `PHOTOS_CONCURRENCY` (default 3), `PHOTOS_MAX_ATTEMPTS`, `PHOTOS_JOB_TIMEOUT`,
    /// ... over the `jobs::PHOTOS` catalogue defaults.
    pub worker: WorkerConfig,
    /// `STORAGE_DIR`, `STORAGE_TEMP_MAX_AGE`, `STORAGE_SWEEP_INTERVAL`.
    pub storage: StorageConfig,
    /// `PHOTO_MAX_PIXELS`, `PHOTO_MAX_DIMENSION`, `PHOTO_MAX_DECODE_BYTES`.
    pub limits: ImageLimits,
    /// `PHOTO_MEMORY_BUDGET`: bytes the photos in work may hold at once across
    /// the process (decoded pixels and the pipeline's copies, estimated from
    /// each header before decoding). Holds at least the largest photo allowed.
    pub memory_budget: u64,
    /// `PHOTO_MAX_CANDIDATES`: the most candidate lines OCR reads on one photo
    /// (the best by score).
    pub max_candidates: usize,
    /// `PHOTO_THUMBNAIL_SIZE`: the longest side of a thumbnail (16 to 2048).
    pub thumbnail_size: u32,
    /// `PHOTO_MIN_CONFIDENCE`: detections below this (0 to 1) are dropped.
    pub min_confidence: f32,
    /// `PHOTO_FETCH_ALLOWED_HOSTS`, `PHOTO_FETCH_TIMEOUT`, `PHOTO_FETCH_MAX_BYTES`,
    /// `PHOTO_FETCH_MAX_REDIRECTS`, `PHOTO_FETCH_ALLOW_LOOPBACK`.
    pub fetch: FetchPolicy,
    /// `PHOTOS_RECONCILE_INTERVAL`, `_AFTER`, `_BATCH`.
    pub reconcile: ReconcileConfig,
}

impl Config {
    /// Reads and validates every setting; unset or blank variables take their defaults.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let worker = config::worker_config(vars, &jobs::PHOTOS)?;
        let storage = config::storage_config(vars, &jobs::PHOTOS, &worker)?;
        let defaults = ImageLimits::default();
        let limits = ImageLimits {
            max_pixels: positive(vars, "PHOTO_MAX_PIXELS", defaults.max_pixels)?,
            max_dimension: u32::try_from(positive(
                vars,
                "PHOTO_MAX_DIMENSION",
                u64::from(defaults.max_dimension),
            )?)
            .map_err(|_| ConfigError::new("PHOTO_MAX_DIMENSION", "must be at most 4294967295"))?,
            max_decode_bytes: positive(vars, "PHOTO_MAX_DECODE_BYTES", defaults.max_decode_bytes)?,
        };
        // A decoded RGBA pixel is 4 bytes: the pixel limit must fit in the allocation limit.
        if limits.max_pixels.saturating_mul(4) > limits.max_decode_bytes {
            return Err(ConfigError::new(
                "PHOTO_MAX_DECODE_BYTES",
                format!(
                    "must be at least 4 bytes per pixel of PHOTO_MAX_PIXELS ({} bytes)",
                    limits.max_pixels.saturating_mul(4)
                ),
            ));
        }
        let thumbnail_size = config::integer(vars, "PHOTO_THUMBNAIL_SIZE", DEFAULT_THUMBNAIL_SIZE)?;
        if !(16..=2048).contains(&thumbnail_size) {
            return Err(ConfigError::new(
                "PHOTO_THUMBNAIL_SIZE",
                "must be between 16 and 2048 pixels",
            ));
        }
        let min_confidence: f32 =
            config::parse(vars, "PHOTO_MIN_CONFIDENCE", DEFAULT_MIN_CONFIDENCE)?;
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(ConfigError::new(
                "PHOTO_MIN_CONFIDENCE",
                "must be between 0 and 1",
            ));
        }
        let fetch = fetch_policy(vars, worker.job_timeout)?;
        let memory_budget = byte_size(vars, "PHOTO_MEMORY_BUDGET", DEFAULT_MEMORY_BUDGET)?;
        let largest = imaging::largest_working_bytes(&limits, fetch.max_bytes);
        if memory_budget < largest {
            return Err(ConfigError::new(
                "PHOTO_MEMORY_BUDGET",
                format!(
                    "must hold the largest photo PHOTO_MAX_PIXELS and PHOTO_MAX_DIMENSION allow \
                     (about {} MiB for a square RGBA image of {} pixels)",
                    largest.div_ceil(1 << 20),
                    limits.max_pixels
                ),
            ));
        }
        let max_candidates = config::nonzero(
            vars,
            "PHOTO_MAX_CANDIDATES",
            NonZeroUsize::new(bib_detect::DEFAULT_MAX_CANDIDATES).unwrap_or(NonZeroUsize::MIN),
        )?
        .get();
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker,
            storage,
            limits,
            memory_budget,
            max_candidates,
            thumbnail_size,
            min_confidence,
            fetch,
            reconcile: config::reconcile_config(vars, &jobs::PHOTOS)?,
        })
    }
}

/// `name` as a whole number of at least 1.
fn positive(vars: &dyn Vars, name: &str, default: u64) -> Result<u64, ConfigError> {
    let n: NonZeroU64 = config::nonzero(
        vars,
        name,
        NonZeroU64::new(default).unwrap_or(NonZeroU64::MIN),
    )?;
    Ok(n.get())
}

/// `name` as a number of bytes: a whole number with an optional unit, binary
/// (`KiB`, `MiB`, `GiB`, or Kubernetes' `Ki`, `Mi`, `Gi`) or decimal (`kB`,
/// `MB`, `GB`): `1GiB`, `1536Mi`, `500MB`, `1073741824`.
fn byte_size(vars: &dyn Vars, name: &str, default: u64) -> Result<u64, ConfigError> {
    let Some(value) = config::optional(vars, name) else {
        return Ok(default);
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(ConfigError::new(
                name,
                format!(
                    "{value:?}: the unit must be one of B, KiB, MiB, GiB (Ki, Mi, Gi), kB, MB, GB"
                ),
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            ConfigError::new(
                name,
                format!("{value:?} is not a positive number of bytes (such as 1GiB)"),
            )
        })
}

/// The `PHOTO_FETCH_*` variables.
fn fetch_policy(vars: &dyn Vars, job_timeout: Duration) -> Result<FetchPolicy, ConfigError> {
    let defaults = FetchPolicy::default();
    let allowed_hosts = config::string(vars, "PHOTO_FETCH_ALLOWED_HOSTS", "")
        .parse::<AllowedHosts>()
        .map_err(|rule| ConfigError::new("PHOTO_FETCH_ALLOWED_HOSTS", rule))?;
    let timeout = config::duration(vars, "PHOTO_FETCH_TIMEOUT", defaults.timeout)?;
    if timeout.is_zero() || timeout >= job_timeout {
        return Err(ConfigError::new(
            "PHOTO_FETCH_TIMEOUT",
            format!(
                "must be above 0 and less than PHOTOS_JOB_TIMEOUT ({job_timeout:?}), or the job times out before the fetch"
            ),
        ));
    }
    Ok(FetchPolicy {
        allowed_hosts,
        timeout,
        max_bytes: positive(vars, "PHOTO_FETCH_MAX_BYTES", defaults.max_bytes)?,
        max_redirects: config::integer(vars, "PHOTO_FETCH_MAX_REDIRECTS", defaults.max_redirects)?,
        allow_loopback: config::boolean(vars, "PHOTO_FETCH_ALLOW_LOOPBACK", false)?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The kit's settings have their defaults tested in `service::config`.
    #[test]
    fn defaults_bound_each_photo_and_fetch_nothing() {
        let none: [(&str, &str); 0] = [];
        let c = Config::from_vars(&none).expect("defaults are valid");
        assert_eq!(c.limits, ImageLimits::default());
        assert_eq!(c.limits.max_pixels, 50_000_000);
        assert_eq!(c.thumbnail_size, 320);
        assert_eq!(c.min_confidence, 0.5);
        assert_eq!(c.memory_budget, 1 << 30);
        assert_eq!(c.max_candidates, 32);
        assert!(
            c.fetch.allowed_hosts.is_empty(),
            "no URL is fetched unless allowed"
        );
        assert!(!c.fetch.allow_loopback);
        assert_eq!(c.fetch.timeout, Duration::from_secs(20));
        assert_eq!(c.fetch.max_bytes, 25 * 1024 * 1024);
        assert_eq!(c.fetch.max_redirects, 5);
        assert_eq!(c.base.health_addr.port(), DEFAULT_HEALTH_PORT);
    }

    #[test]
    fn every_own_variable_is_read() {
        let c = Config::from_vars(&[
            ("STORAGE_DIR", "/var/lib/rsq"),
            ("HEALTH_ADDR", "0.0.0.0:0"),
            ("PHOTOS_CONCURRENCY", "6"),
            ("PHOTO_MAX_PIXELS", "1000000"),
            ("PHOTO_MAX_DIMENSION", "4000"),
            ("PHOTO_MAX_DECODE_BYTES", "8000000"),
            ("PHOTO_MEMORY_BUDGET", "1536Mi"),
            ("PHOTO_MAX_CANDIDATES", "8"),
            ("PHOTO_THUMBNAIL_SIZE", "200"),
            ("PHOTO_MIN_CONFIDENCE", "0.7"),
            (
                "PHOTO_FETCH_ALLOWED_HOSTS",
                "photos.example.com, *.cdn.example.org",
            ),
            ("PHOTO_FETCH_TIMEOUT", "5s"),
            ("PHOTO_FETCH_MAX_BYTES", "1000"),
            ("PHOTO_FETCH_MAX_REDIRECTS", "0"),
            ("PHOTO_FETCH_ALLOW_LOOPBACK", "true"),
            ("PHOTOS_RECONCILE_AFTER", "2m"),
        ])
        .expect("valid");
        assert_eq!(c.storage.dir, PathBuf::from("/var/lib/rsq"));
        assert_eq!(c.worker.concurrency.get(), 6);
        assert_eq!(
            (
                c.limits.max_pixels,
                c.limits.max_dimension,
                c.limits.max_decode_bytes
            ),
            (1_000_000, 4000, 8_000_000)
        );
        assert_eq!(c.memory_budget, 1536 << 20);
        assert_eq!(c.max_candidates, 8);
        assert_eq!(c.thumbnail_size, 200);
        assert_eq!(c.min_confidence, 0.7);
        assert!(c.fetch.allowed_hosts.allows("photos.example.com"));
        assert!(c.fetch.allowed_hosts.allows("a.cdn.example.org"));
        assert!(!c.fetch.allowed_hosts.allows("example.com"));
        assert_eq!(c.fetch.timeout, Duration::from_secs(5));
        assert_eq!((c.fetch.max_bytes, c.fetch.max_redirects), (1000, 0));
        assert!(c.fetch.allow_loopback);
        assert_eq!(c.reconcile.after, Duration::from_secs(120));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("PHOTOS_CONCURRENCY", "0"),
            ("PHOTO_MAX_PIXELS", "0"),
            ("PHOTO_MAX_DECODE_BYTES", "1000"),
            ("PHOTO_MEMORY_BUDGET", "1 TB"),
            ("PHOTO_MEMORY_BUDGET", "0"),
            ("PHOTO_MEMORY_BUDGET", "GiB"),
            ("PHOTO_MEMORY_BUDGET", "99999999999GiB"),
            ("PHOTO_MEMORY_BUDGET", "64MiB"),
            ("PHOTO_MAX_CANDIDATES", "0"),
            ("PHOTO_THUMBNAIL_SIZE", "8"),
            ("PHOTO_MIN_CONFIDENCE", "1.5"),
            ("PHOTO_FETCH_ALLOWED_HOSTS", "http://example.com"),
            ("PHOTO_FETCH_TIMEOUT", "10m"),
            ("PHOTO_FETCH_MAX_BYTES", "0"),
            ("PHOTO_FETCH_ALLOW_LOOPBACK", "maybe"),
            ("PHOTOS_RECONCILE_BATCH", "0"),
            ("STORAGE_TEMP_MAX_AGE", "1m"),
        ] {
            let err = Config::from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn the_manifest_limit_is_the_memory_budget_plus_the_baseline() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/k8s/base/photo-worker.yaml"
        );
        let manifest = std::fs::read_to_string(path).expect("the manifest");
        let value_of = |key: &str, end: &str| -> String {
            let at = manifest
                .find(key)
                .unwrap_or_else(|| panic!("{key} in {path}"))
                + key.len();
            manifest[at..]
                .split(end)
                .next()
                .expect("a value")
                .trim()
                .to_owned()
        };
        let budget = value_of("{name: PHOTO_MEMORY_BUDGET, value: \"", "\"");
        let limit = value_of("limits: {memory: ", "}");
        let c = Config::from_vars(&[
            ("PHOTO_MEMORY_BUDGET", budget.as_str()),
            (
                "PHOTO_MAX_PIXELS",
                value_of("{name: PHOTO_MAX_PIXELS, value: \"", "\"").as_str(),
            ),
        ])
        .expect("the manifest's settings are valid");
        let limit = byte_size(&[("LIMIT", limit.as_str())], "LIMIT", 0).expect("a limit");
        assert_eq!(
            limit,
            c.memory_budget + MEMORY_BASELINE,
            "{budget} + 512 Mi"
        );
    }

    #[test]
    fn the_memory_budget_takes_units_and_must_hold_the_largest_photo_allowed() {
        for (value, bytes) in [
            ("2GiB", 2u64 << 30),
            ("1536Mi", 1536 << 20),
            ("2000MB", 2_000_000_000),
            ("1073741824", 1 << 30),
        ] {
            let c = Config::from_vars(&[("PHOTO_MEMORY_BUDGET", value)]).expect(value);
            assert_eq!(c.memory_budget, bytes, "{value}");
        }
        let err = Config::from_vars(&[("PHOTO_MEMORY_BUDGET", "256MiB")]).expect_err("too small");
        assert!(err.to_string().contains("largest photo"), "{err}");
        // Smaller photos fit a smaller budget.
        let c = Config::from_vars(&[
            ("PHOTO_MEMORY_BUDGET", "256MiB"),
            ("PHOTO_MAX_PIXELS", "4000000"),
        ])
        .expect("4 MP photos fit 256 MiB");
        assert_eq!(c.memory_budget, 256 << 20);
    }
}
