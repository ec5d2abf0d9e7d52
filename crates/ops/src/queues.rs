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

impl<'a> QueueActions<'a> {
    pub fn new(admin: &'a Admin, auditor: &'a Auditor) -> Self {
        Self { admin, auditor }
    }

    /// Puts the dead letter `id` (entry id or job id) back on its lane as
    /// attempt 1; its new entry id.
    pub async fn retry_failed(&self, queue: &str, id: &str) -> Result<String, Error> {
        let target = format!("{queue}/{id}");
        self.auditor
            .run(action::QUEUE_RETRY, &target, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.retry_dead(&q, id).await?)
            })
            .await
    }

    /// Puts every dead letter that decodes back on its lane; how many.
    pub async fn retry_all_failed(&self, queue: &str) -> Result<u64, Error> {
        self.auditor
            .run(action::QUEUE_RETRY_ALL, queue, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.retry_all_dead(&q).await?)
            })
            .await
    }

    /// Deletes the dead letter `id` (entry id or job id).
    pub async fn delete_failed(&self, queue: &str, id: &str) -> Result<(), Error> {
        let target = format!("{queue}/{id}");
        self.auditor
            .run(action::QUEUE_DELETE, &target, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.delete_dead(&q, id).await?)
            })
            .await
    }

    /// Deletes every dead letter of `queue`; how many.
    pub async fn flush_failed(&self, queue: &str) -> Result<u64, Error> {
        self.auditor
            .run(action::QUEUE_FLUSH, queue, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.flush_dead(&q).await?)
            })
            .await
    }

    pub async fn pause(&self, queue: &str) -> Result<(), Error> {
        self.auditor
            .run(action::QUEUE_PAUSE, queue, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.pause(&q).await?)
            })
            .await
    }

    pub async fn resume(&self, queue: &str) -> Result<(), Error> {
        self.auditor
            .run(action::QUEUE_RESUME, queue, None, async {
                let q = self.admin.open(queue).await?;
                Ok(self.admin.resume(&q).await?)
            })
            .await
    }
}
