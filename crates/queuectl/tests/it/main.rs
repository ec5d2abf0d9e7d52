//! queuectl's integration tests, one binary (helpers compile once, one link).
//! Each test runs the built `queuectl` against the real Redis under a key prefix
//! of its own (`queue_core::testing::TestRedis`, wrapped by `support::TestEnv`).

mod dead_letters;
mod errors;
mod jobs;
mod keys;
mod operations;
mod stats;
mod support;
