#![doc = include_str!("../README.md")]

//! Load generator, stand-alone worker and benchmark suite of queue-core.
//!
//! - [`worker`]: the `queue-bench worker` process (a configurable synthetic
//!   handler: sleep, random failures, run counting) and `queue-bench enqueue`.
//!   Tests kill the worker with SIGKILL; the suite measures its memory and CPU.
//! - [`suite`]: the benchmark suite, run by `benches/queue_core.rs`
//!   (`scripts/bench.sh queue-core`).

pub mod measure;
pub mod suite;
pub mod worker;
