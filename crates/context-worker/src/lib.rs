#![doc = include_str!("../README.md")]

pub mod config;
pub mod handler;
pub mod llm;
pub mod reconcile;

use anyhow::Context;
use queue_core::CancellationToken;
use service::rows::RowHandler;
use service::{Started, WorkerService};

pub use crate::config::{AnswerRules, Config, LlmApi, LlmConfig};
pub use crate::handler::ContextHandler;
pub use crate::llm::LlmClient;
pub use crate::reconcile::Reconciler;

/// Runs the context worker until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config).await?.run(shutdown).await
}

/// Connects to Redis and PostgreSQL (running the migrations) and binds the
/// health port; the returned service condenses `context.condense` jobs once run
/// and reconciles companies left pending without a job (`context.reconcile`).
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let llm = LlmClient::new(config.llm.clone()).context("building the LLM client")?;
    let job_timeout = config.worker.job_timeout;
    let mut svc = WorkerService::connect(&config.base, &jobs::CONTEXT, config.worker).await?;
    let handlers = svc
        .handlers()
        .on(RowHandler(ContextHandler::new(
            svc.pool().clone(),
            llm,
            job_timeout,
        )))
        .on(svc.reconciler(config.reconcile, reconcile::PendingContexts));
    svc.start(handlers)
}
