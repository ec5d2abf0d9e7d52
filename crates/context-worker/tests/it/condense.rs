//! Condensing through the LLM simulator: both request forms, failures with
//! their retries, answers that are no condensation, and the rows they leave.

use std::time::Duration;

use context_worker::LlmApi;
use context_worker::llm::{instruction, requested_length};
use queue_core::testing::{eventually, holds_for, ms};
use store::companies::ContextStatus;

use crate::support::{ContextWorld, TestApp, long_context};

#[tokio::test]
async fn a_long_context_is_condensed_in_the_openai_form_and_the_original_kept() {
    let app = TestApp::new().await;
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let original = long_context(2_000, 1);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    app.enqueue(&company).await;

    let done = app
        .company_until(company.id, ContextStatus::Processed)
        .await;
    assert_eq!(done.context, upstream_sim::condense(&original).trim());
    assert!(done.context.chars().count() < original.chars().count());
    assert_eq!(done.context_original, original, "the original is kept");
    assert_eq!(done.context_error, None);
    let stats = app.sim.llm().stats();
    assert_eq!(stats.routes["chat_completions"].requests, 1, "{stats:?}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn the_simple_chat_form_is_spoken_when_configured() {
    let app = TestApp::new().await;
    let worker = app.spawn(app.config(LlmApi::Chat)).await;
    let original = long_context(1_800, 2);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    app.enqueue(&company).await;

    let done = app
        .company_until(company.id, ContextStatus::Processed)
        .await;
    let target = requested_length(
        &original,
        context_worker::AnswerRules::default().summary_share,
    );
    let prompt = format!("{}\n\n{original}", instruction(target));
    assert_eq!(done.context, upstream_sim::condense(&prompt).trim());
    assert_eq!(app.sim.llm().stats().routes["chat"].requests, 1);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_llm_that_is_down_is_tried_three_times_then_the_original_stays_with_the_error() {
    let app = TestApp::new().await;
    app.sim.llm().set_error_rate(1.0);
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let original = long_context(1_600, 3);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    let job_id = app.enqueue(&company).await;

    let failed = app.company_until(company.id, ContextStatus::Failed).await;
    assert_eq!(failed.context, original, "the original stays in use");
    let error = failed.context_error.expect("the error is recorded");
    assert!(error.contains("HTTP 5"), "{error}");
    assert_eq!(app.sim.llm().stats().total.requests, 3, "three attempts");
    let letter = app.dead_letter(&job_id).await;
    assert_eq!(letter.attempts, Some(3));
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_call_slower_than_the_timeout_is_retried() {
    let app = TestApp::new().await;
    let mut config = app.config(LlmApi::OpenAi);
    config.llm.timeout = ms(300);
    // Room for a loaded machine to see the first timeout late.
    config.worker.max_attempts = 5;
    app.sim.llm().set_hang(true);
    let worker = app.spawn(config).await;
    let original = long_context(1_600, 4);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    app.enqueue(&company).await;

    // The first call hangs past the client's timeout; the retry is answered.
    let noted = eventually("the first attempt timed out", async || {
        app.company(company.id).await.context_error
    })
    .await;
    assert!(noted.contains("did not answer within"), "{noted}");
    app.sim.llm().set_hang(false);
    let done = app
        .company_until(company.id, ContextStatus::Processed)
        .await;
    assert_eq!(done.context_error, None);
    assert!(app.sim.llm().stats().total.requests >= 2);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn an_empty_answer_is_a_failed_attempt_not_a_result() {
    let app = TestApp::new().await;
    app.sim.llm().set_empty_answer(true);
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let original = long_context(1_600, 5);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    app.enqueue(&company).await;

    let failed = app.company_until(company.id, ContextStatus::Failed).await;
    assert_eq!(failed.context, original);
    let error = failed.context_error.expect("the error");
    assert!(error.contains("empty"), "{error}");
    assert_eq!(app.sim.llm().stats().total.requests, 3);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_refused_request_is_not_retried() {
    // The simulator wants a key it is not given: 401, which no retry fixes.
    let mut sim = upstream_sim::SimConfig::default();
    sim.llm.api_key = Some(service::Secret::new("sk-right"));
    let app = TestApp::with_sim(sim).await;
    let mut config = app.config(LlmApi::OpenAi);
    config.llm.api_key = Some(service::Secret::new("sk-wrong"));
    let worker = app.spawn(config).await;
    let company = app
        .add_company(&long_context(1_600, 6), ContextStatus::Pending)
        .await;
    app.enqueue(&company).await;

    let failed = app.company_until(company.id, ContextStatus::Failed).await;
    assert!(failed.context_error.expect("error").contains("HTTP 401"));
    assert_eq!(app.sim.llm().stats().total.requests, 1, "no retry");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_job_for_a_company_not_pending_or_gone_calls_no_llm_and_completes() {
    let app = TestApp::new().await;
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let skipped = app.add_company("short text", ContextStatus::Skipped).await;
    let gone = app
        .add_company(&long_context(1_600, 7), ContextStatus::Pending)
        .await;
    assert!(
        store::companies::delete(&mut *app.conn().await, gone.id)
            .await
            .expect("delete")
    );
    app.enqueue(&skipped).await;
    app.enqueue(&gone).await;

    app.stats_until("both jobs completed", |s| s.completed >= 2)
        .await;
    let s = app.stats().await;
    assert_eq!((s.dead_lettered, s.retried), (0, 0), "{s:#?}");
    assert_eq!(app.sim.llm().stats().total.requests, 0);
    assert_eq!(
        app.company(skipped.id).await.context_status,
        ContextStatus::Skipped
    );
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_pending_company_whose_job_was_lost_is_condensed_by_the_reconciler() {
    let app = TestApp::new().await;
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    // Stored, never enqueued: a gateway killed between its commit and the enqueue.
    let company = app
        .add_company(&long_context(1_600, 8), ContextStatus::Pending)
        .await;
    let done = app
        .company_until(company.id, ContextStatus::Processed)
        .await;
    assert!(done.context.len() < done.context_original.len());
    // Each later run finds nothing to do: one condensation only.
    holds_for("no second call", Duration::from_millis(1_500), async || {
        app.sim.llm().stats().total.requests == 1
    })
    .await;
    worker.stop().await;
    app.finish().await;
}
