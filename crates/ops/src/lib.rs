#![doc = include_str!("../README.md")]

pub mod keys;
pub mod queues;

use std::fmt::Display;
use std::future::Future;

use store::PgPool;

pub use keys::{CreatedKey, parse_expiry};
pub use queues::QueueActions;

/// The names of the actions in the audit log.
pub mod action {
    pub const QUEUE_RETRY: &str = "queue.retry";
    pub const QUEUE_RETRY_ALL: &str = "queue.retry_all";
    pub const QUEUE_DELETE: &str = "queue.delete";
    pub const QUEUE_FLUSH: &str = "queue.flush";
    pub const QUEUE_PAUSE: &str = "queue.pause";
    pub const QUEUE_RESUME: &str = "queue.resume";
    pub const QUEUE_PROMOTE: &str = "queue.promote";
    pub const QUEUE_DELETE_JOB: &str = "queue.delete_job";
    pub const QUEUE_PURGE: &str = "queue.purge";
    pub const QUEUE_REMOVE_CONSUMERS: &str = "queue.remove_consumers";
    pub const KEY_CREATE: &str = "key.create";
    pub const KEY_REVOKE: &str = "key.revoke";
    /// The gateway's workload actions; their target is `payment/ID`, `company/ID`.
    pub const PAYMENT_RESUME: &str = "payment.resume";
    pub const PAYMENT_RESOLVE: &str = "payment.resolve";
    pub const PAYMENT_CANCEL: &str = "payment.cancel";
    pub const CONTEXT_RETRY: &str = "company.context_retry";
}

/// The audit log could not be written before an action, so the action was not
/// done.
#[derive(Debug, thiserror::Error)]
#[error("the audit log is unavailable, so nothing was done: {0}")]
pub struct AuditUnavailable(#[source] pub store::StoreError);

/// Errors of the actions here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Queue(#[from] queue_core::Error),
    #[error(transparent)]
    Audit(#[from] AuditUnavailable),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("no API key {0}")]
    NoSuchKey(i64),
    #[error("no job {id:?} in queue {queue:?}")]
    NoSuchJob { queue: String, id: String },
}

/// Who acts, and the audit log their actions go to.
#[derive(Clone, Debug)]
pub struct Auditor {
    pool: Option<PgPool>,
    actor: String,
}

impl Auditor {
    /// Actions of `actor`, recorded in `pool`'s audit log.
    pub fn new(pool: PgPool, actor: impl Into<String>) -> Self {
        Self {
            pool: Some(pool),
            actor: actor.into(),
        }
    }

    /// Actions recorded nowhere: `queuectl` without a database.
    pub fn unaudited(actor: impl Into<String>) -> Self {
        Self {
            pool: None,
            actor: actor.into(),
        }
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The pool actions are recorded in, when there is one.
    pub fn pool(&self) -> Option<&PgPool> {
        self.pool.as_ref()
    }

    /// Runs `f`, the action `action` on `target`, recorded in the audit log.
    ///
    /// Fail closed: the entry is written (`pending`) before `f` runs, and when
    /// that write fails `f` does not run and the answer is [`AuditUnavailable`];
    /// so nothing changes without its entry, and an action whose outcome never
    /// arrives (the process died) still shows, `pending`. Once `f` has run its
    /// outcome is returned whatever happens to the entry: the change is made
    /// and cannot be undone, so a failure to write the outcome is only logged
    /// and the entry stays `pending`.
    pub async fn run<T, E, F>(
        &self,
        action: &str,
        target: &str,
        detail: Option<&str>,
        f: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Display + From<AuditUnavailable>,
    {
        let Some(pool) = &self.pool else {
            return f.await;
        };
        // Boxed, as are the action and the outcome's write: sqlx's futures are
        // large, and callers nest this in their own.
        let id = Box::pin(async {
            let mut conn = pool.acquire().await?;
            store::audit::start(&mut conn, &self.actor, action, target, detail).await
        })
        .await
        .map_err(|e| E::from(AuditUnavailable(e)))?;
        let result = Box::pin(f).await;
        let outcome = match &result {
            Ok(_) => store::audit::OK.to_owned(),
            Err(e) => e.to_string(),
        };
        let finished = Box::pin(async {
            let mut conn = pool.acquire().await?;
            store::audit::finish(&mut conn, id, &outcome).await
        })
        .await;
        if let Err(e) = finished {
            tracing::error!(audit.id = id, audit.action = action, audit.target = target,
                audit.outcome = %outcome, error = %e, "could not record the outcome of an action; its audit entry stays pending");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use store::testing::TestDb;

    use super::*;

    #[derive(Debug)]
    struct Failed(String);

    impl Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl From<AuditUnavailable> for Failed {
        fn from(e: AuditUnavailable) -> Self {
            Failed(e.to_string())
        }
    }

    async fn entries(pool: &PgPool) -> Vec<store::audit::AuditEntry> {
        let mut conn = pool.acquire().await.expect("conn");
        store::audit::list(&mut conn, None, 10).await.expect("list")
    }

    #[tokio::test]
    async fn an_action_is_recorded_with_its_outcome_and_not_done_when_it_cannot_be() {
        let db = TestDb::new().await;
        let auditor = Auditor::new(db.pool.clone(), "ops-alice (rsq_ab12cd34)");
        let ok: Result<u32, Failed> = auditor
            .run("thing.do", "thing/1", Some("why"), async { Ok(7) })
            .await;
        assert_eq!(ok.expect("ok"), 7);
        let failed: Result<(), Failed> = auditor
            .run("thing.do", "thing/2", None, async {
                Err(Failed("thing 2 is stuck".into()))
            })
            .await;
        assert_eq!(failed.expect_err("failed").0, "thing 2 is stuck");
        let e = entries(&db.pool).await;
        assert_eq!(
            e.iter()
                .map(|e| (e.target.as_str(), e.outcome.as_str()))
                .collect::<Vec<_>>(),
            [("thing/2", "thing 2 is stuck"), ("thing/1", "ok")]
        );
        assert_eq!(e[1].detail.as_deref(), Some("why"));
        assert_eq!(e[1].actor, "ops-alice (rsq_ab12cd34)");

        // Fail closed: no entry, no action.
        db.pool.close().await;
        let ran = AtomicBool::new(false);
        let refused: Result<(), Failed> = auditor
            .run("thing.do", "thing/3", None, async {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(
            refused
                .expect_err("refused")
                .0
                .contains("audit log is unavailable")
        );
        assert!(!ran.load(Ordering::SeqCst), "the action did not run");
        db.cleanup().await;
    }

    #[tokio::test]
    async fn without_a_database_actions_run_unrecorded() {
        let auditor = Auditor::unaudited("queuectl:root");
        let r: Result<u8, Failed> = auditor.run("thing.do", "x", None, async { Ok(1) }).await;
        assert_eq!(r.expect("ok"), 1);
        assert!(auditor.pool().is_none());
    }
}
