//! The gateway's typed configuration, read from the environment by `main` only.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that never prints (tokens, URLs with passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

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

#[derive(Debug, Clone)]
pub struct Config {
    /// `API_ADDR`, default 127.0.0.1:8080; port 0 picks a free one (tests).
    pub api_addr: SocketAddr,
    /// `REDIS_URL`
    pub redis_url: Secret,
    /// `RSQ_PREFIX`: Redis key prefix, default `rsq`.
    pub redis_prefix: String,
    /// `DATABASE_URL`
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`, default 20.
    pub database_max_connections: u32,
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
    /// `API_BODY_LIMIT_BYTES`, default 64 KiB.
    pub body_limit_bytes: usize,
    /// `API_REQUEST_TIMEOUT`, default 30s: a request still running after this is
    /// answered 503 `timeout`.
    pub request_timeout: std::time::Duration,
}

impl Config {
    /// Reads and validates the environment; the error is one line for stderr.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let parse = |name: &str, default: &str| var(name).unwrap_or_else(|| default.to_owned());
        let api_addr = parse("API_ADDR", "127.0.0.1:8080")
            .parse()
            .map_err(|e| format!("API_ADDR: {e} (expected host:port, e.g. 127.0.0.1:8080)"))?;
        let token = |name: &str| -> Result<Secret, String> {
            let t = var(name).ok_or_else(|| {
                format!("{name} is not set: give it a random token of at least 16 characters")
            })?;
            if t.len() < 16 {
                return Err(format!("{name} is too short: use at least 16 characters"));
            }
            Ok(Secret::new(t))
        };
        let admin_token = token("API_ADMIN_TOKEN")?;
        let user_token = token("API_USER_TOKEN")?;
        if admin_token == user_token {
            return Err("API_ADMIN_TOKEN and API_USER_TOKEN must differ".into());
        }
        let qr_format = match parse("QR_FORMAT", "png").as_str() {
            "png" => QrFormat::Png,
            "svg" => QrFormat::Svg,
            other => return Err(format!("QR_FORMAT must be png or svg, got {other:?}")),
        };
        let number = |name: &str, default: &str| -> Result<u64, String> {
            parse(name, default)
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
                .and_then(|n| {
                    if n == 0 {
                        Err(format!("{name} must be > 0"))
                    } else {
                        Ok(n)
                    }
                })
        };
        let redis_prefix = parse("RSQ_PREFIX", "rsq");
        queue_core::keys::validate_prefix(&redis_prefix).map_err(|e| format!("RSQ_PREFIX: {e}"))?;
        Ok(Self {
            api_addr,
            redis_url: Secret::new(parse("REDIS_URL", "redis://127.0.0.1:6379")),
            redis_prefix,
            database_url: Secret::new(parse(
                "DATABASE_URL",
                "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable",
            )),
            database_max_connections: number("DATABASE_MAX_CONNECTIONS", "20")? as u32,
            storage_dir: PathBuf::from(parse("STORAGE_DIR", "./storage")),
            admin_token,
            user_token,
            qr_content_prefix: parse("QR_CONTENT_PREFIX", "PERSON:"),
            qr_format,
            body_limit_bytes: number("API_BODY_LIMIT_BYTES", "65536")? as usize,
            request_timeout: humantime::parse_duration(&parse("API_REQUEST_TIMEOUT", "30s"))
                .map_err(|e| format!("API_REQUEST_TIMEOUT: {e}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("super-secret-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "super-secret-token");
    }
}
