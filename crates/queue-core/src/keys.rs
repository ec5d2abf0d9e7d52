//! Redis key names. Nothing else in the workspace formats a key.
//!
//! Every key of a queue carries the hash tag `{NAME}`, so on Redis Cluster they all
//! live on one slot and every multi-key step can be a single Lua script.

use crate::Error;

/// Default key prefix. Tests pass their own prefix to isolate themselves.
pub const DEFAULT_PREFIX: &str = "rsq";

/// The consumer that inherits the pending entries of removed consumers, idle time
/// intact, so live workers reclaim them at once. A name in the group, beside the
/// key names, so the admin API and the worker's janitor share it without either
/// module reaching into the other.
pub const HEIR_CONSUMER: &str = "rsq-orphans";

/// Checks a queue name: 1 to 100 characters of `A-Z a-z 0-9 . _ -`.
///
/// The name is embedded in a hash tag, so braces and separators are not allowed.
pub fn validate_queue_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQueueName(name.to_owned()))
    }
}

/// Checks a key prefix: 1 to 64 characters of `A-Z a-z 0-9 . _ - :`.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidPrefix(prefix.to_owned()))
    }
}

/// The registry of known queues: a hash `name -> lane count`, written by producers
/// and workers, read by `queuectl` and the admin API to list queues.
pub fn registry(prefix: &str) -> String {
    format!("{prefix}:queues")
}

/// All keys of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    base: String,
}

impl QueueKeys {
    /// Keys of queue `name` under `prefix`. Both must already be validated.
    pub fn new(prefix: &str, name: &str) -> Self {
        Self {
            base: format!("{prefix}:{{{name}}}"),
        }
    }

    /// The stream of a lane. Lane `None` is the only lane of a queue without priorities.
    pub fn stream(&self, lane_suffix: Option<&str>) -> String {
        match lane_suffix {
            None => format!("{}:stream", self.base),
            Some(suffix) => format!("{}:stream:{suffix}", self.base),
        }
    }

    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.base)
    }

    pub fn dlq(&self) -> String {
        format!("{}:dlq", self.base)
    }

    pub fn done(&self) -> String {
        format!("{}:done", self.base)
    }

    /// List of the `done` stream's records, oldest first: "record id, jobs in it",
    /// so trimming to N completions reads no record.
    pub fn done_index(&self) -> String {
        format!("{}:done:index", self.base)
    }

    /// Hash of the queue's retention (`Retention`), written by its workers at
    /// start, read by `Admin::retention` and the cleanups.
    pub fn retention(&self) -> String {
        format!("{}:retention", self.base)
    }

    pub fn stats(&self) -> String {
        format!("{}:stats", self.base)
    }

    pub fn paused(&self) -> String {
        format!("{}:paused", self.base)
    }

    /// Hash of the queue's repeating jobs: name -> last period enqueued.
    pub fn repeat(&self) -> String {
        format!("{}:repeat", self.base)
    }

    /// Sorted set of the jobs running under the global concurrency limit:
    /// member `lane:entry id`, score = when its lease expires (ms).
    pub fn limit_running(&self) -> String {
        format!("{}:limit:running", self.base)
    }

    /// Sorted set of recent starts under the global rate limit, scored by start ms.
    pub fn limit_starts(&self) -> String {
        format!("{}:limit:starts", self.base)
    }

    /// Hash of the queue's counters for one unix minute (`fields::history`),
    /// written by the settling scripts, expiring `fields::history::KEEP_MINUTES`
    /// after the minute ends.
    pub fn history(&self, minute: u64) -> String {
        format!("{}{minute}", self.history_prefix())
    }

    /// What every minute's history key starts with: the scripts name the
    /// current minute's key by the server's clock (`lua/history.lua`).
    pub(crate) fn history_prefix(&self) -> String {
        format!("{}:history:", self.base)
    }

    pub fn uniq(&self, dedup_key: &str) -> String {
        format!("{}{dedup_key}", self.uniq_prefix())
    }

    /// What every dedup key of the queue starts with: the scripts that remove a
    /// job name its key from the envelope (`lua/unique.lua`).
    pub(crate) fn uniq_prefix(&self) -> String {
        format!("{}:uniq:", self.base)
    }

    /// A key for tools and tests that keep their own records next to a queue
    /// (e.g. the benchmark's run counters); removed by `Admin::destroy` with the rest.
    pub fn scratch(&self, name: &str) -> String {
        format!("{}:x:{name}", self.base)
    }

    /// Pattern matching every key of this queue (for tests and `destroy`).
    pub fn pattern(&self) -> String {
        // Validated names and prefixes hold no glob metacharacters (`*?[]\`).
        format!("{}:*", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_queue_shares_the_hash_tag() {
        let k = QueueKeys::new("rsq", "qr");
        for key in [
            k.stream(None),
            k.stream(Some("high")),
            k.delayed(),
            k.dlq(),
            k.done(),
            k.stats(),
            k.paused(),
            k.uniq("abc"),
            k.repeat(),
            k.done_index(),
            k.limit_running(),
            k.limit_starts(),
            k.history(29_000_000),
            k.retention(),
        ] {
            assert!(key.starts_with("rsq:{qr}:"), "{key}");
        }
        assert_eq!(k.stream(None), "rsq:{qr}:stream");
        assert_eq!(k.uniq("x"), "rsq:{qr}:uniq:x");
    }

    #[test]
    fn queue_names_that_would_break_the_hash_tag_are_rejected() {
        assert!(validate_queue_name("payment-checks").is_ok());
        assert!(validate_queue_name("a.b_c").is_ok());
        for bad in ["", "a{b", "a}b", "a:b", "a b", &"x".repeat(101)] {
            assert!(validate_queue_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_prefix("rsq:test").is_ok());
        assert!(validate_prefix("a{b").is_err());
    }
}
