//! The binary's configuration, read from variables with the workspace's
//! readers (`service::config`): unset or blank means the default, a bad value
//! is a [`ConfigError`] naming the variable.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use service::config::{self, ConfigError, Vars};

use crate::SimConfig;
use crate::bank::{self, BankConfig, BankKnobs};
use crate::faults::Faults;
use crate::llm::{self, LlmConfig, LlmKnobs};
use crate::wispro::{self, WisproConfig, WisproKnobs};

/// The port the binary listens on unless `SIM_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 9200;

/// Every variable [`from_vars`] reads.
pub const VARIABLES: [&str; 22] = [
    "SIM_ADDR",
    "SIM_SEED",
    "SIM_LLM_MODEL",
    "SIM_LLM_API_KEY",
    "SIM_LLM_LATENCY",
    "SIM_LLM_ERROR_RATE",
    "SIM_LLM_HANG",
    "SIM_LLM_EMPTY_ANSWER",
    "SIM_WISPRO_TOKEN",
    "SIM_WISPRO_CLIENTS",
    "SIM_WISPRO_SEED",
    "SIM_WISPRO_LATENCY",
    "SIM_WISPRO_ERROR_RATE",
    "SIM_WISPRO_ERROR_MODE",
    "SIM_BANK_LATENCY",
    "SIM_BANK_ERROR_RATE",
    "SIM_BANK_SCRIPT",
    "SIM_BANK_RATE_LIMIT",
    "SIM_BANK_QR_TTL",
    "SIM_BNB_ACCOUNT_ID",
    "SIM_BNB_AUTHORIZATION_ID",
    "SIM_BNB_TOKEN_TTL",
];

/// `name` as a share between 0.0 and 1.0.
fn fraction(vars: &dyn Vars, name: &str) -> Result<f64, ConfigError> {
    match config::optional(vars, name) {
        None => Ok(0.0),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|f| (0.0..=1.0).contains(f))
            .ok_or_else(|| {
                ConfigError::new(name, format!("{v:?} is not a number from 0.0 to 1.0"))
            }),
    }
}

fn faults(vars: &dyn Vars, prefix: &str) -> Result<Faults, ConfigError> {
    Ok(Faults {
        latency: config::duration(vars, &format!("{prefix}_LATENCY"), Duration::ZERO)?,
        error_rate: fraction(vars, &format!("{prefix}_ERROR_RATE"))?,
        ..Faults::default()
    })
}

/// Reads every `SIM_*` variable (see the crate README).
pub fn from_vars(vars: &dyn Vars) -> Result<SimConfig, ConfigError> {
    let addr = config::socket_addr(
        vars,
        "SIM_ADDR",
        SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
    )?;
    let seed = config::integer(vars, "SIM_SEED", 1u64)?;

    let llm = LlmConfig {
        model: config::string(vars, "SIM_LLM_MODEL", llm::DEFAULT_MODEL),
        api_key: config::secret(vars, "SIM_LLM_API_KEY"),
        knobs: LlmKnobs {
            faults: Faults {
                hang: config::boolean(vars, "SIM_LLM_HANG", false)?,
                ..faults(vars, "SIM_LLM")?
            },
            empty_answer: config::boolean(vars, "SIM_LLM_EMPTY_ANSWER", false)?,
            ..LlmKnobs::default()
        },
    };

    let clients = config::integer(vars, "SIM_WISPRO_CLIENTS", 1000usize)?;
    if clients > wispro::MAX_CLIENTS {
        return Err(ConfigError::new(
            "SIM_WISPRO_CLIENTS",
            format!("{clients} is over the maximum of {}", wispro::MAX_CLIENTS),
        ));
    }
    let wispro = WisproConfig {
        token: config::secret(vars, "SIM_WISPRO_TOKEN")
            .unwrap_or_else(|| service::Secret::new(wispro::DEFAULT_TOKEN)),
        clients,
        seed: config::integer(vars, "SIM_WISPRO_SEED", 42u64)?,
        knobs: WisproKnobs {
            faults: faults(vars, "SIM_WISPRO")?,
            error_mode: config::parse(vars, "SIM_WISPRO_ERROR_MODE", wispro::ErrorMode::InBody)?,
            ..WisproKnobs::default()
        },
    };

    let default_script = match config::optional(vars, "SIM_BANK_SCRIPT") {
        None => bank::default_script(),
        Some(v) => bank::parse_script(&v)
            .map_err(|e| ConfigError::new("SIM_BANK_SCRIPT", format!("{v:?}: {e}")))?,
    };
    let rate_limit = config::integer(vars, "SIM_BANK_RATE_LIMIT", 0u32)?;
    let qr_ttl = config::duration(vars, "SIM_BANK_QR_TTL", Duration::from_secs(15 * 60))?;
    if qr_ttl.is_zero() {
        return Err(ConfigError::new(
            "SIM_BANK_QR_TTL",
            "must be greater than zero",
        ));
    }
    let bnb_token_ttl = config::duration(vars, "SIM_BNB_TOKEN_TTL", bank::bnb::DEFAULT_TOKEN_TTL)?;
    if bnb_token_ttl.is_zero() {
        return Err(ConfigError::new(
            "SIM_BNB_TOKEN_TTL",
            "must be greater than zero",
        ));
    }
    let bank = BankConfig {
        qr_ttl,
        bnb_account_id: config::secret(vars, "SIM_BNB_ACCOUNT_ID")
            .unwrap_or_else(|| service::Secret::new(bank::bnb::DEFAULT_ACCOUNT_ID)),
        bnb_authorization_id: config::secret(vars, "SIM_BNB_AUTHORIZATION_ID")
            .unwrap_or_else(|| service::Secret::new(bank::bnb::DEFAULT_AUTHORIZATION_ID)),
        knobs: BankKnobs {
            faults: faults(vars, "SIM_BANK")?,
            rate_limit_per_sec: (rate_limit > 0).then_some(rate_limit),
            default_script,
            bnb_token_ttl,
            ..BankKnobs::default()
        },
    };

    Ok(SimConfig {
        addr,
        seed,
        llm,
        wispro,
        bank,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::QrStatus;

    #[test]
    fn unset_variables_take_their_defaults() {
        let none: [(&str, &str); 0] = [];
        let c = from_vars(&none).expect("defaults are valid");
        assert_eq!(c.addr.to_string(), "127.0.0.1:9200");
        assert_eq!(c.llm.model, llm::DEFAULT_MODEL);
        assert!(c.llm.api_key.is_none());
        assert_eq!(c.wispro.clients, 1000);
        assert_eq!(c.wispro.token.expose(), wispro::DEFAULT_TOKEN);
        assert_eq!(c.bank.knobs.default_script, bank::default_script());
        assert_eq!(c.bank.knobs.rate_limit_per_sec, None);
    }

    #[test]
    fn every_variable_is_read() {
        let vars = [
            ("SIM_ADDR", "0.0.0.0:0"),
            ("SIM_SEED", "9"),
            ("SIM_LLM_MODEL", "gpt-sim"),
            ("SIM_LLM_API_KEY", "sk-1"),
            ("SIM_LLM_LATENCY", "250ms"),
            ("SIM_LLM_ERROR_RATE", "0.25"),
            ("SIM_LLM_HANG", "true"),
            ("SIM_LLM_EMPTY_ANSWER", "yes"),
            ("SIM_WISPRO_TOKEN", "t0k"),
            ("SIM_WISPRO_CLIENTS", "10000"),
            ("SIM_WISPRO_SEED", "5"),
            ("SIM_WISPRO_LATENCY", "1s"),
            ("SIM_WISPRO_ERROR_RATE", "1"),
            ("SIM_WISPRO_ERROR_MODE", "http"),
            ("SIM_BANK_LATENCY", "2s"),
            ("SIM_BANK_ERROR_RATE", "0.5"),
            ("SIM_BANK_SCRIPT", "processing,completed"),
            ("SIM_BANK_RATE_LIMIT", "10"),
            ("SIM_BANK_QR_TTL", "1h"),
            ("SIM_BNB_ACCOUNT_ID", "acc=="),
            ("SIM_BNB_AUTHORIZATION_ID", "auth*"),
            ("SIM_BNB_TOKEN_TTL", "2s"),
        ];
        assert_eq!(vars.len(), VARIABLES.len());
        let c = from_vars(&vars).expect("valid");
        assert_eq!((c.addr.port(), c.seed), (0, 9));
        assert_eq!(c.llm.model, "gpt-sim");
        assert_eq!(c.llm.api_key.as_ref().map(|k| k.expose()), Some("sk-1"));
        assert_eq!(c.llm.knobs.faults.latency, Duration::from_millis(250));
        assert_eq!(c.llm.knobs.faults.error_rate, 0.25);
        assert!(c.llm.knobs.faults.hang && c.llm.knobs.empty_answer);
        assert_eq!(c.wispro.token.expose(), "t0k");
        assert_eq!((c.wispro.clients, c.wispro.seed), (10_000, 5));
        assert_eq!(c.wispro.knobs.faults.latency, Duration::from_secs(1));
        assert_eq!(c.wispro.knobs.faults.error_rate, 1.0);
        assert_eq!(c.wispro.knobs.error_mode, wispro::ErrorMode::Http);
        assert_eq!(c.bank.knobs.faults.latency, Duration::from_secs(2));
        assert_eq!(c.bank.knobs.faults.error_rate, 0.5);
        assert_eq!(
            c.bank.knobs.default_script,
            [QrStatus::Processing, QrStatus::Completed]
        );
        assert_eq!(c.bank.knobs.rate_limit_per_sec, Some(10));
        assert_eq!(c.bank.qr_ttl, Duration::from_secs(3600));
        assert_eq!(
            (
                c.bank.bnb_account_id.expose(),
                c.bank.bnb_authorization_id.expose()
            ),
            ("acc==", "auth*")
        );
        assert_eq!(c.bank.knobs.bnb_token_ttl, Duration::from_secs(2));
        assert!(
            !format!("{c:?}").contains("auth*"),
            "credentials never print"
        );
        assert!(!format!("{c:?}").contains("t0k"), "the token never prints");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value, rule) in [
            ("SIM_ADDR", "localhost", "IP:port"),
            ("SIM_SEED", "x", "whole number"),
            ("SIM_LLM_LATENCY", "5", "duration"),
            ("SIM_LLM_ERROR_RATE", "1.5", "0.0 to 1.0"),
            ("SIM_LLM_HANG", "maybe", "true or false"),
            ("SIM_WISPRO_CLIENTS", "-1", "whole number"),
            ("SIM_WISPRO_CLIENTS", "999999999", "maximum"),
            ("SIM_WISPRO_ERROR_MODE", "body", "in_body or http"),
            ("SIM_BANK_SCRIPT", "pending,paid", "not a status"),
            ("SIM_BANK_RATE_LIMIT", "fast", "whole number"),
            ("SIM_BANK_QR_TTL", "0s", "greater than zero"),
            ("SIM_BNB_TOKEN_TTL", "0s", "greater than zero"),
        ] {
            let err = from_vars(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
            assert!(err.reason.contains(rule), "{err}");
        }
    }

    #[test]
    fn the_readme_documents_every_variable() {
        let readme = include_str!("../README.md");
        for name in VARIABLES {
            assert!(readme.contains(&format!("`{name}`")), "{name}");
        }
    }
}
