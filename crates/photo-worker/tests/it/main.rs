//! The photo worker end to end: real Redis (a key prefix of its own), real
//! PostgreSQL (a database of its own), a temporary storage directory, the
//! worker running in-process as `main` runs it, a photo server on loopback for
//! URLs, and the real binary for its exit codes.

mod binary;
mod fetch;
mod fixtures;
mod limits;
mod support;
mod worker;
