#![doc = include_str!("../README.md")]

pub mod bank;
pub mod bnb;
pub mod config;
pub mod create;
pub mod schedule;

pub use crate::bank::{Bank, BankError, CreateQr, CreatedQr, QrBank, QrStatus, connect};
pub use crate::bnb::BnbBank;
pub use crate::config::{BankConfig, BankProvider, BnbConfig, ScheduleConfig};
pub use crate::create::{CreateError, Created, create_payment};
pub use crate::schedule::{check_job, first_check_at, lane, next_check_job};
