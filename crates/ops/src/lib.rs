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
    pub const KEY_CREATE: &str = "key.create";
    pub const KEY_REVOKE: &str = "key.revoke";
    /// The gateway's workload actions; their target is `payment/ID`, `company/ID`.
    pub const PAYMENT_RESUME: &str = "payment.resume";
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
