//! sync-worker's integration tests, one binary: real Redis and PostgreSQL (a
//! key prefix and a database per test) and the Wispro simulator of
//! `upstream-sim` on port 0.

mod binary;
mod identity;
mod pages;
mod retry;
mod sync;
mod world;
