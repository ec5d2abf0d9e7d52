//! The Lua scripts that move jobs between states.
//!
//! Every state change of a job (acknowledge + record the outcome, schedule a retry,
//! dead-letter, reclaim, promote a delayed job, retry a dead letter) is one script,
//! so Redis applies it atomically: there is no moment at which a job exists nowhere
//! or in two places. All keys a script touches are passed through `KEYS` and share
//! the queue's hash tag, so the scripts run unchanged on Redis Cluster.
//! `redis::Script` sends `EVALSHA` and falls back to `EVAL` after a script flush.
//! Each script is prefixed with [`fields::lua_prelude`], which defines the field
//! and counter names (`F.envelope`, `S.completed`, ...) from the Rust constants.

use std::sync::LazyLock;

use redis::Script;

use crate::fields;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(&format!(
                "{}{}",
                fields::lua_prelude(),
                include_str!(concat!("lua/", $file))
            ))
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
