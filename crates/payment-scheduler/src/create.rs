//! Creating a payment, as the gateway does: it lives in the `payments` crate.

pub use payments::create::*;
