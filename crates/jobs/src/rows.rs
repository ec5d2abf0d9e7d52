//! The job of a row, built from the row: one function per row kind, called by
//! the gateway when it stores the row and by the worker's reconciler when the
//! row is still pending, so both enqueue the same payload under the same key
//! (unique until settled, from [`JobKind::dedup_key`](crate::JobKind::dedup_key))
//! and "make sure this row has its job" never makes two (docs/design.md, "A row
//! and its job never disagree for long").
//!
//! A payment's check depends on its schedule (lane, due time) and is built by
//! the `payments` crate, on the same key rule.

use queue_core::NewJob;
use store::companies::Company;
use store::persons::Person;
use store::sync_runs::SyncRun;

use crate::{new_job, v1};

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
