//! Tests that need the `queue-bench worker` process: workers killed with
//! SIGKILL, and a worker that reaches Redis over TLS.

mod chaos;
mod crash;
mod support;
mod tls;
