//! The command line: global options and subcommands, parsed by clap.
//!
//! Values are validated here (queue names, prefix, durations) so that a bad
//! argument is a usage error (exit 2) before any connection is made.

use std::num::NonZeroU64;
use std::time::Duration;

use clap::{Parser, Subcommand};
use queue_core::broker::redact_url;
use queue_core::{JobState, keys};

/// Operate rsq queues: stats, monitor, dead letters, jobs, history, pause/resume,
/// purge, consumers.
#[derive(Debug, Parser)]
#[command(name = "queuectl", version, propagate_version = true)]
pub struct Cli {
    /// Redis to connect to: redis://[user:password@]host[:port][/db] or rediss:// for TLS;
    /// several comma-separated URLs for a Redis Cluster.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        global = true
    )]
    pub redis_url: RedisUrl,

    /// Talk to a Redis Cluster even when --redis-url names one node (several
    /// comma-separated URLs mean a cluster anyway).
    #[arg(long, env = "REDIS_CLUSTER", global = true)]
    pub redis_cluster: bool,

    /// Key prefix of the queues.
    #[arg(
        long,
        env = "RSQ_PREFIX",
        default_value = keys::DEFAULT_PREFIX,
        value_parser = parse_prefix,
        hide_env_values = true,
        global = true
    )]
    pub prefix: String,

    /// PostgreSQL, for `keys` and `audit`; when given, the queue actions (retry,
    /// delete, flush, pause, resume) are recorded in its audit log too, as
    /// `queuectl:$USER`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Consumer group the workers use.
    #[arg(long, default_value = "workers", global = true)]
    pub group: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counts per queue: every registered queue, or the ones named.
    Stats {
        /// Queue names (default: every registered queue).
        #[arg(value_name = "QUEUE", value_parser = parse_queue_name)]
        queues: Vec<String>,
        /// Print a JSON array of queue stats instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What each queue keeps (completions, dead letters), as its workers wrote it.
    Retention {
        /// Queue names (default: every registered queue).
        #[arg(value_name = "QUEUE", value_parser = parse_queue_name)]
        queues: Vec<String>,
        /// Print a JSON array of `{name, retention}` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refresh the stats table until Ctrl-C, with the completion rate per second.
    Monitor {
        /// Queue names (default: every registered queue).
        #[arg(value_name = "QUEUE", value_parser = parse_queue_name)]
        queues: Vec<String>,
        /// Time between refreshes (e.g. 500ms, 2s).
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        /// Stop after this many refreshes.
        #[arg(long)]
        iterations: Option<NonZeroU64>,
    },
    /// List dead letters newest first, or inspect one when ID is given.
    Failed {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Dead-letter entry id or job id of the one to inspect.
        id: Option<String>,
        /// Dead letters per page (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000), conflicts_with = "id")]
        limit: u16,
        /// Only dead letters older than this entry id (the next page).
        #[arg(long, value_name = "ENTRY_ID", conflicts_with = "id")]
        before: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect one dead letter: headers, payload size, full error.
    Show {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Dead-letter entry id or job id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead letter (or `all` of them) back on its queue as attempt 1.
    Retry {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Dead-letter entry id, job id, or `all`.
        #[arg(value_name = "ID|all")]
        target: String,
    },
    /// Delete one dead letter.
    Delete {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Dead-letter entry id or job id.
        id: String,
    },
    /// Delete every dead letter of a queue.
    Flush {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
    },
    /// Stop workers from starting jobs of a queue (running jobs finish).
    Pause {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
    },
    /// Let workers start jobs of a paused queue again.
    Resume {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
    },
    /// Delete every waiting and delayed job of a queue (running jobs are left alone).
    Purge {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// API keys of the gateway: create, list, revoke (needs --database-url).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log, newest first (needs --database-url).
    Audit {
        /// Entries per page (1 to 500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
        /// Only entries older than this id (the next page).
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        before: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the consumers of a queue's group; optionally remove idle ones.
    Consumers {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Remove consumers idle this long or longer (e.g. 10m); their pending
        /// jobs are handed over so live workers reclaim them.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        remove_idle: Option<Duration>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List a queue's jobs in one state, a page at a time.
    Jobs {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// waiting, active, delayed, failed or completed.
        #[arg(long, default_value = "waiting", value_parser = parse_job_state)]
        state: JobState,
        /// Jobs per page (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Where the page starts: the cursor the previous page printed.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job, in whatever state it is: headers, attempts, times, error.
    Job {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Job id, or an entry id as `jobs` lists it.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a delayed job now: move it into its lane.
    Promote {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Job id.
        id: String,
    },
    /// Delete a waiting, delayed or failed job (a unique key it holds is released).
    DeleteJob {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// Job id.
        id: String,
    },
    /// A queue's counts per minute, as its workers recorded them: completed,
    /// failed runs, dead letters, mean wait.
    History {
        /// Queue name.
        #[arg(value_parser = parse_queue_name)]
        queue: String,
        /// How many minutes back (1 to 1440).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1440))]
        minutes: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// What `keys` does.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the whole key is printed this once.
    Create {
        /// Who or what holds it: 1 to 100 characters of A-Z a-z 0-9 . _ @ -.
        #[arg(value_parser = parse_key_name)]
        name: String,
        /// user (the domain API), operator (also the dashboard and queue
        /// actions) or admin (everything, keys included).
        #[arg(long)]
        role: store::keys::Role,
        /// When it stops working: an RFC 3339 time or a duration from now
        /// (30d, 12h); default never.
        #[arg(long, value_name = "TIME|DURATION")]
        expires: Option<String>,
        /// Print JSON (with the key) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every key (never their secret part), newest first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; the gateways refuse it within API_KEY_CACHE_TTL.
    Revoke {
        /// Key id (as listed).
        id: i64,
    },
}

/// A PostgreSQL URL that never shows its password in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&redact_url(&self.0))
            .finish()
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

fn parse_key_name(s: &str) -> Result<String, String> {
    ops::keys::check_name(s)
        .map(|()| s.to_owned())
        .map_err(str::to_owned)
}

/// A Redis URL that never shows its password in `Debug` output or an error
/// (masked by queue-core's `redact_url`, as the workers' `service::config` does).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the scheme before any I/O. Not done by clap: its error would echo
    /// the value, password included.
    pub fn validate(&self) -> Result<(), String> {
        const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];
        let nodes = queue_core::broker::node_urls(&self.0);
        let ok = if nodes.len() > 1 {
            // A cluster's seed nodes: TCP URLs only.
            nodes
                .iter()
                .all(|n| SCHEMES[..2].iter().any(|s| n.starts_with(s)))
        } else {
            SCHEMES.iter().any(|s| self.0.starts_with(s))
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid --redis-url {:?}: expected redis://[user:password@]host[:port][/db] or rediss://...",
                redact_url(&self.0)
            ))
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl")
            .field(&redact_url(&self.0))
            .finish()
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

fn parse_queue_name(s: &str) -> Result<String, String> {
    keys::validate_queue_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_job_state(s: &str) -> Result<JobState, String> {
    s.parse()
}

fn parse_prefix(s: &str) -> Result<String, String> {
    keys::validate_prefix(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `500ms`, `30s`, `5m`, `1h 30m`, ...
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (expected a duration such as 500ms, 30s or 5m)"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("the interval must be greater than zero".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_interval("0s").is_err());
    }

    #[test]
    fn a_redis_url_hides_its_password_when_debug_printed() {
        let url = RedisUrl("redis://user:hunter2@host:6379".into());
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(url.validate().is_ok());
        let bad = RedisUrl("http://user:hunter2@host".into()).validate();
        let err = bad.expect_err("http is not redis");
        assert!(
            !err.contains("hunter2") && err.contains("--redis-url"),
            "{err}"
        );
    }

    #[test]
    fn invalid_queue_names_are_usage_errors() {
        let err = Cli::try_parse_from(["queuectl", "pause", "a{b"]).expect_err("bad name");
        assert_eq!(err.exit_code(), 2);
        let ok = Cli::try_parse_from(["queuectl", "--prefix", "t1", "stats", "a", "b", "--json"]);
        assert!(ok.is_ok());
    }
}
