#![doc = include_str!("../README.md")]

mod handlers;
mod json;
pub mod rows;

use std::time::Duration;

use queue_core::{Broker, Job, JobError, NewJob, Queue, WorkerConfig};

/// Generated payload messages of package `jobs.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/jobs.v1.rs"));
}

pub use queue_core::Envelope;

pub use crate::handlers::{Handlers, JobHandler};
pub use crate::json::DecodeError;

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

    /// The dedup key of a job that belongs to a row (`qr:person:42`): a job of
    /// the same key is unique until settled, so the gateway and the reconciler
    /// can both say "this row needs its job" without ever making two
    /// (docs/design.md, "A row and its job never disagree for long"). None for
    /// a kind that belongs to no row.
    ///
    /// Jobs in a live Redis hold these keys: a key never changes its spelling.
    fn dedup_key(&self) -> Option<String> {
        None
    }
}

/// The catalogue of job kinds: each kind's `JobKind` (name, queue, the dedup
/// key of its row if it has one) and [`KINDS`], from one list.
macro_rules! kinds {
    ($($ty:ty => $kind:literal on $queue:ident $(, key $msg:ident => $key:expr)?;)*) => {
        $(
            impl JobKind for $ty {
                const KIND: &'static str = $kind;
                const QUEUE: &'static QueueSpec = &$queue;
                $(
                    fn dedup_key(&self) -> Option<String> {
                        let $msg = self;
                        Some($key)
                    }
                )?
            }
        )*

        /// Every job kind and its queue, as [`JobKind`] declares them.
        pub const KINDS: &[(&str, &QueueSpec)] = &[$(($kind, &$queue)),*];

        /// A payload of `kind` as JSON with the proto's field names (`{"person_id": 42, ...}`),
        /// every field written, defaults included; an error for a kind the catalogue
        /// does not know or bytes that do not decode.
        pub fn payload_json(kind: &str, payload: &[u8]) -> Result<serde_json::Value, DecodeError> {
            match kind {
                $($kind => json::message_json::<$ty>($kind, payload),)*
                _ => Err(DecodeError::UnknownKind(kind.to_owned())),
            }
        }
    };
}

kinds! {
    v1::GenerateQr => "qr.generate" on QR, key m => format!("qr:person:{}", m.person_id);
    v1::ReconcileQr => "qr.reconcile" on QR;
    v1::CondenseCompanyContext => "context.condense" on CONTEXT,
        key m => format!("context:company:{}", m.company_id);
    v1::ReconcileContexts => "context.reconcile" on CONTEXT;
    v1::WisproSyncRun => "wispro.sync" on WISPRO_SYNC, key m => format!("wispro-sync:run:{}", m.run_id);
    v1::ReconcileSyncRuns => "wispro.reconcile" on WISPRO_SYNC;
    v1::PaymentStatusCheck => "payment.check" on PAYMENT_CHECKS,
        key m => format!("payment:{}:check:{}", m.payment(), m.check_number);
    v1::PaymentCleanup => "payment.cleanup" on PAYMENT_CHECKS;
    v1::ReconcilePayments => "payment.reconcile" on PAYMENT_CHECKS;
    v1::ProcessPhoto => "photo.process" on PHOTOS, key m => format!("photo:{}", m.photo_id);
    v1::ReconcilePhotos => "photo.reconcile" on PHOTOS;
}

/// The queue that takes jobs of `kind`; None for a kind of no [`JobKind`].
pub fn queue_of(kind: &str) -> Option<&'static QueueSpec> {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, queue)| *queue)
}

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

/// A job for `payload` with its kind and, for a kind that belongs to a row, its
/// [`JobKind::dedup_key`] unique until settled; add options (delay, priority)
/// with the `NewJob` builder. Its attempts are left to the worker, whose
/// `*_MAX_ATTEMPTS` (default: the catalogue's) then decides: a producer that
/// stamped the catalogue's number would make the variable dead.
pub fn new_job<J: JobKind>(payload: &J) -> NewJob {
    let job = NewJob::message(J::KIND, payload);
    match payload.dedup_key() {
        Some(key) => job.unique_until_settled(key),
        None => job,
    }
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
    fn the_dedup_keys_of_rows_are_spelled_as_the_jobs_in_redis_hold_them() {
        assert_eq!(
            v1::GenerateQr {
                person_id: 42,
                ..Default::default()
            }
            .dedup_key()
            .as_deref(),
            Some("qr:person:42")
        );
        assert_eq!(
            v1::CondenseCompanyContext { company_id: 7 }
                .dedup_key()
                .as_deref(),
            Some("context:company:7")
        );
        assert_eq!(
            v1::WisproSyncRun {
                run_id: 42,
                requested_by: "admin".into(),
            }
            .dedup_key()
            .as_deref(),
            Some("wispro-sync:run:42")
        );
        assert_eq!(
            v1::PaymentStatusCheck::new(42, 3).dedup_key().as_deref(),
            Some("payment:42:check:3")
        );
        #[allow(deprecated)]
        let written_before = v1::PaymentStatusCheck {
            payment_qr_id: 9,
            check_number: 1,
            ..Default::default()
        };
        assert_eq!(
            written_before.dedup_key().as_deref(),
            Some("payment:9:check:1")
        );
        assert_eq!(
            v1::ProcessPhoto { photo_id: 5 }.dedup_key().as_deref(),
            Some("photo:5")
        );
        for none in [
            v1::PaymentCleanup::default().dedup_key(),
            v1::ReconcileQr::default().dedup_key(),
            v1::ReconcileContexts::default().dedup_key(),
            v1::ReconcileSyncRuns::default().dedup_key(),
            v1::ReconcilePayments::default().dedup_key(),
            v1::ReconcilePhotos::default().dedup_key(),
        ] {
            assert_eq!(none, None);
        }
    }

    #[test]
    fn a_job_of_a_row_is_unique_until_settled_under_its_key_and_another_has_no_key() {
        let job = format!("{:?}", new_job(&v1::ProcessPhoto { photo_id: 5 }));
        assert!(job.contains(r#"Some(("photo:5", UntilSettled))"#), "{job}");
        let cleanup = format!("{:?}", new_job(&v1::PaymentCleanup::default()));
        assert!(cleanup.contains("dedup: None"), "{cleanup}");
    }

    #[test]
    fn every_kind_is_routed_to_its_own_queue_of_the_catalogue() {
        let mut seen = HashSet::new();
        for (kind, queue) in KINDS {
            assert!(seen.insert(*kind), "duplicate kind {kind}");
            assert!(CATALOGUE.contains(queue), "{kind} on {}", queue.name);
            assert_eq!(queue_of(kind), Some(*queue));
        }
        assert_eq!(queue_of("qr.generate"), Some(&QR));
        assert_eq!(queue_of("payment.cleanup"), Some(&PAYMENT_CHECKS));
        assert_eq!(queue_of("no.such.kind"), None);
        assert_eq!(
            queue_of(<v1::ProcessPhoto as JobKind>::KIND),
            Some(<v1::ProcessPhoto as JobKind>::QUEUE)
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
