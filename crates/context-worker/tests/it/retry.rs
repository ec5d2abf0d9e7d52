//! An operator's retry of a dead letter (`queuectl retry`, the admin API): the
//! company failed by it runs again and is condensed, its error kept.

use context_worker::LlmApi;
use service::testing::assert_one_past_error;
use store::companies::{Company, ContextStatus};

use crate::support::{ContextWorld, TestApp, long_context};

/// What a retried company must look like once condensed.
fn condensed_after_a_retry(done: &Company, original: &str) {
    assert_eq!(done.context, upstream_sim::condense(original).trim());
    assert_eq!(done.context_original, original);
    assert_eq!(done.context_error, None);
    assert_one_past_error(&done.context_error_history, "HTTP 5");
}

#[tokio::test]
async fn retrying_a_dead_lettered_condensation_reopens_the_company_and_condenses_it() {
    let app = TestApp::new().await;
    app.sim.llm().set_error_rate(1.0);
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let (first, second) = (long_context(1_600, 11), long_context(1_700, 12));
    let one = app.add_company(&first, ContextStatus::Pending).await;
    let all = app.add_company(&second, ContextStatus::Pending).await;
    let job = app.enqueue(&one).await;
    app.enqueue(&all).await;
    app.company_until(one.id, ContextStatus::Failed).await;
    app.company_until(all.id, ContextStatus::Failed).await;
    app.stats_until("both jobs are dead letters", |s| s.dead_lettered == 2)
        .await;
    app.sim.llm().set_error_rate(0.0);

    // One dead letter, by its job id.
    app.retry_dead(&job).await;
    let done = app.company_until(one.id, ContextStatus::Processed).await;
    condensed_after_a_retry(&done, &first);
    assert_eq!(
        app.company(all.id).await.context_status,
        ContextStatus::Failed,
        "only the one retried"
    );

    // Every dead letter.
    assert_eq!(app.retry_all_dead().await, 1);
    let done = app.company_until(all.id, ContextStatus::Processed).await;
    condensed_after_a_retry(&done, &second);
    worker.stop().await;
    app.finish().await;
}
