#![doc = include_str!("../README.md")]

pub mod config;
pub mod handler;
pub mod reconcile;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;

use anyhow::Context;
use tracing::warn;

use queue_core::CancellationToken;
use service::{Started, WorkerService};
use storage::{Storage, Sweep};

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
    let svc = WorkerService::connect(&config.base, &jobs::QR, config.worker).await?;
    let storage = Storage::local(&config.storage_dir);
    if let Err(e) = storage.check_writable().await {
        // Not fatal: the directory may be mounted later; /readyz says so meanwhile.
        warn!(storage.dir = %config.storage_dir.display(), error = %e, "the storage directory is not writable");
    }
    let reconciler = Reconciler::of(&svc, config.reconcile, reconcile::PendingQrs);
    let every = reconciler
        .repeating_job()
        .context("QR_RECONCILE_INTERVAL")?;
    let handlers = svc
        .handlers()
        .on(QrHandler::new(
            svc.pool().clone(),
            storage.clone(),
            config.qr,
        ))
        .on(reconciler);
    let started = svc
        .repeat(every)
        .readiness_check("storage", {
            let storage = storage.clone();
            move || {
                let storage = storage.clone();
                // The directory the gateway's paths point into, not just the root.
                async move {
                    storage
                        .check_writable_in("qr")
                        .await
                        .map_err(|e| e.to_string())
                }
            }
        })
        .start(handlers)?;
    // Temporary files of writers killed mid-write (a SIGKILLed replica) are
    // swept beside the work, until the service stops for whatever reason.
    let sweep = Sweep {
        older_than: config.storage_temp_max_age,
        ..Sweep::default()
    };
    let every = config.storage_sweep_interval;
    Ok(Started::new(started.addr(), move |shutdown| async move {
        let stopped = CancellationToken::new();
        let run = async {
            let result = started.run(shutdown).await;
            stopped.cancel();
            result
        };
        let sweeper = storage.sweep_temp_files_every(every, sweep, stopped.cancelled());
        tokio::join!(run, sweeper).0
    }))
}
