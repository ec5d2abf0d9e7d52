//! When a payment's checks start ([`first_check_at`]). The check job itself is
//! the job of a payment row, built in `jobs::rows` the same way by the gateway
//! (first check), the scheduler (next check) and the reconciler (lost check):
//! the payload names the payment and the check number, the lane follows the
//! status ([`lane`]), the job runs at the payment's `next_check_at` (at once
//! when that has come), and its key (`payment:ID:check:N`,
//! `jobs::JobKind::dedup_key`) is unique until settled, so "make sure this
//! check exists" never makes two.

use chrono::{DateTime, Utc};
pub use jobs::rows::{check_job, lane, next_check_job};
use store::payments::PaymentStatus;

/// When the first check of a payment the bank created in `status` is due: at
/// once (as the replaced system checked at once; the status delays apply from
/// the second check on), or never when the bank's first answer is final.
pub fn first_check_at(status: PaymentStatus, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (!status.is_final()).then_some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_check_is_due_at_once_unless_the_first_answer_is_final() {
        let now = Utc::now();
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::Active,
        ] {
            assert_eq!(first_check_at(status, now), Some(now), "{status}");
        }
        for status in [
            PaymentStatus::Completed,
            PaymentStatus::Cancelled,
            PaymentStatus::Expired,
        ] {
            assert_eq!(first_check_at(status, now), None, "{status}");
        }
    }
}
