//! context-worker's integration tests, one binary: real Redis and PostgreSQL
//! (a key prefix and a database per test) and the LLM simulator of
//! `upstream-sim` on port 0.

mod answers;
mod binary;
mod condense;
mod limits;
mod retry;
mod support;
