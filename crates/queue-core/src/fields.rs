//! Names of stream fields, stats counters and the consumer group, in one place.
//!
//! The Lua scripts use the same names: they write `F.envelope`, `S.completed`, ...
//! and [`expand_lua`] replaces each with the quoted constant when the script is
//! loaded, so a name cannot differ between the code that writes a record and the
//! code that reads it, at no cost per call.

/// Consumer group every worker of a queue joins (`WorkerConfig::group` default).
pub const DEFAULT_GROUP: &str = "workers";

/// The one field of a job's stream entry: the encoded `Envelope`.
pub const ENVELOPE: &str = "e";

/// Fields of a dead letter (besides [`ENVELOPE`]).
pub mod dead_letter {
    /// The last error text.
    pub const ERROR: &str = "error";
    /// Attempts made (empty for a poison entry that never finished a run).
    pub const ATTEMPTS: &str = "attempts";
    /// Unix ms, by the Redis clock.
    pub const FAILED_AT: &str = "failed_at";
    /// The stream entry id the job had when it failed.
    pub const ORIGIN: &str = "origin";
    /// Lane name (`high`, `normal`, `low`; `normal` on single-lane queues).
    pub const LANE: &str = "lane";
    /// Job id (empty when the envelope could not be decoded).
    pub const JOB_ID: &str = "id";
    pub const KIND: &str = "kind";
}

/// Fields of a record of the `done` stream (one record per settled batch).
/// A record holds one [`BATCH`] field; records written by workers before it
/// existed hold one [`JOB`] field per job, and readers take both
/// ([`jobs`]).
pub mod done {
    /// One job: `job id ␟ kind ␟ attempt ␟ duration ms`, joined by [`SEPARATOR`].
    pub const JOB: &str = "j";
    /// The jobs of a batch, [`JOB`] values joined by [`RECORD_SEPARATOR`]: one
    /// field per batch costs the settling script one argument and one field.
    pub const BATCH: &str = "b";
    /// Separates the parts of a [`JOB`] value; never in ids or kinds we produce.
    pub const SEPARATOR: char = '\u{1f}';
    /// Separates the jobs of a [`BATCH`] value; never in ids or kinds we produce.
    pub const RECORD_SEPARATOR: char = '\u{1e}';

    /// The job values a field of a `done` record holds, in the order they
    /// were settled; none for a field that is not [`JOB`] or [`BATCH`].
    pub fn jobs<'a>(field: &str, value: &'a str) -> impl DoubleEndedIterator<Item = &'a str> {
        let value = match field {
            JOB | BATCH => value,
            _ => "",
        };
        // An old `j` value never holds the record separator: it yields itself.
        value.split(RECORD_SEPARATOR).filter(|job| !job.is_empty())
    }
}

/// Counters of a queue's stats hash.
pub mod stats {
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const RETRIED: &str = "retried";
    pub const RECLAIMED: &str = "reclaimed";
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// Bookkeeping, not a counter: completions the `done` stream holds now.
    pub const DONE_KEPT: &str = "done_kept";
}

/// Fields of a minute's history hash (`keys::QueueKeys::history`), written by the
/// workers' settling scripts (`lua/history.lua`), read by `Admin::history`.
pub mod history {
    /// Jobs completed in the minute.
    pub const COMPLETED: &str = "completed";
    /// Runs that failed (each retry and each dead letter counts one).
    pub const FAILED: &str = "failed";
    /// Jobs moved to the dead-letter stream.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// Sum of the waits (ms from ready to started) of the runs settled in the minute.
    pub const WAIT_MS: &str = "wait_ms";
    /// Runs whose wait is in [`WAIT_MS`].
    pub const WAITED: &str = "waited";
    /// Minutes a minute's hash is kept after it ends: a day and an hour, so the
    /// last day is always whole. `lua/history.lua` sets the expiry.
    pub const KEEP_MINUTES: u64 = 25 * 60;
}

/// The names the Lua scripts refer to as `F.name` (entry and dead-letter fields),
/// `S.name` (stats counters) and `H.name` (history fields), with their values.
const LUA_NAMES: [(&str, &str); 21] = [
    ("F.envelope", ENVELOPE),
    ("F.error", dead_letter::ERROR),
    ("F.attempts", dead_letter::ATTEMPTS),
    ("F.failed_at", dead_letter::FAILED_AT),
    ("F.origin", dead_letter::ORIGIN),
    ("F.lane", dead_letter::LANE),
    ("F.id", dead_letter::JOB_ID),
    ("F.kind", dead_letter::KIND),
    ("F.done_job", done::JOB),
    ("F.done_batch", done::BATCH),
    ("S.completed", stats::COMPLETED),
    ("S.failed", stats::FAILED),
    ("S.retried", stats::RETRIED),
    ("S.reclaimed", stats::RECLAIMED),
    ("S.dead_lettered", stats::DEAD_LETTERED),
    ("S.done_kept", stats::DONE_KEPT),
    ("H.completed", history::COMPLETED),
    ("H.failed", history::FAILED),
    ("H.dead_lettered", history::DEAD_LETTERED),
    ("H.wait_ms", history::WAIT_MS),
    ("H.waited", history::WAITED),
];

/// A script's source with every `F.name` / `S.name` replaced by the quoted
/// constant, once when the script is loaded (no cost per call).
pub(crate) fn expand_lua(source: &str) -> String {
    let mut names = LUA_NAMES;
    // Longest first, so that no name is replaced inside a longer one.
    names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    names.iter().fold(source.to_owned(), |lua, (name, value)| {
        lua.replace(name, &format!("'{value}'"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_names_expand_to_the_rust_constants() {
        let lua = "redis.call('XADD', k, '*', F.envelope, e, F.id, i, F.done_job, j)\n\
                   redis.call('HINCRBY', s, S.dead_lettered, 1)";
        assert_eq!(
            expand_lua(lua),
            "redis.call('XADD', k, '*', 'e', e, 'id', i, 'j', j)\n\
             redis.call('HINCRBY', s, 'dead_lettered', 1)"
        );
    }

    #[test]
    fn a_done_batch_yields_its_jobs_and_an_old_job_field_itself() {
        let batch = "a\u{1f}k\u{1f}1\u{1f}5\u{1e}b\u{1f}k\u{1f}2\u{1f}7";
        assert_eq!(
            done::jobs(done::BATCH, batch).collect::<Vec<_>>(),
            ["a\u{1f}k\u{1f}1\u{1f}5", "b\u{1f}k\u{1f}2\u{1f}7"]
        );
        let job = "a\u{1f}k\u{1f}1\u{1f}5";
        assert_eq!(done::jobs(done::JOB, job).collect::<Vec<_>>(), [job]);
        assert_eq!(done::jobs("other", job).count(), 0);
    }
}
