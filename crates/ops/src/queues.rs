//! The queue actions that change state, through `queue_core::Admin`, each
//! recorded by an [`Auditor`]. A target is `QUEUE` or `QUEUE/ID`.

use queue_core::Admin;

use crate::{Auditor, Error, action};

/// The queue actions of one actor.
#[derive(Clone, Copy, Debug)]
pub struct QueueActions<'a> {
    pub admin: &'a Admin,
    pub auditor: &'a Auditor,
}

// Each action's future is boxed: queue-core's and sqlx's futures are large,
// and the callers (routes, dashboard handlers, queuectl) nest these in theirs.
impl<'a> QueueActions<'a> {
    pub fn new(admin: &'a Admin, auditor: &'a Auditor) -> Self {
        Self { admin, auditor }
    }

    /// Puts the dead letter `id` (entry id or job id) back on its lane as
    /// attempt 1; its new entry id.
    pub async fn retry_failed(&self, queue: &str, id: &str) -> Result<String, Error> {
        let target = format!("{queue}/{id}");
        Box::pin(self.auditor.run(action::QUEUE_RETRY, &target, None, async {
            let q = self.admin.open(queue).await?;
            Ok(self.admin.retry_dead(&q, id).await?)
        }))
        .await
    }

    /// Puts every dead letter that decodes back on its lane; how many.
    pub async fn retry_all_failed(&self, queue: &str) -> Result<u64, Error> {
        Box::pin(
            self.auditor
                .run(action::QUEUE_RETRY_ALL, queue, None, async {
                    let q = self.admin.open(queue).await?;
                    Ok(self.admin.retry_all_dead(&q).await?)
                }),
        )
        .await
    }

    /// Deletes the dead letter `id` (entry id or job id).
    pub async fn delete_failed(&self, queue: &str, id: &str) -> Result<(), Error> {
        let target = format!("{queue}/{id}");
        Box::pin(
            self.auditor
                .run(action::QUEUE_DELETE, &target, None, async {
                    let q = self.admin.open(queue).await?;
                    Ok(self.admin.delete_dead(&q, id).await?)
                }),
        )
        .await
    }

    /// Deletes every dead letter of `queue`; how many.
    pub async fn flush_failed(&self, queue: &str) -> Result<u64, Error> {
        Box::pin(self.auditor.run(action::QUEUE_FLUSH, queue, None, async {
            let q = self.admin.open(queue).await?;
            Ok(self.admin.flush_dead(&q).await?)
        }))
        .await
    }

    pub async fn pause(&self, queue: &str) -> Result<(), Error> {
        Box::pin(self.auditor.run(action::QUEUE_PAUSE, queue, None, async {
            let q = self.admin.open(queue).await?;
            Ok(self.admin.pause(&q).await?)
        }))
        .await
    }

    pub async fn resume(&self, queue: &str) -> Result<(), Error> {
        Box::pin(self.auditor.run(action::QUEUE_RESUME, queue, None, async {
            let q = self.admin.open(queue).await?;
            Ok(self.admin.resume(&q).await?)
        }))
        .await
    }

    /// Moves the delayed job `job_id` into its lane now; an error when there
    /// is no such job or it is not delayed.
    pub async fn promote(&self, queue: &str, job_id: &str) -> Result<(), Error> {
        let target = format!("{queue}/{job_id}");
        Box::pin(
            self.auditor
                .run(action::QUEUE_PROMOTE, &target, None, async {
                    let q = self.admin.open(queue).await?;
                    self.admin
                        .promote(&q, job_id)
                        .await?
                        .then_some(())
                        .ok_or_else(|| no_such_job(queue, job_id))
                }),
        )
        .await
    }

    /// Deletes the waiting, delayed or failed job `job_id`; an error when
    /// there is no such job or a worker holds it.
    pub async fn delete_job(&self, queue: &str, job_id: &str) -> Result<(), Error> {
        let target = format!("{queue}/{job_id}");
        Box::pin(
            self.auditor
                .run(action::QUEUE_DELETE_JOB, &target, None, async {
                    let q = self.admin.open(queue).await?;
                    self.admin
                        .delete_job(&q, job_id)
                        .await?
                        .then_some(())
                        .ok_or_else(|| no_such_job(queue, job_id))
                }),
        )
        .await
    }
}

fn no_such_job(queue: &str, id: &str) -> Error {
    Error::NoSuchJob {
        queue: queue.to_owned(),
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use queue_core::NewJob;
    use queue_core::testing::TestRedis;
    use store::testing::TestDb;

    use super::*;

    #[tokio::test]
    async fn promoting_and_deleting_a_job_are_recorded_with_their_outcome() {
        let (redis, db) = (TestRedis::new().await, TestDb::new().await);
        let q = redis.broker.queue("mail").expect("queue");
        let later = NewJob::new("test.job", b"x".to_vec()).delay(Duration::from_secs(3600));
        let id = redis.enqueue(&q, later).await.id().to_owned();
        let auditor = Auditor::new(db.pool.clone(), "ops-alice (rsq_ab12cd34)");
        let actions = QueueActions::new(&redis.admin, &auditor);

        actions.promote("mail", &id).await.expect("promoted");
        let s = redis.stats(&q).await;
        assert_eq!((s.delayed, s.waiting), (0, 1));
        let again = actions.promote("mail", "no-such-job").await;
        assert!(matches!(again, Err(Error::NoSuchJob { .. })), "{again:?}");
        actions.delete_job("mail", &id).await.expect("deleted");
        assert_eq!(redis.stats(&q).await.waiting, 0);

        let mut conn = db.pool.acquire().await.expect("conn");
        let entries = store::audit::list(&mut conn, None, 10).await.expect("list");
        let seen: Vec<_> = entries
            .iter()
            .map(|e| (e.action.as_str(), e.target.clone(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (action::QUEUE_DELETE_JOB, format!("mail/{id}"), "ok"),
                (
                    action::QUEUE_PROMOTE,
                    "mail/no-such-job".to_owned(),
                    "no job \"no-such-job\" in queue \"mail\""
                ),
                (action::QUEUE_PROMOTE, format!("mail/{id}"), "ok"),
            ]
        );
        drop(conn);
        db.cleanup().await;
    }
}
