//! Answers that are no condensation (a refusal, a truncated completion, a text
//! far shorter than asked) are failed attempts, never the company's context;
//! and a throttled call waits out `Retry-After` when the job has the time.

use std::time::{Duration, Instant};

use context_worker::LlmApi;
use queue_core::testing::{eventually, ms};
use store::companies::{Company, ContextStatus};
use upstream_sim::AnswerMode;

use crate::support::{ContextWorld, TestApp, long_context};

/// Waits until the company is no longer pending.
async fn settled(app: &TestApp, id: i64) -> Company {
    eventually(&format!("company {id} is settled"), async || {
        Some(app.company(id).await).filter(|c| c.context_status != ContextStatus::Pending)
    })
    .await
}

/// Runs one company through a simulator answering `mode` in the `api` form;
/// the company must end `failed` with the original in use and an error
/// containing `reason`, after the three attempts.
async fn rejected(mode: AnswerMode, api: LlmApi, reason: &str) {
    let app = TestApp::new().await;
    app.sim.llm().set_answer(mode);
    let worker = app.spawn(app.config(api)).await;
    let original = long_context(1_800, 21);
    let company = app.add_company(&original, ContextStatus::Pending).await;
    app.enqueue(&company).await;

    let done = settled(&app, company.id).await;
    assert_eq!(
        done.context_status,
        ContextStatus::Failed,
        "{mode:?}: {done:?}"
    );
    assert_eq!(done.context, original, "the original stays in use");
    let error = done.context_error.expect("the reason is recorded");
    assert!(error.contains(reason), "{mode:?}: {error}");
    assert_eq!(
        app.sim.llm().stats().total.requests,
        3,
        "a retryable failure"
    );
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_refusal_in_the_openai_refusal_field_is_a_failed_attempt() {
    rejected(AnswerMode::Refusal, LlmApi::OpenAi, "refus").await;
}

#[tokio::test]
async fn a_refusal_recognised_by_its_opening_is_a_failed_attempt() {
    rejected(AnswerMode::Refusal, LlmApi::Chat, "refus").await;
}

#[tokio::test]
async fn a_truncated_completion_is_a_failed_attempt() {
    rejected(AnswerMode::Truncated, LlmApi::OpenAi, "finish_reason").await;
}

#[tokio::test]
async fn an_answer_far_shorter_than_asked_is_a_failed_attempt() {
    rejected(AnswerMode::TooShort, LlmApi::OpenAi, "far shorter").await;
}

#[tokio::test]
async fn a_429_with_a_retry_after_that_fits_the_job_is_waited_out_within_the_attempt() {
    let app = TestApp::new().await;
    app.sim.llm().throttle_next(1, 429, 1);
    let worker = app.spawn(app.config(LlmApi::OpenAi)).await;
    let company = app
        .add_company(&long_context(1_600, 22), ContextStatus::Pending)
        .await;
    let started = Instant::now();
    app.enqueue(&company).await;

    let done = settled(&app, company.id).await;
    assert_eq!(done.context_status, ContextStatus::Processed, "{done:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the second call waited the Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(app.sim.llm().stats().total.requests, 2);
    let s = app.stats().await;
    assert_eq!(s.retried, 0, "no attempt spent on the wait: {s:#?}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_503_with_a_retry_after_longer_than_the_job_fails_the_attempt_and_the_backoff_takes_over()
{
    let app = TestApp::new().await;
    app.sim.llm().throttle_next(1, 503, 30);
    let mut config = app.config(LlmApi::OpenAi);
    config.worker.job_timeout = Duration::from_secs(3);
    config.llm.timeout = Duration::from_secs(2);
    // Long enough to read the attempt's error before the retry.
    config.worker.backoff.initial = ms(1_500);
    let worker = app.spawn(config).await;
    let company = app
        .add_company(&long_context(1_600, 23), ContextStatus::Pending)
        .await;
    let started = Instant::now();
    app.enqueue(&company).await;

    let noted = eventually("the first attempt's error is noted", async || {
        app.company(company.id).await.context_error
    })
    .await;
    assert!(noted.contains("HTTP 503 with Retry-After 30s"), "{noted}");
    let done = settled(&app, company.id).await;
    assert_eq!(done.context_status, ContextStatus::Processed, "{done:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the 30 s were not waited"
    );
    assert_eq!(app.stats().await.retried, 1);
    worker.stop().await;
    app.finish().await;
}
