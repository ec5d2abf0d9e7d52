//! One module per route group; each exposes `router()`, merged by `crate::router`.

pub mod companies;
pub mod docs;
pub mod keys;
pub mod payments;
pub mod persons;
pub mod photos;
pub mod queues;
pub mod sync;
