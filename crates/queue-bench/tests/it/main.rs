//! Tests that need the `queue-bench worker` process: workers killed with SIGKILL.

mod chaos;
mod crash;
mod support;
