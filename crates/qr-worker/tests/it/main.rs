//! The QR worker end to end: real Redis (a key prefix of its own), real
//! PostgreSQL (a database of its own), a temporary storage directory, the worker
//! running in-process as `main` runs it, and the real binary for its exit codes.

mod batch;
mod binary;
mod consistency;
mod retry;
mod support;
mod sweep;
mod worker;
