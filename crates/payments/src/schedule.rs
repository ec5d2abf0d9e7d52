//! The check job of a payment, built the same way by the gateway (first check),
//! the scheduler (next check) and the reconciler (lost check): the payload names
//! the payment and the check number, the lane follows the status ([`lane`]),
//! the job runs at the payment's `next_check_at` (at once when that has come),
//! and its key (`payment:ID:check:N`, `jobs::JobKind::dedup_key`) is unique
//! until settled, so "make sure this check exists" never makes two.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use jobs::v1::PaymentStatusCheck;
use queue_core::{NewJob, Priority};
use store::payments::{Payment, PaymentStatus};

use crate::config::lane;

/// When the first check of a payment the bank created in `status` is due: at
/// once (as the replaced system checked at once; the status delays apply from
/// the second check on), or never when the bank's first answer is final.
pub fn first_check_at(status: PaymentStatus, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (!status.is_final()).then_some(now)
}

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
    // A final status has no lane: a check due anyway (a row changed by hand)
    // runs on the high lane, as a first check does.
    .priority(lane(status).unwrap_or(Priority::High));
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

    #[test]
    fn a_check_runs_on_the_lane_of_its_status_under_the_key_of_its_number() {
        let job = format!("{:?}", check_job(42, 3, PaymentStatus::Active, Utc::now()));
        assert!(job.contains("payment:42:check:3"), "{job}");
        assert!(job.contains("priority: Low"), "{job}");
        assert!(job.contains("schedule: Now"), "{job}");
        let later = Utc::now() + chrono::Duration::minutes(5);
        let job = format!("{:?}", check_job(42, 4, PaymentStatus::Pending, later));
        assert!(
            job.contains("priority: High") && job.contains("At("),
            "{job}"
        );
    }
}
