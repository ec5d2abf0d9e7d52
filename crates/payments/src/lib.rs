#![doc = include_str!("../README.md")]

pub mod bank;
pub mod config;
pub mod create;
pub mod schedule;

pub use crate::bank::{Bank, BankError, CreateQr, CreatedQr, QrBank, QrStatus, connect};
pub use crate::config::{BankConfig, ScheduleConfig};
pub use crate::create::{CreateError, Created, create_payment};
pub use crate::schedule::{check_job, first_check_at, lane, next_check_job};
