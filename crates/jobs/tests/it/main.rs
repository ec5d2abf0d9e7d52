//! jobs' integration tests: typed handlers on a real Redis.

mod handlers;
