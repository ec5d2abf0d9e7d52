//! The worker's settings: its own variables (`LLM_URL`, `LLM_API`, `LLM_MODEL`,
//! `LLM_API_KEY`, `LLM_TIMEOUT`, `CONTEXT_RECONCILE_*`) on top of the `service`
//! kit's base and per-queue settings.

use std::str::FromStr;
use std::time::Duration;

use queue_core::WorkerConfig;
use service::Secret;
use service::config::{self, BaseConfig, ConfigError, ReconcileConfig, Vars};

/// `HEALTH_ADDR` is `127.0.0.1:9102` unless set.
pub const DEFAULT_HEALTH_PORT: u16 = 9102;
/// The simulator of the demo stack.
pub const DEFAULT_LLM_URL: &str = "http://127.0.0.1:9200";
pub const DEFAULT_LLM_MODEL: &str = "gpt-oss";
pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs(45);

/// Which request form the LLM server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmApi {
    /// `POST /v1/chat/completions` with `messages`.
    OpenAi,
    /// `POST /chat` with `{"message"}`, answering `{"response"}`.
    Chat,
}

impl FromStr for LlmApi {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "chat" => Ok(Self::Chat),
            _ => Err("must be openai or chat"),
        }
    }
}

/// How to reach the LLM.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// `LLM_URL`: the server's base URL, without the route.
    pub url: String,
    /// `LLM_API`.
    pub api: LlmApi,
    /// `LLM_MODEL`.
    pub model: String,
    /// `LLM_API_KEY`: sent as a bearer token when set.
    pub api_key: Option<Secret>,
    /// `LLM_TIMEOUT`: one call, connection included.
    pub timeout: Duration,
}

/// Settings of the context worker.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`, `RSQ_PREFIX`, `DATABASE_URL`, `HEALTH_ADDR`.
    pub base: BaseConfig,
    /// `CONTEXT_CONCURRENCY`, `CONTEXT_MAX_ATTEMPTS`, `CONTEXT_JOB_TIMEOUT`,
    /// `CONTEXT_GLOBAL_CONCURRENCY`, ... over the `jobs::CONTEXT` defaults.
    pub worker: WorkerConfig,
    pub llm: LlmConfig,
    /// `CONTEXT_RECONCILE_INTERVAL`, `_AFTER`, `_BATCH`.
    pub reconcile: ReconcileConfig,
}

impl Config {
    /// Reads and validates every setting; unset or blank variables take their defaults.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let worker = config::worker_config(vars, &jobs::CONTEXT)?;
        let url = config::url(vars, "LLM_URL", DEFAULT_LLM_URL, &["http", "https"])?;
        let timeout = config::duration(vars, "LLM_TIMEOUT", DEFAULT_LLM_TIMEOUT)?;
        if timeout.is_zero() || timeout >= worker.job_timeout {
            return Err(ConfigError::new(
                "LLM_TIMEOUT",
                format!(
                    "must be above 0 and less than CONTEXT_JOB_TIMEOUT ({:?}), or the job times out before the call",
                    worker.job_timeout
                ),
            ));
        }
        let model = config::string(vars, "LLM_MODEL", DEFAULT_LLM_MODEL);
        Ok(Self {
            base: BaseConfig::from_vars(vars, DEFAULT_HEALTH_PORT)?,
            worker,
            llm: LlmConfig {
                url: url.expose().trim_end_matches('/').to_owned(),
                api: config::parse(vars, "LLM_API", LlmApi::OpenAi)?,
                model,
                api_key: config::secret(vars, "LLM_API_KEY"),
                timeout,
            },
            reconcile: config::reconcile_config(vars, "CONTEXT")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design_and_the_catalogue() {
        let none: [(&str, &str); 0] = [];
        let c = Config::from_vars(&none).expect("defaults are valid");
        assert_eq!(c.base.health_addr.port(), DEFAULT_HEALTH_PORT);
        assert_eq!(
            (c.llm.api, c.llm.model.as_str()),
            (LlmApi::OpenAi, "gpt-oss")
        );
        assert_eq!(c.llm.timeout, Duration::from_secs(45));
        assert_eq!(c.worker.job_timeout, Duration::from_secs(60));
        assert_eq!(c.worker.max_attempts, 3);
        assert_eq!(c.worker.global_concurrency, None);
        assert!(c.llm.api_key.is_none());
    }

    #[test]
    fn every_own_variable_is_read_and_the_key_never_prints() {
        let vars = [
            ("LLM_URL", "https://llm.internal:8443/"),
            ("LLM_API", "chat"),
            ("LLM_MODEL", "llama3"),
            ("LLM_API_KEY", "sk-secret"),
            ("LLM_TIMEOUT", "10s"),
            ("CONTEXT_GLOBAL_CONCURRENCY", "2"),
            ("CONTEXT_RECONCILE_AFTER", "5m"),
        ];
        let c = Config::from_vars(&vars).expect("valid");
        assert_eq!(c.llm.url, "https://llm.internal:8443");
        assert_eq!((c.llm.api, c.llm.model.as_str()), (LlmApi::Chat, "llama3"));
        assert_eq!(c.llm.timeout, Duration::from_secs(10));
        assert_eq!(c.worker.global_concurrency.map(|n| n.get()), Some(2));
        assert_eq!(c.reconcile.after, Duration::from_secs(300));
        assert!(!format!("{c:?}").contains("sk-secret"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("LLM_URL", "ftp://llm"),
            ("LLM_API", "grpc"),
            ("LLM_TIMEOUT", "soon"),
            ("LLM_TIMEOUT", "60s"),
            ("CONTEXT_RECONCILE_BATCH", "0"),
            ("CONTEXT_RATE_LIMIT", "fast"),
        ] {
            let err = Config::from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
