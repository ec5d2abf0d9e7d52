//! The job of a row, built from the row: one function per row kind, called by
//! the gateway when it stores the row and by the worker's reconciler when the
//! row is still pending, so both enqueue the same payload under the same key
//! (unique until settled, from [`JobKind::dedup_key`](crate::JobKind::dedup_key))
//! and "make sure this row has its job" never makes two (docs/design.md, "A row
//! and its job never disagree for long"). [`JobOfRow`] gives the reconciler a
//! row's job with the row's place in its reading order.
//!
//! A payment's check is the job of a payment row too: its lane follows the
//! status ([`lane`], the one mapping of statuses to checks), it runs at the
//! payment's `next_check_at`, and its key names the check ([`check_job`]); the
//! `payments` crate gives each lane its delay.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use queue_core::{NewJob, Priority};
use store::Position;
use store::companies::Company;
use store::payments::{Payment, PaymentStatus};
use store::persons::Person;
use store::photos::Photo;
use store::sync_runs::SyncRun;

use crate::{new_job, v1};

/// A row a job settles, as the reconciler sees it.
pub trait JobOfRow {
    /// What a row is, in log lines (`person`).
    const ROW: &'static str;

    /// The row's place in the reading order (the time its pending rows are
    /// read by, and its id) and the job that settles it; None when no job is
    /// due.
    fn job(&self) -> Option<(Position, NewJob)>;
}

impl JobOfRow for Person {
    const ROW: &'static str = "person";

    fn job(&self) -> Option<(Position, NewJob)> {
        Some(((self.created_at, self.id), qr_job(self)))
    }
}

impl JobOfRow for Company {
    const ROW: &'static str = "company";

    fn job(&self) -> Option<(Position, NewJob)> {
        Some(((self.created_at, self.id), context_job(self)))
    }
}

impl JobOfRow for SyncRun {
    const ROW: &'static str = "sync run";

    fn job(&self) -> Option<(Position, NewJob)> {
        Some(((self.updated_at, self.id), sync_run_job(self)))
    }
}

impl JobOfRow for Photo {
    const ROW: &'static str = "photo";

    fn job(&self) -> Option<(Position, NewJob)> {
        Some(((self.updated_at, self.id), photo_job(self.id)))
    }
}

impl JobOfRow for Payment {
    const ROW: &'static str = "payment";

    /// The next check, by `next_check_at`; None once checks ended.
    fn job(&self) -> Option<(Position, NewJob)> {
        let due = self.next_check_at?;
        Some(((due, self.id), next_check_job(self)?))
    }
}

/// The job that renders `person`'s QR into its stored path (`qr.generate`).
pub fn qr_job(person: &Person) -> NewJob {
    new_job(&v1::GenerateQr {
        person_id: person.id,
        content: person.qr_content.clone(),
        path: person.qr_path.clone(),
    })
}

/// The job that condenses `company`'s context (`context.condense`).
pub fn context_job(company: &Company) -> NewJob {
    new_job(&v1::CondenseCompanyContext {
        company_id: company.id,
    })
}

/// The job of sync run `run` (`wispro.sync`).
pub fn sync_run_job(run: &SyncRun) -> NewJob {
    new_job(&v1::WisproSyncRun {
        run_id: run.id,
        requested_by: run.requested_by.clone(),
    })
}

/// The job that processes photo `photo_id` (`photo.process`): its payload is
/// the id alone, so the gateway enqueues it from the ids of a stored batch.
pub fn photo_job(photo_id: i64) -> NewJob {
    new_job(&v1::ProcessPhoto { photo_id })
}

/// The lane of the checks of a payment in `status`: pending on the high lane,
/// processing on the normal one, active on the low one; None for a final
/// status (completed, cancelled, expired), whose checks end. The one mapping of
/// statuses to checks: the check job runs on this lane, and the `payments`
/// crate's `ScheduleConfig::next_check` gives each lane its delay.
pub fn lane(status: PaymentStatus) -> Option<Priority> {
    match status {
        PaymentStatus::Pending => Some(Priority::High),
        PaymentStatus::Processing => Some(Priority::Normal),
        PaymentStatus::Active => Some(Priority::Low),
        PaymentStatus::Completed | PaymentStatus::Cancelled | PaymentStatus::Expired => None,
    }
}

/// Check number `check_number` of payment `payment_id` (`payment.check`), due
/// at `due`, on the lane of `status`.
pub fn check_job(
    payment_id: i64,
    check_number: i32,
    status: PaymentStatus,
    due: DateTime<Utc>,
) -> NewJob {
    let job = new_job(&v1::PaymentStatusCheck::new(
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

/// The check number of a check that runs next, whatever its number: the
/// scheduler gives it the payment's next number under the row's lock
/// ([`notified_check_job`]). Check numbers are otherwise 1-based, so 0 names
/// no scheduled check; a worker of an older version finds it done and drops it.
pub const NEXT_CHECK: u32 = 0;

/// A check of payment `payment_id` now, on the high lane, because the bank
/// said the QR was paid (docs/design.md, "Notification, then check"). It is
/// not a check of its own beside the scheduled ones: it takes the payment's
/// next number when it runs, so the scheduled check of that number then finds
/// its work done, and the numbering and the one movement stay as they were.
/// Its key (`payment:ID:check:0`) is unique until settled, so notifications
/// repeated while it waits or runs make no second one.
pub fn notified_check_job(payment_id: i64) -> NewJob {
    new_job(&v1::PaymentStatusCheck::new(payment_id, NEXT_CHECK)).priority(Priority::High)
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
    fn each_live_status_has_its_lane_and_a_final_one_ends_the_checks() {
        assert_eq!(lane(PaymentStatus::Pending), Some(Priority::High));
        assert_eq!(lane(PaymentStatus::Processing), Some(Priority::Normal));
        assert_eq!(lane(PaymentStatus::Active), Some(Priority::Low));
        for end in [
            PaymentStatus::Completed,
            PaymentStatus::Cancelled,
            PaymentStatus::Expired,
        ] {
            assert_eq!(lane(end), None);
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

    #[test]
    fn a_notified_check_runs_now_on_the_high_lane_under_a_key_of_its_own() {
        let job = format!("{:?}", notified_check_job(42));
        assert!(job.contains("payment:42:check:0"), "{job}");
        assert!(job.contains("priority: High"), "{job}");
        assert!(job.contains("schedule: Now"), "{job}");
    }
}
