//! Exit codes (from BSD `sysexits.h`, which scripts and supervisors understand)
//! and the one line printed for an error.

use queue_core::Error;

/// Success.
pub const OK: u8 = 0;
/// Any failure not listed below.
pub const FAILURE: u8 = 1;
/// Bad configuration or a refused operation (e.g. `purge` without `--yes`,
/// promoting a job that is not delayed, a `--after` that is no cursor).
pub const USAGE: u8 = 64;
/// A dead letter whose envelope does not decode cannot be retried.
pub const DATA_ERR: u8 = 65;
/// The queue, dead letter or API key named does not exist.
pub const NO_INPUT: u8 = 66;
/// Redis or PostgreSQL cannot be reached (or the audit log cannot be written
/// before an action, which is then not done).
pub const UNAVAILABLE: u8 = 69;

/// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Bad configuration, or an operation refused before doing anything; exits with [`USAGE`].
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Ctrl-C arrived before the command finished; exits with [`INTERRUPTED`].
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The exit code for an error of [`crate::run`].
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return USAGE;
        }
        if cause.is::<Interrupted>() {
            return INTERRUPTED;
        }
        if cause.is::<crate::db::DatabaseUnavailable>() || cause.is::<ops::AuditUnavailable>() {
            return UNAVAILABLE;
        }
        if let Some(ops::Error::NoSuchKey(_) | ops::Error::NoSuchJob { .. }) =
            cause.downcast_ref::<ops::Error>()
        {
            return NO_INPUT;
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::NoSuchQueue(_) | Error::NoSuchDeadLetter { .. } => NO_INPUT,
                Error::Unreachable { .. } | Error::Pool(_) => UNAVAILABLE,
                Error::Redis(r)
                    if r.is_io_error()
                        || r.is_connection_refusal()
                        || r.is_connection_dropped()
                        || r.is_timeout() =>
                {
                    UNAVAILABLE
                }
                Error::InvalidQueueName(_) | Error::InvalidPrefix(_) | Error::InvalidConfig(_) => {
                    USAGE
                }
                Error::Undecodable { .. } => DATA_ERR,
                Error::JobState { .. } | Error::InvalidCursor(_) => USAGE,
                _ => FAILURE,
            };
        }
    }
    FAILURE
}

/// Whether the error is only the reader of our output going away (`| head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error as one line: its causes joined by `: `, skipping a cause whose text
/// the line already holds (queue-core errors include their source), and with the
/// password of each of `urls` (Redis, PostgreSQL) masked wherever it appears.
pub fn message(err: &anyhow::Error, urls: &[&str]) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    for url in urls.iter().filter(|u| !u.is_empty()) {
        line = line.replace(url, &queue_core::broker::redact_url(url));
        match password(url) {
            // Very short passwords would mask ordinary words; the URL itself is masked above.
            Some(pw) if pw.len() >= 4 => line = line.replace(pw, "***"),
            _ => {}
        }
    }
    line
}

/// The password (or lone token) in the userinfo part of a URL.
fn password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo.split_once(':').map_or(userinfo, |(_, pw)| pw)).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_never_show_the_redis_password() {
        let url = "redis://app:hunter22@cache:6379/0";
        let err = anyhow::anyhow!("failed with hunter22 for {url}");
        let line = message(&err, &[url]);
        assert!(!line.contains("hunter22"), "{line}");
        assert!(line.contains("redis://app:***@cache:6379/0"), "{line}");
        assert_eq!(password("redis://tok3n@h"), Some("tok3n"));
        assert_eq!(password("redis://h:6379"), None);
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let err = anyhow::Error::new(Error::NoSuchQueue("foo".into())).context("opening queue");
        assert_eq!(
            message(&err, &["redis://h"]),
            "opening queue: queue \"foo\" does not exist (no producer or worker has used it)"
        );
        assert_eq!(code(&err), NO_INPUT);
        assert_eq!(code(&anyhow::Error::new(Usage("no".into()))), USAGE);
    }
}
