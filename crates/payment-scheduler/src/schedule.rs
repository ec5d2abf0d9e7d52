//! The check job of a payment, built the same way by the gateway (first check),
//! the scheduler (next check) and the reconciler (lost check): the payload names
//! the payment and the check number, the lane follows the status, the job runs
//! at the payment's `next_check_at` (at once when that has come), and its key (`payment:ID:check:N`) is
//! unique until settled, so "make sure this check exists" never makes two.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use jobs::v1::PaymentStatusCheck;
use queue_core::NewJob;
use store::payments::{self, Payment, PaymentStatus};

use crate::config::lane;

/// Check number `check_number` of payment `payment_id`, due at `due`, on the
/// lane of `status`.
pub fn check_job(
    payment_id: i64,
    check_number: i32,
    status: PaymentStatus,
    due: DateTime<Utc>,
) -> NewJob {
    let job = jobs::new_job(&PaymentStatusCheck::new(
        payment_id,
        u32::try_from(check_number).unwrap_or(0),
    ))
    .unique_until_settled(payments::check_job_key(payment_id, check_number))
    .priority(lane(status));
    // A check due now (the first, an overdue one) goes straight to its lane,
    // not through the delayed set and the next promotion.
    if due > Utc::now() {
        job.run_at(SystemTime::from(due))
    } else {
        job
    }
}

/// The next check a stored payment is waiting for, if it is still checked.
pub fn next_check_job(payment: &Payment) -> Option<NewJob> {
    let due = payment.next_check_at?;
    Some(check_job(
        payment.id,
        payment.checks_made + 1,
        payment.status,
        due,
    ))
}
