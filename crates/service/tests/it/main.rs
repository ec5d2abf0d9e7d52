//! The kit end to end: a worker wired by `service::WorkerService` against the
//! real Redis (a key prefix of its own) and PostgreSQL (a database of its own),
//! health port 0.

mod reconcile;
mod rows;
mod worker;
