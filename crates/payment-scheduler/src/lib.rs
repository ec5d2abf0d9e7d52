#![doc = include_str!("../README.md")]

pub mod cleanup;
pub mod config;
pub mod due;
pub mod handler;
pub mod reconcile;

use std::sync::Arc;

use ::payments::Bank;
use anyhow::Context;
use queue_core::{CancellationToken, Producer};
use service::{Started, WorkerService};

pub use crate::config::{BankConfig, CleanupConfig, Config, ScheduleConfig};
pub use crate::handler::CheckHandler;
pub use crate::reconcile::Reconciler;

/// Runs the payment scheduler until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config).await?.run(shutdown).await
}

/// Connects to Redis and PostgreSQL (running the migrations) and binds the
/// health port; the returned service runs `payment.check` jobs once run, the
/// cleanup (`payment.cleanup`) once per period and the reconciler
/// (`payment.reconcile`), and exports the checks due soon ([`due`]).
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let bank: Arc<dyn Bank> =
        ::payments::connect(&config.bank).context("building the bank client")?;
    let mut svc =
        WorkerService::connect(&config.base, &jobs::PAYMENT_CHECKS, config.worker).await?;
    let producer = Producer::new(svc.broker().clone());
    let checks = CheckHandler::new(
        svc.pool().clone(),
        bank,
        producer.clone(),
        svc.queue().clone(),
        config.schedule,
    );
    let cleanup = cleanup::Cleanup::new(
        svc.pool().clone(),
        svc.broker().clone(),
        config.cleanup.retention,
    );
    let handlers = svc
        .handlers()
        .on(checks)
        .on(cleanup)
        .on(svc.reconciler(config.reconcile, reconcile::OverdueChecks));
    // The period was checked where it was read (PAYMENT_CLEANUP_AT or
    // PAYMENT_CLEANUP_INTERVAL); naming one variable here could name the wrong one.
    let cleanup_every =
        cleanup::repeating_job(config.cleanup.every).context("declaring the daily cleanup")?;
    let (broker, queue) = (svc.broker().clone(), svc.queue().clone());
    let started = svc.repeat(cleanup_every).start(handlers)?;
    Ok(Started::new(started.addr(), move |shutdown| async move {
        let stop = shutdown.child_token();
        let run = async {
            let result = started.run(shutdown).await;
            stop.cancel();
            result
        };
        let (result, ()) = tokio::join!(run, due::export(broker, queue, stop.clone()));
        result
    }))
}
