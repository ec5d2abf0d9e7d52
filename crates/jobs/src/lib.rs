#![doc = include_str!("../README.md")]

mod handlers;

use std::time::Duration;

use queue_core::{Broker, Job, JobError, NewJob, Queue, WorkerConfig};

/// Generated payload messages of package `jobs.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/jobs.v1.rs"));
}

pub use queue_core::Envelope;

pub use crate::handlers::{Handlers, JobHandler};

/// A queue of the catalogue and its defaults (each one configurable by its binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: &'static str,
    /// One stream per priority (high, normal, low).
    pub priority_lanes: bool,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub job_timeout: Duration,
}

impl QueueSpec {
    /// The queue on a broker.
    pub fn open(&self, broker: &Broker) -> queue_core::Result<Queue> {
        if self.priority_lanes {
            broker.priority_queue(self.name)
        } else {
            broker.queue(self.name)
        }
    }

    /// The prefix of this queue's configuration variables: the name upper-cased,
    /// `-` as `_` (`qr` -> `QR_CONCURRENCY`, `payment-checks` -> `PAYMENT_CHECKS_...`).
    pub fn env_prefix(&self) -> String {
        self.name.to_ascii_uppercase().replace(['-', '.'], "_")
    }

    /// Worker settings with this queue's defaults.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self
                .concurrency
                .try_into()
                .expect("catalogue concurrency is nonzero"),
            max_attempts: self.max_attempts,
            job_timeout: self.job_timeout,
            ..WorkerConfig::default()
        }
    }
}

pub const QR: QueueSpec = QueueSpec {
    name: "qr",
    priority_lanes: false,
    concurrency: 10,
    max_attempts: 3,
    job_timeout: Duration::from_secs(30),
};

pub const CONTEXT: QueueSpec = QueueSpec {
    name: "context",
    priority_lanes: false,
    concurrency: 4,
    max_attempts: 3,
    job_timeout: Duration::from_secs(60),
};

pub const WISPRO_SYNC: QueueSpec = QueueSpec {
    name: "wispro-sync",
    priority_lanes: false,
    concurrency: 1,
    max_attempts: 3,
    job_timeout: Duration::from_secs(15 * 60),
};

pub const PAYMENT_CHECKS: QueueSpec = QueueSpec {
    name: "payment-checks",
    priority_lanes: true,
    concurrency: 10,
    max_attempts: 3,
    job_timeout: Duration::from_secs(30),
};

pub const PHOTOS: QueueSpec = QueueSpec {
    name: "photos",
    priority_lanes: false,
    concurrency: 3,
    max_attempts: 3,
    job_timeout: Duration::from_secs(120),
};

/// Every queue of the platform.
pub const CATALOGUE: [&QueueSpec; 5] = [&QR, &CONTEXT, &WISPRO_SYNC, &PAYMENT_CHECKS, &PHOTOS];

/// A payload message tied to its job kind and queue.
pub trait JobKind: prost::Message + Default + 'static {
    /// The envelope `kind`.
    const KIND: &'static str;
    const QUEUE: &'static QueueSpec;
}

macro_rules! kind {
    ($ty:ty, $kind:literal, $queue:expr) => {
        impl JobKind for $ty {
            const KIND: &'static str = $kind;
            const QUEUE: &'static QueueSpec = &$queue;
        }
    };
}

kind!(v1::GenerateQr, "qr.generate", QR);
kind!(v1::ReconcileQr, "qr.reconcile", QR);
kind!(v1::CondenseCompanyContext, "context.condense", CONTEXT);
kind!(v1::ReconcileContexts, "context.reconcile", CONTEXT);
kind!(v1::WisproSyncRun, "wispro.sync", WISPRO_SYNC);
kind!(v1::ReconcileSyncRuns, "wispro.reconcile", WISPRO_SYNC);
kind!(v1::PaymentStatusCheck, "payment.check", PAYMENT_CHECKS);

impl v1::PaymentStatusCheck {
    /// Check `check_number` of payment `payment_id`, with the deprecated
    /// `payment_qr_id` written too, so a worker of the previous version reads it
    /// during a rolling deploy.
    #[allow(deprecated)]
    pub fn new(payment_id: i64, check_number: u32) -> Self {
        Self {
            payment_qr_id: payment_id,
            check_number,
            payment_id,
        }
    }

    /// The payment's row id: `payment_id`, or the deprecated `payment_qr_id`
    /// of a check written before `payment_id` existed.
    #[allow(deprecated)]
    pub fn payment(&self) -> i64 {
        if self.payment_id != 0 {
            self.payment_id
        } else {
            self.payment_qr_id
        }
    }
}
kind!(v1::PaymentCleanup, "payment.cleanup", PAYMENT_CHECKS);
kind!(v1::ReconcilePayments, "payment.reconcile", PAYMENT_CHECKS);
kind!(v1::ProcessPhoto, "photo.process", PHOTOS);
kind!(v1::ReconcilePhotos, "photo.reconcile", PHOTOS);

/// A job for `payload` with its kind; add options (delay, dedup key, priority,
/// attempts) with the `NewJob` builder. Its attempts are left to the worker,
/// whose `*_MAX_ATTEMPTS` (default: the catalogue's) then decides: a producer
/// that stamped the catalogue's number would make the variable dead.
pub fn new_job<J: JobKind>(payload: &J) -> NewJob {
    NewJob::message(J::KIND, payload)
}

/// Decodes a job's payload as `J`. A job of another kind or a payload that does not
/// decode is a permanent error: retrying cannot fix it.
pub fn decode<J: JobKind>(job: &Job) -> Result<J, JobError> {
    if job.kind() != J::KIND {
        return Err(JobError::permanent(anyhow::anyhow!(
            "job {} has kind {:?}, this worker handles {:?}",
            job.id(),
            job.kind(),
            J::KIND
        )));
    }
    job.decode()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use prost::Message;

    use super::*;

    #[test]
    fn queue_names_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for q in CATALOGUE {
            assert!(seen.insert(q.name), "duplicate queue {}", q.name);
            queue_core::keys::validate_queue_name(q.name).expect("valid queue name");
            assert!(q.worker_config().validate().is_ok(), "{}", q.name);
        }
    }

    #[test]
    fn payloads_round_trip_through_protobuf() {
        let qr = v1::GenerateQr {
            person_id: 42,
            content: "PERSON:V-12345678".into(),
            path: "qr/42.png".into(),
        };
        let back = v1::GenerateQr::decode(qr.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back, qr);
        let job = new_job(&qr);
        assert_eq!(job.kind(), "qr.generate");
    }

    #[test]
    fn every_queue_has_its_own_variable_prefix() {
        let prefixes: Vec<String> = CATALOGUE.iter().map(|q| q.env_prefix()).collect();
        assert_eq!(
            prefixes,
            ["QR", "CONTEXT", "WISPRO_SYNC", "PAYMENT_CHECKS", "PHOTOS"]
        );
    }

    #[test]
    fn payment_checks_are_the_queue_with_priority_lanes() {
        assert!(<v1::PaymentStatusCheck as JobKind>::QUEUE.priority_lanes);
    }

    #[test]
    #[allow(deprecated)]
    fn a_payment_check_names_its_payment_in_both_fields_and_an_old_check_is_still_read() {
        let check = v1::PaymentStatusCheck::new(42, 3);
        assert_eq!((check.payment_id, check.payment_qr_id), (42, 42));
        assert_eq!(check.payment(), 42);
        let written_before = v1::PaymentStatusCheck {
            payment_qr_id: 7,
            check_number: 1,
            ..Default::default()
        };
        assert_eq!(written_before.payment(), 7);
        assert!(!<v1::GenerateQr as JobKind>::QUEUE.priority_lanes);
    }
}
