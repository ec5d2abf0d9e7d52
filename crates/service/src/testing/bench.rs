//! What the workloads' benchmarks share (`benches/*.rs`, `harness = false`,
//! run by `cargo bench` through `scripts/bench.sh`): a runtime like the
//! workers', and knobs read from the environment with the configuration's own
//! rules, so a mistyped knob stops the run instead of measuring the default.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{self, Env};

/// Runs a benchmark's body on a multi-threaded runtime, as a worker runs.
pub fn run<F: Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(body)
}

/// Knob `name` (a number, a count...), or `default` when unset.
///
/// # Panics
/// When it is set but does not parse: a figure measured with the default
/// instead would be mislabelled.
pub fn knob<T>(name: &str, default: T) -> T
where
    T: FromStr,
    T::Err: fmt::Display,
{
    config::parse(&Env, name, default).unwrap_or_else(|e| panic!("{e}"))
}

/// Duration knob `name` (`10s`, `500ms`), or `default` when unset.
///
/// # Panics
/// When it is set but is not a duration.
pub fn duration_knob(name: &str, default: Duration) -> Duration {
    config::duration(&Env, name, default).unwrap_or_else(|e| panic!("{e}"))
}
