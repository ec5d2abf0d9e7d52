//! payment-scheduler's integration tests, one binary: real Redis and
//! PostgreSQL (a key prefix and a database per test) and the bank simulator of
//! `upstream-sim` on port 0.

mod binary;
mod cancel;
mod checks;
mod cleanup;
mod create;
mod due;
mod exactly_once;
mod limits;
mod notified;
mod priority;
mod reconcile;
mod retry;
mod support;
