//! The Lua scripts that move jobs between states.
//!
//! Every state change of a job (acknowledge + record the outcome, schedule a retry,
//! dead-letter, reclaim, promote a delayed job, retry a dead letter) is one script,
//! so Redis applies it atomically: there is no moment at which a job exists nowhere
//! or in two places. All keys a script touches are passed through `KEYS` and share
//! the queue's hash tag, so the scripts run unchanged on Redis Cluster.
//! `redis::Script` sends `EVALSHA` and falls back to `EVAL` after a script flush.
//! The scripts name fields and counters as `F.envelope`, `S.completed`, ...;
//! [`fields::expand_lua`] replaces them with the Rust constants when loading.

use std::sync::LazyLock;

use redis::Script;

use crate::fields;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(&fields::expand_lua(include_str!(concat!("lua/", $file))))
        });
    };
}

script!(ENQUEUE, "enqueue.lua");
script!(PROMOTE, "promote.lua");
script!(COMPLETE, "complete.lua");
script!(RETRY, "retry.lua");
script!(DEAD_LETTER, "dead_letter.lua");
script!(RECLAIM, "reclaim.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(DLQ_RETRY, "dlq_retry.lua");
script!(STATS, "stats.lua");
script!(PURGE, "purge.lua");
script!(EVICT_CONSUMER, "evict_consumer.lua");
script!(RELEASE_UNIQUE, "release_unique.lua");
script!(LIMIT_ADMIT, "limit_admit.lua");
script!(LIMIT_REFRESH, "limit_refresh.lua");

#[cfg(test)]
mod tests {
    use crate::fields;

    #[test]
    fn every_name_a_script_uses_is_a_known_field_or_counter() {
        for (file, source) in [
            ("enqueue", include_str!("lua/enqueue.lua")),
            ("promote", include_str!("lua/promote.lua")),
            ("complete", include_str!("lua/complete.lua")),
            ("retry", include_str!("lua/retry.lua")),
            ("dead_letter", include_str!("lua/dead_letter.lua")),
            ("reclaim", include_str!("lua/reclaim.lua")),
            ("heartbeat", include_str!("lua/heartbeat.lua")),
            ("dlq_retry", include_str!("lua/dlq_retry.lua")),
            ("stats", include_str!("lua/stats.lua")),
            ("purge", include_str!("lua/purge.lua")),
            ("evict_consumer", include_str!("lua/evict_consumer.lua")),
            ("release_unique", include_str!("lua/release_unique.lua")),
            ("limit_admit", include_str!("lua/limit_admit.lua")),
            ("limit_refresh", include_str!("lua/limit_refresh.lua")),
        ] {
            let lua = fields::expand_lua(source);
            for marker in ["F.", "S."] {
                assert!(
                    !lua.contains(marker),
                    "{file}.lua names an unknown field or counter: {}",
                    lua.lines().find(|l| l.contains(marker)).unwrap_or_default()
                );
            }
        }
    }
}
