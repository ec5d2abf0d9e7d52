//! The gateway's typed configuration, read from a [`Vars`] source: the environment
//! in `main`, a map or a slice of pairs in tests. Errors name the variable and the
//! rule (`ConfigError { var, reason }`).

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use service::config::{self, ConfigError, Vars};
pub use service::config::{Secret, SecretUrl};
use url_guard::AllowedHosts;

/// Image format of new QR codes; it decides the extension of the predefined path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrFormat {
    Png,
    Svg,
}

impl QrFormat {
    pub fn extension(self) -> &'static str {
        match self {
            QrFormat::Png => "png",
            QrFormat::Svg => "svg",
        }
    }
}

impl std::str::FromStr for QrFormat {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "png" => Ok(QrFormat::Png),
            "svg" => Ok(QrFormat::Svg),
            _ => Err("must be png or svg"),
        }
    }
}

/// Shortest bearer token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// `API_BODY_LIMIT_BYTES` default, 2 MiB: a company with the longest name and
/// context accepted (200 + 100,000 characters) fits however its JSON is encoded,
/// even with every character escaped (12 bytes for `\ud83d\ude00`, about 1.2 MB).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;
/// `API_MAX_CONCURRENT_REQUESTS` unless set.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 32;

/// `CONTEXT_MIN_LENGTH` default: a company context longer than this many
/// characters is condensed.
pub const DEFAULT_CONTEXT_MIN_LENGTH: usize = 1500;

/// `WISPRO_PER_PAGE` default: customers asked of Wispro per page by a sync run.
pub const DEFAULT_WISPRO_PER_PAGE: u16 = 100;
/// Largest `WISPRO_PER_PAGE` accepted.
pub const MAX_WISPRO_PER_PAGE: u16 = 1000;

/// `PHOTO_MAX_FILE_BYTES` default, 25 MiB: one photo of a good camera.
pub const DEFAULT_PHOTO_MAX_FILE_BYTES: usize = 25 * 1024 * 1024;
/// `PHOTO_MAX_REQUEST_BYTES` default, 200 MiB: one upload request, every part.
pub const DEFAULT_PHOTO_MAX_REQUEST_BYTES: usize = 200 * 1024 * 1024;
/// `PHOTO_MAX_FILES` default: photos (files or URLs) per request.
pub const DEFAULT_PHOTO_MAX_FILES: usize = 100;
/// `PHOTO_MAX_CONCURRENT_UPLOADS` default: multipart uploads read at once.
pub const DEFAULT_PHOTO_MAX_CONCURRENT_UPLOADS: usize = 8;

/// `HEALTH_ADDR` default port: `/healthz`, `/readyz` and `/metrics` of the
/// gateway (the workers use 9101 to 9105).
pub const DEFAULT_HEALTH_PORT: u16 = 9100;
/// `API_ENQUEUE_TIMEOUT` default: how long a request waits for the enqueue that
/// follows its commit (a local Redis answers in about a millisecond).
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_millis(50);
/// `API_ENQUEUE_BREAKER_FAILURES` default.
pub const DEFAULT_ENQUEUE_BREAKER_FAILURES: u32 = 5;
/// `API_ENQUEUE_BREAKER_COOLDOWN` default.
pub const DEFAULT_ENQUEUE_BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

/// How the enqueue that follows a commit is bounded: a deadline per enqueue,
/// and a circuit breaker that skips enqueues for a while after consecutive
/// failures (the rows stay pending and the workers' reconcilers enqueue them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueueConfig {
    /// `API_ENQUEUE_TIMEOUT`, default 50ms: an enqueue not answered by then
    /// counts as failed (the job may still exist; its key is unique until settled).
    pub timeout: Duration,
    /// `API_ENQUEUE_BREAKER_FAILURES`, default 5: consecutive failed or timed-out
    /// enqueues that open the breaker.
    pub breaker_failures: NonZeroU32,
    /// `API_ENQUEUE_BREAKER_COOLDOWN`, default 5s: how long an open breaker
    /// skips enqueues before one request probes Redis again.
    pub breaker_cooldown: Duration,
}

impl Default for EnqueueConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_ENQUEUE_TIMEOUT,
            breaker_failures: NonZeroU32::new(DEFAULT_ENQUEUE_BREAKER_FAILURES).expect("> 0"),
            breaker_cooldown: DEFAULT_ENQUEUE_BREAKER_COOLDOWN,
        }
    }
}

impl EnqueueConfig {
    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let positive = |name: &str, default: Duration| {
            let value = config::duration(vars, name, default)?;
            if value.is_zero() {
                return Err(ConfigError::new(name, "must be greater than zero"));
            }
            Ok(value)
        };
        Ok(Self {
            timeout: positive("API_ENQUEUE_TIMEOUT", d.timeout)?,
            breaker_failures: config::nonzero(
                vars,
                "API_ENQUEUE_BREAKER_FAILURES",
                d.breaker_failures,
            )?,
            breaker_cooldown: positive("API_ENQUEUE_BREAKER_COOLDOWN", d.breaker_cooldown)?,
        })
    }
}

/// How much `POST /api/photos` takes, and from where photos may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoConfig {
    /// `PHOTO_MAX_FILE_BYTES`, default 25 MiB: a larger file is 413.
    pub max_file_bytes: NonZeroUsize,
    /// `PHOTO_MAX_REQUEST_BYTES`, default 200 MiB: a larger upload is 413; the
    /// body limit of this route (`API_BODY_LIMIT_BYTES` is for the others).
    pub max_request_bytes: NonZeroUsize,
    /// `PHOTO_MAX_FILES`, default 100: more files or URLs in one request is 422.
    pub max_files: NonZeroUsize,
    /// `PHOTO_MAX_CONCURRENT_UPLOADS`, default 8: multipart uploads read at
    /// once; one more is answered 503 `busy` with `Retry-After`.
    pub max_concurrent_uploads: NonZeroUsize,
    /// `PHOTO_FETCH_ALLOWED_HOSTS`: comma-separated hosts (`photos.example.com`)
    /// or wildcards (`*.example.com`) a photo may be given by URL from; empty
    /// (the default) refuses photos by URL. The photo-worker reads the same
    /// variable and checks every address and redirect when it fetches.
    pub fetch_allowed_hosts: AllowedHosts,
}

impl Default for PhotoConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: NonZeroUsize::new(DEFAULT_PHOTO_MAX_FILE_BYTES).expect("> 0"),
            max_request_bytes: NonZeroUsize::new(DEFAULT_PHOTO_MAX_REQUEST_BYTES).expect("> 0"),
            max_files: NonZeroUsize::new(DEFAULT_PHOTO_MAX_FILES).expect("> 0"),
            max_concurrent_uploads: NonZeroUsize::new(DEFAULT_PHOTO_MAX_CONCURRENT_UPLOADS)
                .expect("> 0"),
            fetch_allowed_hosts: AllowedHosts::default(),
        }
    }
}

impl PhotoConfig {
    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let max_file_bytes = config::nonzero(vars, "PHOTO_MAX_FILE_BYTES", d.max_file_bytes)?;
        let max_request_bytes =
            config::nonzero(vars, "PHOTO_MAX_REQUEST_BYTES", d.max_request_bytes)?;
        if max_request_bytes < max_file_bytes {
            return Err(ConfigError::new(
                "PHOTO_MAX_REQUEST_BYTES",
                format!("must be at least PHOTO_MAX_FILE_BYTES ({max_file_bytes})"),
            ));
        }
        let fetch_allowed_hosts = config::string(vars, "PHOTO_FETCH_ALLOWED_HOSTS", "")
            .parse()
            .map_err(|rule| ConfigError::new("PHOTO_FETCH_ALLOWED_HOSTS", rule))?;
        Ok(Self {
            max_file_bytes,
            max_request_bytes,
            max_files: config::nonzero(vars, "PHOTO_MAX_FILES", d.max_files)?,
            max_concurrent_uploads: config::nonzero(
                vars,
                "PHOTO_MAX_CONCURRENT_UPLOADS",
                d.max_concurrent_uploads,
            )?,
            fetch_allowed_hosts,
        })
    }
}

/// `DASHBOARD_SESSION_TTL` default: a dashboard sign-in lasts a working day.
pub const DEFAULT_DASHBOARD_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The dashboard's sessions (`/dashboard`, [`crate::dashboard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// `DASHBOARD_SESSION_TTL`, default 8h: a session ends this long after its
    /// sign-in (sooner when its key is revoked or expires).
    pub session_ttl: Duration,
    /// `DASHBOARD_SECURE_COOKIE`, default false: mark the session cookie
    /// `Secure` on every response. Without it, the cookie is `Secure` when the
    /// request came over TLS (`X-Forwarded-Proto: https` from the proxy).
    pub secure_cookie: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            session_ttl: DEFAULT_DASHBOARD_SESSION_TTL,
            secure_cookie: false,
        }
    }
}

impl DashboardConfig {
    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let session_ttl = config::duration(vars, "DASHBOARD_SESSION_TTL", d.session_ttl)?;
        if session_ttl < Duration::from_secs(60) {
            return Err(ConfigError::new(
                "DASHBOARD_SESSION_TTL",
                "must be at least 1m",
            ));
        }
        Ok(Self {
            session_ttl,
            secure_cookie: config::boolean(vars, "DASHBOARD_SECURE_COOKIE", d.secure_cookie)?,
        })
    }
}

/// Everything the gateway reads. Tests build it directly.
#[derive(Debug, Clone)]
pub struct Config {
    /// `API_ADDR`, default 127.0.0.1:8080; port 0 picks a free one (tests).
    pub api_addr: SocketAddr,
    /// `HEALTH_ADDR`, default 127.0.0.1:9100: `/healthz`, `/readyz` (with the
    /// dependencies' details) and `/metrics`, without a token, off the API port.
    pub health_addr: SocketAddr,
    /// `REDIS_URL`
    pub redis_url: SecretUrl,
    /// `REDIS_CLUSTER`
    pub redis_cluster: bool,
    /// `RSQ_PREFIX`: Redis key prefix, default `rsq`.
    pub redis_prefix: String,
    /// `DATABASE_URL`
    pub database_url: SecretUrl,
    /// `DATABASE_MAX_CONNECTIONS`, default 20.
    pub database_max_connections: NonZeroU32,
    /// `STORAGE_DIR`, default `./storage`.
    pub storage_dir: PathBuf,
    /// `API_ADMIN_TOKEN`: bearer token of the admin role (queues, sync).
    pub admin_token: Secret,
    /// `API_USER_TOKEN`: bearer token of the user role (registrations, status).
    pub user_token: Secret,
    /// `QR_CONTENT_PREFIX`, default `PERSON:`; the QR encodes prefix + document.
    pub qr_content_prefix: String,
    /// `QR_FORMAT`: png (default) or svg.
    pub qr_format: QrFormat,
    /// `API_BODY_LIMIT_BYTES`, default 2 MiB (2097152); larger bodies are 413.
    pub body_limit_bytes: NonZeroUsize,
    /// `API_REQUEST_TIMEOUT`, default 30s: a request still running after this is
    /// answered 503 `timeout`.
    pub request_timeout: Duration,
    /// `API_MAX_CONCURRENT_REQUESTS`, default 32: requests handled at once; the
    /// next ones wait their turn (within `API_REQUEST_TIMEOUT`) before their
    /// body is read, so memory is bounded by this times the body limit
    /// whatever the number of clients (deploy/k8s/base/api-gateway.yaml's limit
    /// follows from it).
    pub max_concurrent_requests: NonZeroUsize,
    /// `API_ENQUEUE_TIMEOUT`, `API_ENQUEUE_BREAKER_FAILURES`,
    /// `API_ENQUEUE_BREAKER_COOLDOWN`.
    pub enqueue: EnqueueConfig,
    /// `CONTEXT_MIN_LENGTH`, default 1500: a company context longer than this many
    /// characters (Unicode scalar values) is condensed by the context-worker
    /// (`pending`); one of this length or shorter is used as it is (`skipped`).
    pub context_min_length: usize,
    /// `WISPRO_PER_PAGE`, default 100, 1 to 1000: the page size a new Wispro sync
    /// run records (`sync_runs.per_page`) and the sync-worker asks for.
    pub wispro_per_page: u16,
    /// `PHOTO_MAX_FILE_BYTES`, `PHOTO_MAX_REQUEST_BYTES`, `PHOTO_MAX_FILES`,
    /// `PHOTO_FETCH_ALLOWED_HOSTS`.
    pub photos: PhotoConfig,
    /// `BANK_URL`, `BANK_API_KEY`, `BANK_TIMEOUT` and the check schedule
    /// (`PAYMENT_CHECK_DELAY_*`, `PAYMENT_MAX_CHECKS`), read as the
    /// payment-scheduler reads them (the `payments` crate).
    pub payments: PaymentsConfig,
    /// `DASHBOARD_SESSION_TTL`, `DASHBOARD_SECURE_COOKIE`.
    pub dashboard: DashboardConfig,
    /// `API_KEY_CACHE_TTL`, `API_AUTH_MAX_FAILURES`, `API_AUTH_FAILURE_WINDOW`,
    /// `API_TRUST_FORWARDED_FOR`.
    pub auth: AuthConfig,
}

/// How keys are checked: the cache of verified keys and the slow-down of
/// repeated failures.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `API_KEY_CACHE_TTL`, default 15s: how long a verified key is trusted
    /// without asking PostgreSQL again, so also the longest a revoked or
    /// expired key keeps working on another replica.
    pub key_cache_ttl: Duration,
    /// `API_AUTH_MAX_FAILURES`, default 10: wrong keys from one client address
    /// within `API_AUTH_FAILURE_WINDOW`; then it is answered 429 until the
    /// window ends.
    pub max_failures: NonZeroU32,
    /// `API_AUTH_FAILURE_WINDOW`, default 60s.
    pub failure_window: Duration,
    /// `API_TRUST_FORWARDED_FOR`, default false: take the client address from
    /// the last `X-Forwarded-For` entry (the one our proxy added); only behind
    /// a proxy that sets it, or any client could pick its address.
    pub trust_forwarded_for: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            key_cache_ttl: Duration::from_secs(15),
            max_failures: NonZeroU32::new(10).expect("10 > 0"),
            failure_window: Duration::from_secs(60),
            trust_forwarded_for: false,
        }
    }
}

impl AuthConfig {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let failure_window = config::duration(vars, "API_AUTH_FAILURE_WINDOW", d.failure_window)?;
        if failure_window.is_zero() {
            return Err(ConfigError::new(
                "API_AUTH_FAILURE_WINDOW",
                "must be greater than zero",
            ));
        }
        Ok(Self {
            key_cache_ttl: config::duration(vars, "API_KEY_CACHE_TTL", d.key_cache_ttl)?,
            max_failures: config::nonzero(vars, "API_AUTH_MAX_FAILURES", d.max_failures)?,
            failure_window,
            trust_forwarded_for: config::boolean(
                vars,
                "API_TRUST_FORWARDED_FOR",
                d.trust_forwarded_for,
            )?,
        })
    }
}

/// What the payment routes need: the bank, when a new payment's first check
/// runs, and how the bank's notifications are authenticated.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    pub bank: payments::BankConfig,
    pub schedule: payments::ScheduleConfig,
    pub notify: NotifyConfig,
}

impl PaymentsConfig {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            bank: payments::BankConfig::from_vars(vars)?,
            schedule: payments::ScheduleConfig::from_vars(vars)?,
            notify: NotifyConfig::from_vars(vars)?,
        })
    }
}

/// `POST /api/payments/notifications`: the bank's "this QR was paid" callback
/// (`crate::signature`).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `BANK_NOTIFY_SECRET`: the secret shared with the bank, at least
    /// [`MIN_TOKEN_LEN`] characters; unset, notifications are answered 503 and
    /// payments are confirmed by polling alone.
    pub secret: Option<Secret>,
    /// `BANK_NOTIFY_MAX_AGE`, default 5m: how far a signed notification's
    /// `X-Timestamp` may be from our clock.
    pub max_age: Duration,
}

impl NotifyConfig {
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        const SECRET: &str = "BANK_NOTIFY_SECRET";
        let secret = config::secret(vars, SECRET);
        if let Some(s) = &secret
            && s.expose().chars().count() < MIN_TOKEN_LEN
        {
            return Err(ConfigError::new(
                SECRET,
                format!("is too short: use at least {MIN_TOKEN_LEN} characters"),
            ));
        }
        let max_age = config::duration(vars, "BANK_NOTIFY_MAX_AGE", Self::DEFAULT_MAX_AGE)?;
        if max_age.is_zero() {
            return Err(ConfigError::new(
                "BANK_NOTIFY_MAX_AGE",
                "must be greater than zero",
            ));
        }
        Ok(Self { secret, max_age })
    }
}

impl Default for PaymentsConfig {
    /// The defaults of every variable.
    fn default() -> Self {
        let none: [(&str, &str); 0] = [];
        Self::from_vars(&none).expect("the defaults are valid")
    }
}

impl Config {
    /// Reads and validates every variable; nothing is connected or bound yet.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let admin_token = token(vars, "API_ADMIN_TOKEN")?;
        let user_token = token(vars, "API_USER_TOKEN")?;
        if admin_token == user_token {
            return Err(ConfigError::new(
                "API_USER_TOKEN",
                "must differ from API_ADMIN_TOKEN",
            ));
        }
        let request_timeout =
            config::duration(vars, "API_REQUEST_TIMEOUT", Duration::from_secs(30))?;
        if request_timeout.is_zero() {
            return Err(ConfigError::new(
                "API_REQUEST_TIMEOUT",
                "must be greater than zero",
            ));
        }
        Ok(Self {
            api_addr: config::socket_addr(
                vars,
                "API_ADDR",
                SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            )?,
            health_addr: config::health_addr(vars, DEFAULT_HEALTH_PORT)?,
            redis_url: config::redis_url(vars)?,
            redis_cluster: config::redis_cluster(vars)?,
            redis_prefix: config::redis_prefix(vars)?,
            database_url: config::database_url(vars)?,
            database_max_connections: config::nonzero(
                vars,
                "DATABASE_MAX_CONNECTIONS",
                NonZeroU32::new(20).expect("20 > 0"),
            )?,
            storage_dir: PathBuf::from(config::string(vars, "STORAGE_DIR", "./storage")),
            admin_token,
            user_token,
            qr_content_prefix: config::string(vars, "QR_CONTENT_PREFIX", "PERSON:"),
            qr_format: config::parse(vars, "QR_FORMAT", QrFormat::Png)?,
            body_limit_bytes: config::nonzero(
                vars,
                "API_BODY_LIMIT_BYTES",
                NonZeroUsize::new(DEFAULT_BODY_LIMIT_BYTES).expect("2 MiB > 0"),
            )?,
            request_timeout,
            max_concurrent_requests: config::nonzero(
                vars,
                "API_MAX_CONCURRENT_REQUESTS",
                NonZeroUsize::new(DEFAULT_MAX_CONCURRENT_REQUESTS).expect("32 > 0"),
            )?,
            enqueue: EnqueueConfig::from_vars(vars)?,
            context_min_length: config::integer(
                vars,
                "CONTEXT_MIN_LENGTH",
                DEFAULT_CONTEXT_MIN_LENGTH,
            )?,
            wispro_per_page: wispro_per_page(vars)?,
            photos: PhotoConfig::from_vars(vars)?,
            payments: PaymentsConfig::from_vars(vars)?,
            dashboard: DashboardConfig::from_vars(vars)?,
            auth: AuthConfig::from_vars(vars)?,
        })
    }
}

/// `WISPRO_PER_PAGE`: a whole number from 1 to [`MAX_WISPRO_PER_PAGE`].
fn wispro_per_page(vars: &dyn Vars) -> Result<u16, ConfigError> {
    const VAR: &str = "WISPRO_PER_PAGE";
    let rule = || format!("must be a whole number from 1 to {MAX_WISPRO_PER_PAGE}");
    let raw = config::string(vars, VAR, &DEFAULT_WISPRO_PER_PAGE.to_string());
    match raw.trim().parse::<u16>() {
        Ok(n) if (1..=MAX_WISPRO_PER_PAGE).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(VAR, format!("{raw:?} {}", rule()))),
    }
}

/// A required bearer token of at least [`MIN_TOKEN_LEN`] characters.
fn token(vars: &dyn Vars, name: &str) -> Result<Secret, ConfigError> {
    let token = config::secret(vars, name).ok_or_else(|| {
        ConfigError::new(
            name,
            format!("is not set: give it a random token of at least {MIN_TOKEN_LEN} characters"),
        )
    })?;
    if token.expose().chars().count() < MIN_TOKEN_LEN {
        return Err(ConfigError::new(
            name,
            format!("is too short: use at least {MIN_TOKEN_LEN} characters"),
        ));
    }
    Ok(token)
}

/// What `api-gateway migrate` reads: `DATABASE_URL`, and Redis only when
/// `REDIS_URL` is set, so an init container or a CI job needs no token.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    /// `DATABASE_URL`
    pub database_url: SecretUrl,
    /// The Redis whose queues get their streams and consumer groups; None when
    /// `REDIS_URL` is unset (migrations only).
    pub redis: Option<MigrateRedis>,
}

/// `REDIS_URL`, `REDIS_CLUSTER` and `RSQ_PREFIX`, as the services read them.
#[derive(Debug, Clone)]
pub struct MigrateRedis {
    pub url: SecretUrl,
    pub cluster: bool,
    pub prefix: String,
}

impl MigrateConfig {
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let redis = match config::optional(vars, "REDIS_URL") {
            None => None,
            Some(_) => Some(MigrateRedis {
                url: config::redis_url(vars)?,
                cluster: config::redis_cluster(vars)?,
                prefix: config::redis_prefix(vars)?,
            }),
        };
        Ok(Self {
            database_url: config::database_url(vars)?,
            redis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "admin-token-0123456789";
    const USER: &str = "user-token-0123456789";

    fn with_tokens<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut vars = vec![("API_ADMIN_TOKEN", ADMIN), ("API_USER_TOKEN", USER)];
        vars.extend_from_slice(more);
        vars
    }

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&vars)
    }

    #[test]
    fn only_the_tokens_are_required_and_everything_else_has_its_documented_default() {
        let c = read(&with_tokens(&[])).expect("valid");
        assert_eq!(c.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.health_addr.to_string(), "127.0.0.1:9100");
        assert_eq!(c.enqueue.timeout, Duration::from_millis(50));
        assert_eq!(c.enqueue.breaker_failures.get(), 5);
        assert_eq!(c.enqueue.breaker_cooldown, Duration::from_secs(5));
        assert_eq!(c.photos.max_concurrent_uploads.get(), 8);
        assert_eq!(c.redis_url.expose(), config::DEFAULT_REDIS_URL);
        assert_eq!(c.redis_prefix, "rsq");
        assert_eq!(c.database_url.expose(), config::DEFAULT_DATABASE_URL);
        assert_eq!(c.database_max_connections.get(), 20);
        assert_eq!(c.storage_dir, PathBuf::from("./storage"));
        assert_eq!(c.admin_token.expose(), ADMIN);
        assert_eq!(c.user_token.expose(), USER);
        assert_eq!(c.qr_content_prefix, "PERSON:");
        assert_eq!(c.qr_format, QrFormat::Png);
        assert_eq!(c.body_limit_bytes.get(), 2_097_152);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.max_concurrent_requests.get(), 32);
        assert_eq!(c.context_min_length, 1500);
        assert_eq!(c.wispro_per_page, 100);
        assert_eq!(c.photos, PhotoConfig::default());
        assert_eq!(c.photos.max_file_bytes.get(), 26_214_400);
        assert_eq!(c.photos.max_request_bytes.get(), 209_715_200);
        assert_eq!(c.photos.max_files.get(), 100);
        assert!(c.photos.fetch_allowed_hosts.is_empty());
        assert_eq!(c.payments.bank.url, "http://127.0.0.1:9200");
        assert_eq!(c.payments.bank.timeout, Duration::from_secs(10));
        assert_eq!(c.payments.schedule.delay_pending, Duration::from_secs(120));
    }

    #[test]
    fn the_bank_and_the_first_check_are_read_as_the_payment_scheduler_reads_them() {
        let c = read(&with_tokens(&[
            ("BANK_URL", "https://bank.example/"),
            ("BANK_API_KEY", "bank-key-secret"),
            ("BANK_TIMEOUT", "5s"),
            ("PAYMENT_CHECK_DELAY_PENDING", "30s"),
        ]))
        .expect("valid");
        assert_eq!(c.payments.bank.url, "https://bank.example");
        assert_eq!(c.payments.bank.timeout, Duration::from_secs(5));
        assert_eq!(c.payments.schedule.delay_pending, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("bank-key-secret"));
        for (var, value, rule) in [
            ("BANK_URL", "ftp://bank", "http://"),
            ("BANK_TIMEOUT", "0s", "greater than zero"),
            ("PAYMENT_CHECK_DELAY_PENDING", "soon", "duration"),
        ] {
            let err = read(&with_tokens(&[(var, value)])).expect_err(var);
            assert_eq!(err.var, var, "{err}");
            assert!(err.reason.contains(rule), "{err}");
        }
    }

    #[test]
    fn bank_notifications_need_a_long_enough_secret_and_are_off_without_one() {
        let c = read(&with_tokens(&[])).expect("valid");
        assert!(c.payments.notify.secret.is_none());
        assert_eq!(c.payments.notify.max_age, Duration::from_secs(300));
        let c = read(&with_tokens(&[
            ("BANK_NOTIFY_SECRET", "notify-secret-0123456789"),
            ("BANK_NOTIFY_MAX_AGE", "1m"),
        ]))
        .expect("valid");
        let secret = c.payments.notify.secret.as_ref().expect("set");
        assert_eq!(secret.expose(), "notify-secret-0123456789");
        assert_eq!(c.payments.notify.max_age, Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("notify-secret-0123456789"));
        for (var, value, rule) in [
            ("BANK_NOTIFY_SECRET", "short", "at least 16"),
            ("BANK_NOTIFY_MAX_AGE", "0s", "greater than zero"),
            ("BANK_NOTIFY_MAX_AGE", "later", "duration"),
        ] {
            let err = read(&with_tokens(&[(var, value)])).expect_err(var);
            assert_eq!(err.var, var, "{err}");
            assert!(err.reason.contains(rule), "{err}");
        }
    }

    #[test]
    fn every_variable_is_read() {
        let c = read(&with_tokens(&[
            ("API_ADDR", "0.0.0.0:0"),
            ("HEALTH_ADDR", "0.0.0.0:9000"),
            ("API_ENQUEUE_TIMEOUT", "20ms"),
            ("API_ENQUEUE_BREAKER_FAILURES", "2"),
            ("API_ENQUEUE_BREAKER_COOLDOWN", "1s"),
            ("PHOTO_MAX_CONCURRENT_UPLOADS", "3"),
            ("REDIS_URL", "rediss://:pw@redis:6380"),
            ("RSQ_PREFIX", "staging"),
            ("DATABASE_URL", "postgresql://app:pw@db/app"),
            ("DATABASE_MAX_CONNECTIONS", "7"),
            ("STORAGE_DIR", "/var/lib/rsq"),
            ("QR_CONTENT_PREFIX", "ID:"),
            ("QR_FORMAT", "svg"),
            ("API_BODY_LIMIT_BYTES", "1024"),
            ("API_REQUEST_TIMEOUT", "500ms"),
            ("API_MAX_CONCURRENT_REQUESTS", "5"),
            ("CONTEXT_MIN_LENGTH", "0"),
            ("WISPRO_PER_PAGE", "1000"),
            ("PHOTO_MAX_FILE_BYTES", "1000"),
            ("PHOTO_MAX_REQUEST_BYTES", "5000"),
            ("PHOTO_MAX_FILES", "3"),
            (
                "PHOTO_FETCH_ALLOWED_HOSTS",
                "Photos.Example.com, *.cdn.example.org",
            ),
        ]))
        .expect("valid");
        assert_eq!(c.api_addr.to_string(), "0.0.0.0:0");
        assert_eq!(c.health_addr.to_string(), "0.0.0.0:9000");
        assert_eq!(c.enqueue.timeout, Duration::from_millis(20));
        assert_eq!(c.enqueue.breaker_failures.get(), 2);
        assert_eq!(c.enqueue.breaker_cooldown, Duration::from_secs(1));
        assert_eq!(c.photos.max_concurrent_uploads.get(), 3);
        assert_eq!(c.redis_url.expose(), "rediss://:pw@redis:6380");
        assert_eq!(c.redis_prefix, "staging");
        assert_eq!(c.database_url.expose(), "postgresql://app:pw@db/app");
        assert_eq!(c.database_max_connections.get(), 7);
        assert_eq!(c.storage_dir, PathBuf::from("/var/lib/rsq"));
        assert_eq!(c.qr_content_prefix, "ID:");
        assert_eq!(c.qr_format, QrFormat::Svg);
        assert_eq!(c.body_limit_bytes.get(), 1024);
        assert_eq!(c.request_timeout, Duration::from_millis(500));
        assert_eq!(c.max_concurrent_requests.get(), 5);
        assert_eq!(c.context_min_length, 0);
        assert_eq!(c.wispro_per_page, 1000);
        assert_eq!(c.photos.max_file_bytes.get(), 1000);
        assert_eq!(c.photos.max_request_bytes.get(), 5000);
        assert_eq!(c.photos.max_files.get(), 3);
        assert!(c.photos.fetch_allowed_hosts.allows("photos.example.com"));
        assert!(c.photos.fetch_allowed_hosts.allows("a.cdn.example.org"));
        assert!(!c.photos.fetch_allowed_hosts.allows("cdn.example.org"));
        assert!(
            !c.photos
                .fetch_allowed_hosts
                .allows("evilphotos.example.com")
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_rule() {
        let cases = [
            ("API_ADDR", "localhost:8080", "IP:port"),
            ("HEALTH_ADDR", "9100", "IP:port"),
            ("API_ENQUEUE_TIMEOUT", "0s", "greater than zero"),
            ("API_ENQUEUE_TIMEOUT", "50", "such as 30s"),
            ("API_ENQUEUE_BREAKER_FAILURES", "0", "at least 1"),
            ("API_ENQUEUE_BREAKER_COOLDOWN", "0ms", "greater than zero"),
            ("PHOTO_MAX_CONCURRENT_UPLOADS", "0", "at least 1"),
            ("REDIS_URL", "http://redis", "redis://"),
            ("RSQ_PREFIX", "a b", "1 to 64"),
            ("DATABASE_URL", "mysql://db", "postgres://"),
            ("DATABASE_MAX_CONNECTIONS", "0", "at least 1"),
            ("DATABASE_MAX_CONNECTIONS", "many", "whole number"),
            ("QR_FORMAT", "gif", "png or svg"),
            ("API_BODY_LIMIT_BYTES", "0", "at least 1"),
            ("API_REQUEST_TIMEOUT", "30", "such as 30s"),
            ("API_REQUEST_TIMEOUT", "0s", "greater than zero"),
            ("API_MAX_CONCURRENT_REQUESTS", "0", "at least 1"),
            ("CONTEXT_MIN_LENGTH", "-1", "whole number"),
            ("CONTEXT_MIN_LENGTH", "1.5k", "whole number"),
            ("WISPRO_PER_PAGE", "0", "from 1 to 1000"),
            ("WISPRO_PER_PAGE", "1001", "from 1 to 1000"),
            ("WISPRO_PER_PAGE", "-5", "from 1 to 1000"),
            ("WISPRO_PER_PAGE", "many", "whole number"),
            ("PHOTO_MAX_FILE_BYTES", "0", "at least 1"),
            (
                "PHOTO_MAX_REQUEST_BYTES",
                "10",
                "at least PHOTO_MAX_FILE_BYTES",
            ),
            ("PHOTO_MAX_FILES", "none", "whole number"),
            (
                "PHOTO_FETCH_ALLOWED_HOSTS",
                "https://example.com",
                "host name",
            ),
        ];
        for (var, value, rule) in cases {
            let err = read(&with_tokens(&[(var, value)])).expect_err(var);
            assert_eq!(err.var, var, "{err}");
            assert!(err.reason.contains(rule), "{var}={value}: {err}");
        }
    }

    #[test]
    fn tokens_are_required_long_and_different() {
        let err = read(&[("API_USER_TOKEN", USER)]).expect_err("no admin token");
        assert_eq!(err.var, "API_ADMIN_TOKEN");
        assert!(err.reason.contains("not set"), "{err}");
        let err = read(&[("API_ADMIN_TOKEN", ADMIN)]).expect_err("no user token");
        assert_eq!(err.var, "API_USER_TOKEN");
        let err = read(&[("API_ADMIN_TOKEN", ADMIN), ("API_USER_TOKEN", "tiny-tok")])
            .expect_err("short token");
        assert_eq!(err.var, "API_USER_TOKEN");
        assert!(err.reason.contains("at least 16"), "{err}");
        assert!(
            !err.to_string().contains("tiny-tok"),
            "the token is not shown"
        );
        let err =
            read(&[("API_ADMIN_TOKEN", ADMIN), ("API_USER_TOKEN", ADMIN)]).expect_err("same token");
        assert_eq!(err.var, "API_USER_TOKEN");
        assert!(err.reason.contains("differ"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let c = read(&with_tokens(&[
            ("DATABASE_URL", "postgres://app:dbpw@db/app"),
            ("REDIS_URL", "redis://:redispw@redis"),
        ]))
        .expect("valid");
        let shown = format!("{c:?}");
        for secret in [ADMIN, USER, "dbpw", "redispw"] {
            assert!(!shown.contains(secret), "{secret} printed: {shown}");
        }
    }

    #[test]
    fn migrate_reads_only_the_database_url() {
        let none: [(&str, &str); 0] = [];
        let m = MigrateConfig::from_vars(&none).expect("no token needed");
        assert_eq!(m.database_url.expose(), config::DEFAULT_DATABASE_URL);
        assert!(m.redis.is_none(), "no REDIS_URL, no Redis");
        let vars = [
            ("DATABASE_URL", "postgres://db/app"),
            ("API_USER_TOKEN", "short"),
            ("API_REQUEST_TIMEOUT", "not read"),
        ];
        let m = MigrateConfig::from_vars(&vars).expect("other variables are not read");
        assert_eq!(m.database_url.expose(), "postgres://db/app");
        let err = MigrateConfig::from_vars(&[("DATABASE_URL", "mysql://db")]).expect_err("bad");
        assert_eq!(err.var, "DATABASE_URL");
    }

    #[test]
    fn migrate_reads_redis_when_its_url_is_set() {
        let m = MigrateConfig::from_vars(&[
            ("REDIS_URL", "redis://:pw@redis:6379"),
            ("REDIS_CLUSTER", "true"),
            ("RSQ_PREFIX", "staging"),
        ])
        .expect("valid");
        let redis = m.redis.expect("REDIS_URL is set");
        assert_eq!(redis.url.expose(), "redis://:pw@redis:6379");
        assert!(redis.cluster);
        assert_eq!(redis.prefix, "staging");
        for (var, value) in [
            ("REDIS_URL", "http://redis"),
            ("REDIS_CLUSTER", "maybe"),
            ("RSQ_PREFIX", "no spaces"),
        ] {
            let mut vars = vec![("REDIS_URL", "redis://redis")];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = MigrateConfig::from_vars(&vars.as_slice()).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
