//! Names of stream fields, stats counters and the consumer group, in one place.
//!
//! The Lua scripts use the same names: [`lua_prelude`] turns these constants into
//! Lua tables (`F` for fields, `S` for stats) that every script is prefixed with,
//! so a name cannot differ between the code that writes a record and the code
//! that reads it.

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

/// Fields of a record of the `done` stream: one per completed job of a batch.
pub mod done {
    /// `job id ␟ kind ␟ attempt ␟ duration ms`, joined by [`SEPARATOR`].
    pub const JOB: &str = "j";
    /// Separates the parts of a [`JOB`] value; never in ids or kinds we produce.
    pub const SEPARATOR: char = '\u{1f}';
}

/// Counters of a queue's stats hash.
pub mod stats {
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const RETRIED: &str = "retried";
    pub const RECLAIMED: &str = "reclaimed";
    pub const DEAD_LETTERED: &str = "dead_lettered";
}

/// Lua that defines `F` (entry and dead-letter fields) and `S` (stats counters)
/// from the constants above; prefixed to every script.
pub(crate) fn lua_prelude() -> String {
    let table = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k} = {v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let f = table(&[
        ("envelope", ENVELOPE),
        ("error", dead_letter::ERROR),
        ("attempts", dead_letter::ATTEMPTS),
        ("failed_at", dead_letter::FAILED_AT),
        ("origin", dead_letter::ORIGIN),
        ("lane", dead_letter::LANE),
        ("id", dead_letter::JOB_ID),
        ("kind", dead_letter::KIND),
        ("done_job", done::JOB),
    ]);
    let s = table(&[
        ("completed", stats::COMPLETED),
        ("failed", stats::FAILED),
        ("retried", stats::RETRIED),
        ("reclaimed", stats::RECLAIMED),
        ("dead_lettered", stats::DEAD_LETTERED),
    ]);
    format!("local F = {{{f}}}\nlocal S = {{{s}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lua_prelude_names_every_field_as_the_rust_code_does() {
        let prelude = lua_prelude();
        assert!(prelude.contains(r#"envelope = "e""#), "{prelude}");
        assert!(prelude.contains(r#"failed_at = "failed_at""#), "{prelude}");
        assert!(
            prelude.contains(r#"dead_lettered = "dead_lettered""#),
            "{prelude}"
        );
        assert!(prelude.starts_with("local F = {") && prelude.contains("\nlocal S = {"));
    }
}
