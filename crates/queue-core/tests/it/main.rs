//! queue-core's integration tests, one binary (helpers compile once, one link).
//! Each module talks to the real Redis under a key prefix of its own
//! (`queue_core::testing::TestRedis`).

mod admin_ops;
mod browse;
mod cluster;
mod history;
mod hook;
mod lifecycle;
mod limits;
mod metrics;
mod outage;
mod races;
mod recovery;
mod repeating;
mod retention;
mod scheduling;
mod trace_context;
mod unique;
