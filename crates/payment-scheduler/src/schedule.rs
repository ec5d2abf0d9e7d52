//! The check job of a payment, shared with the gateway: the `payments` crate's
//! schedule (the job itself is the job of a payment row, in `jobs::rows`).

pub use payments::schedule::*;
