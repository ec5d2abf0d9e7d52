//! The worker's settings: its own variables (`LLM_URL`, `LLM_API`, `LLM_MODEL`,
//! `LLM_API_KEY`, `LLM_TIMEOUT`, `LLM_REFUSAL_OPENINGS`, `CONTEXT_SUMMARY_*`,
//! `CONTEXT_RECONCILE_*`) on top of the `service` kit's base and per-queue
//! settings.

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

/// The share of the original's length a condensation is asked to have.
pub const DEFAULT_SUMMARY_SHARE: f64 = 0.25;
/// The shortest answer accepted, as a share of the length asked.
pub const DEFAULT_SUMMARY_MIN_SHARE: f64 = 0.3;
/// The longest answer accepted, as a share of the length asked.
pub const DEFAULT_SUMMARY_MAX_SHARE: f64 = 2.0;
/// How refusals open, `|`-separated, compared without case.
pub const DEFAULT_REFUSAL_OPENINGS: &str = "I'm sorry|I’m sorry|I am sorry|Sorry, I|I cannot|I can't|I can’t|I can not|I won't|I will not|I'm unable|I am unable|As an AI|Lo siento|No puedo";

/// Which answers are a condensation: the length asked for and accepted, and
/// how a refusal is recognised.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRules {
    /// `CONTEXT_SUMMARY_SHARE` (0.25): the length asked for in the prompt, as
    /// a share of the original's length in characters.
    pub summary_share: f64,
    /// `CONTEXT_SUMMARY_MIN_SHARE` (0.3): an answer shorter than this share of
    /// the length asked is refused as far too short.
    pub min_share: f64,
    /// `CONTEXT_SUMMARY_MAX_SHARE` (2.0): an answer longer than this share of
    /// the length asked (or not shorter than the original) is refused.
    pub max_share: f64,
    /// `LLM_REFUSAL_OPENINGS`: an answer that opens with one of these (without
    /// case) is a refusal; `none` for none. The OpenAI `refusal` field is
    /// always one.
    pub refusal_openings: Vec<String>,
}

impl Default for AnswerRules {
    fn default() -> Self {
        Self {
            summary_share: DEFAULT_SUMMARY_SHARE,
            min_share: DEFAULT_SUMMARY_MIN_SHARE,
            max_share: DEFAULT_SUMMARY_MAX_SHARE,
            refusal_openings: openings(DEFAULT_REFUSAL_OPENINGS),
        }
    }
}

fn openings(list: &str) -> Vec<String> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    list.split('|')
        .map(|o| o.trim().to_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
}

impl AnswerRules {
    fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let share = |name: &str, default: f64, low: f64, high: f64, rule: &str| {
            let v: f64 = config::parse(vars, name, default)?;
            if v.is_finite() && v > low && v <= high {
                Ok(v)
            } else {
                Err(ConfigError::new(name, format!("{v} {rule}")))
            }
        };
        Ok(Self {
            summary_share: share(
                "CONTEXT_SUMMARY_SHARE",
                DEFAULT_SUMMARY_SHARE,
                0.0,
                0.9,
                "must be above 0 and at most 0.9 (a condensation is shorter than its original)",
            )?,
            min_share: share(
                "CONTEXT_SUMMARY_MIN_SHARE",
                DEFAULT_SUMMARY_MIN_SHARE,
                0.0,
                1.0,
                "must be above 0 and at most 1 (a share of the length asked)",
            )?,
            max_share: share(
                "CONTEXT_SUMMARY_MAX_SHARE",
                DEFAULT_SUMMARY_MAX_SHARE,
                0.999_999,
                100.0,
                "must be at least 1 and at most 100 (a share of the length asked)",
            )?,
            refusal_openings: openings(&config::string(
                vars,
                "LLM_REFUSAL_OPENINGS",
                DEFAULT_REFUSAL_OPENINGS,
            )),
        })
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
    /// `CONTEXT_SUMMARY_*`, `LLM_REFUSAL_OPENINGS`.
    pub answers: AnswerRules,
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
                answers: AnswerRules::from_vars(vars)?,
            },
            reconcile: config::reconcile_config(vars, &jobs::CONTEXT)?,
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
        assert_eq!(c.llm.answers, AnswerRules::default());
        assert!(
            c.llm
                .answers
                .refusal_openings
                .contains(&"i'm sorry".to_owned())
        );
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
            ("CONTEXT_SUMMARY_SHARE", "0.1"),
            ("CONTEXT_SUMMARY_MIN_SHARE", "0.5"),
            ("CONTEXT_SUMMARY_MAX_SHARE", "3"),
            ("LLM_REFUSAL_OPENINGS", "Nope | Never"),
        ];
        let c = Config::from_vars(&vars).expect("valid");
        assert_eq!(c.llm.url, "https://llm.internal:8443");
        assert_eq!((c.llm.api, c.llm.model.as_str()), (LlmApi::Chat, "llama3"));
        assert_eq!(c.llm.timeout, Duration::from_secs(10));
        assert_eq!(c.worker.global_concurrency.map(|n| n.get()), Some(2));
        assert_eq!(c.reconcile.after, Duration::from_secs(300));
        let a = &c.llm.answers;
        assert_eq!((a.summary_share, a.min_share, a.max_share), (0.1, 0.5, 3.0));
        assert_eq!(a.refusal_openings, ["nope", "never"]);
        let none = Config::from_vars(&[("LLM_REFUSAL_OPENINGS", "none")]).expect("valid");
        assert!(none.llm.answers.refusal_openings.is_empty());
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
            ("CONTEXT_SUMMARY_SHARE", "0"),
            ("CONTEXT_SUMMARY_SHARE", "1"),
            ("CONTEXT_SUMMARY_MIN_SHARE", "1.5"),
            ("CONTEXT_SUMMARY_MAX_SHARE", "0.5"),
            ("CONTEXT_SUMMARY_MAX_SHARE", "NaN"),
        ] {
            let err = Config::from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }
}
