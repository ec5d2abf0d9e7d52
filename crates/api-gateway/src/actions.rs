//! Every state-changing queue action, performed through `queue_core::Admin`
//! and written to the audit log with its outcome (`ops::QueueActions`, which
//! queuectl calls too). The API routes and the dashboard both call these.

use std::future::Future;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

fn queue_actions<'a>(state: &'a AppState, auditor: &'a ops::Auditor) -> ops::QueueActions<'a> {
    ops::QueueActions::new(&state.admin, auditor)
}

/// Retries the dead letter `id` (entry id or job id) of `queue`; the new entry id.
pub async fn retry_failed(
    state: &AppState,
    who: &Principal,
    queue: &str,
    id: &str,
) -> Result<String, ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor)
        .retry_failed(queue, id)
        .await?)
}

/// Retries every dead letter of `queue` that decodes; how many.
pub async fn retry_all_failed(
    state: &AppState,
    who: &Principal,
    queue: &str,
) -> Result<u64, ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor)
        .retry_all_failed(queue)
        .await?)
}

/// Deletes the dead letter `id` (entry id or job id) of `queue`.
pub async fn delete_failed(
    state: &AppState,
    who: &Principal,
    queue: &str,
    id: &str,
) -> Result<(), ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor)
        .delete_failed(queue, id)
        .await?)
}

/// Deletes every dead letter of `queue`; how many.
pub async fn flush_failed(state: &AppState, who: &Principal, queue: &str) -> Result<u64, ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor).flush_failed(queue).await?)
}

pub async fn pause(state: &AppState, who: &Principal, queue: &str) -> Result<(), ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor).pause(queue).await?)
}

pub async fn resume(state: &AppState, who: &Principal, queue: &str) -> Result<(), ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor).resume(queue).await?)
}

/// Moves the delayed job `job_id` of `queue` into its lane now; 404 when there
/// is no such job.
pub async fn promote(
    state: &AppState,
    who: &Principal,
    queue: &str,
    job_id: &str,
) -> Result<(), ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor)
        .promote(queue, job_id)
        .await?)
}

/// Deletes the waiting, delayed or failed job `job_id` of `queue`; 404 when
/// there is no such job.
pub async fn delete_job(
    state: &AppState,
    who: &Principal,
    queue: &str,
    job_id: &str,
) -> Result<(), ApiError> {
    let auditor = who.auditor(state);
    Ok(queue_actions(state, &auditor)
        .delete_job(queue, job_id)
        .await?)
}

/// Runs `f`, an action of `who` named `action` (`payment.resume`) on `target`
/// (`payment/42`), recorded in the audit log with its outcome: for actions
/// other than the queue's. Fails closed: when the entry cannot be written
/// first, `f` does not run and the answer is 503 (see `ops::Auditor::run`).
pub async fn audited<T, F>(
    state: &AppState,
    who: &Principal,
    action: &str,
    target: &str,
    f: F,
) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    audited_with(state, who, action, target, None, f).await
}

/// [`audited`], with a detail kept in the entry (`completed: paid in cash`).
pub async fn audited_with<T, F>(
    state: &AppState,
    who: &Principal,
    action: &str,
    target: &str,
    detail: Option<&str>,
    f: F,
) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    who.auditor(state).run(action, target, detail, f).await
}
