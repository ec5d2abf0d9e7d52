//! The bank adapter, shared with the gateway: it lives in the `payments` crate.

pub use payments::bank::*;
