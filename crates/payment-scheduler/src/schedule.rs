//! The check job of a payment, shared with the gateway: it lives in the
//! `payments` crate.

pub use payments::schedule::*;
