#![doc = include_str!("../README.md")]

pub mod batch;
pub mod config;
pub mod handler;
pub mod reconcile;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;

use queue_core::CancellationToken;
use service::rows::RowHandler;
use service::{Started, WorkerService};
use storage::Storage;

pub use crate::batch::BatchOptions;
pub use crate::config::Config;
pub use crate::handler::QrHandler;
pub use crate::reconcile::Reconciler;
pub use crate::render::{EccLevel, Format, RenderOptions};

/// Runs the QR worker until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config).await?.run(shutdown).await
}

/// Connects to Redis and PostgreSQL (running the migrations) and binds the
/// health port; the returned service renders `qr.generate` jobs once run,
/// reconciles persons left pending without a job (`qr.reconcile`, a repeating
/// job), and sweeps the storage for stale temporary files at start and periodically.
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let storage = Storage::local(&config.storage.dir);
    // `qr`: the directory the gateway's paths point into, not just the root.
    let mut svc = WorkerService::connect(&config.base, &jobs::QR, config.worker)
        .await?
        .storage(storage.clone(), "qr", &config.storage)
        .await;
    let handlers = svc
        .handlers()
        .on(RowHandler(QrHandler::new(
            svc.pool().clone(),
            storage,
            config.qr,
            config.batch,
        )))
        .on(svc.reconciler(config.reconcile, reconcile::PendingQrs));
    svc.start(handlers)
}
