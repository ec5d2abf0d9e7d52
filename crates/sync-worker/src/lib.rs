#![doc = include_str!("../README.md")]

pub mod config;
pub mod customer;
pub mod handler;
pub mod idnumber;
pub mod reconcile;
pub mod wispro;

use anyhow::Context;
use queue_core::CancellationToken;
use service::rows::RowHandler;
use service::{Started, WorkerService};

pub use crate::config::{Config, WisproConfig};
pub use crate::handler::SyncHandler;
pub use crate::wispro::WisproClient;

/// Runs the sync worker until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config).await?.run(shutdown).await
}

/// Connects to Redis and PostgreSQL (running the migrations) and binds the
/// health port; the returned service runs `wispro.sync` jobs once run and
/// reconciles an active run left without a job (`wispro.reconcile`).
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let wispro = WisproClient::new(config.wispro.clone()).context("building the Wispro client")?;
    let settings = handler::RunSettings::of(&config);
    let mut svc = WorkerService::connect(&config.base, &jobs::WISPRO_SYNC, config.worker).await?;
    let handlers = svc
        .handlers()
        .on(RowHandler(SyncHandler::new(
            svc.pool().clone(),
            wispro,
            settings,
        )))
        .on(svc.reconciler(config.reconcile, reconcile::StalledRuns));
    svc.start(handlers)
}
