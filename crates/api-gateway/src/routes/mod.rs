//! One module per route group; each exposes `router()`, merged by `crate::router`.

pub mod companies;
pub mod docs;
pub mod jobs;
pub mod keys;
pub mod lists;
pub mod payments;
pub mod persons;
pub mod photos;
pub mod queues;
pub mod sync;

use std::future::Future;

use ::jobs::JobKind;
use queue_core::NewJob;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::AppState;
use crate::error::ApiError;

/// How an operator's "run it again" on a row whose work stopped (a payment
/// flagged for an operator, a failed company context) got its work going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RerunBy {
    /// The row's dead-lettered job was still kept and was retried: its worker
    /// reopens the row and runs it at once (docs/design.md, "Retrying a dead
    /// letter runs the work again"), so no second job runs beside it.
    DeadLetterRetried,
    /// No dead letter was left (the row stopped without one, or it was
    /// deleted): the row was reopened here and its job enqueued.
    JobEnqueued,
}

/// What [`rerun`] did: how, and the job that does the work next (None when
/// the enqueue after the reopen failed: the row is pending again, so its
/// reconciler enqueues the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerun {
    pub by: RerunBy,
    pub job_id: Option<String>,
}

/// Gets a row's work going again: retries the newest dead letter of kind `J`
/// that `of_row` says is the row's, else runs `reopen` (which moves the row
/// back to the state that runs and answers its job) and enqueues the job.
/// When `reopen` finds the row not stopped (any more) it answers None, and
/// the error is `not_stopped`'s.
pub(crate) async fn rerun<J, R>(
    state: &AppState,
    of_row: impl Fn(&J) -> bool,
    reopen: R,
    not_stopped: impl FnOnce() -> ApiError,
) -> Result<Rerun, ApiError>
where
    J: JobKind,
    R: Future<Output = Result<Option<NewJob>, ApiError>>,
{
    let queue = J::QUEUE.open(&state.broker)?;
    // Boxed: Redis futures are large, and these run inside request handlers.
    if let Some(dead) = Box::pin(newest_dead_letter(state, &queue, &of_row)).await? {
        match Box::pin(state.admin.retry_dead(&queue, &dead.id)).await {
            Ok(_) => {
                return Ok(Rerun {
                    by: RerunBy::DeadLetterRetried,
                    job_id: Some(dead.job_id),
                });
            }
            // Retried or deleted meanwhile by someone else: reopen instead.
            Err(queue_core::Error::NoSuchDeadLetter { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(job) = reopen.await? else {
        return Err(not_stopped());
    };
    let job_id = match Box::pin(state.enqueuer.enqueue(job)).await {
        Ok(enqueued) => Some(enqueued.id().to_owned()),
        Err(e) => {
            // docs/design.md, "A row and its job never disagree for long".
            warn!(
                error = format!("{:#}", anyhow::Error::from(e)),
                "reopened, but enqueueing its job failed; the reconciler will enqueue it"
            );
            None
        }
    };
    Ok(Rerun {
        by: RerunBy::JobEnqueued,
        job_id,
    })
}

/// The newest dead letter of kind `J` whose payload `of_row` accepts. A scan,
/// newest first, bounded by the queue's dead-letter retention.
async fn newest_dead_letter<J: JobKind>(
    state: &AppState,
    queue: &queue_core::Queue,
    of_row: &impl Fn(&J) -> bool,
) -> Result<Option<queue_core::admin::DeadLetter>, ApiError> {
    let mut before: Option<String> = None;
    loop {
        let page = state
            .admin
            .dead_letters(queue, before.as_deref(), 200)
            .await?;
        let found = page.items.into_iter().find(|dead| {
            dead.kind == J::KIND
                && dead
                    .envelope
                    .as_ref()
                    .and_then(|env| J::decode(env.payload.clone()).ok())
                    .is_some_and(|msg| of_row(&msg))
        });
        if found.is_some() {
            return Ok(found);
        }
        match page.next {
            Some(next) => before = Some(next),
            None => return Ok(None),
        }
    }
}
