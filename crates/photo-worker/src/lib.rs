#![doc = include_str!("../README.md")]

pub mod budget;
pub mod config;
pub mod fetch;
pub mod handler;
pub mod imaging;
pub mod reconcile;
#[cfg(feature = "testing")]
pub mod testing;

use anyhow::Context;
use bib_detect::{Detector, DetectorConfig};

use queue_core::CancellationToken;
use service::rows::RowHandler;
use service::{Started, WorkerService};
use storage::Storage;

pub use crate::config::Config;
pub use crate::fetch::{AllowedHosts, FetchError, FetchPolicy, Fetcher};
pub use crate::handler::{PhotoHandler, PhotoOptions};
pub use crate::imaging::{ImageLimits, PhotoFormat};
pub use crate::reconcile::Reconciler;

/// Runs the photo worker until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config).await?.run(shutdown).await
}

/// Checks that the OCR engine loads, connects to Redis and PostgreSQL (running
/// the migrations) and binds the health port; the returned service processes
/// `photo.process` jobs once run, reconciles photos left without a job
/// (`photo.reconcile`, a repeating job), and sweeps the storage for stale
/// temporary files at start and periodically.
pub async fn start(config: Config) -> anyhow::Result<Started> {
    let detector = Detector::new(DetectorConfig {
        min_confidence: config.min_confidence,
        ..DetectorConfig::default()
    })
    .context("starting the bib detector")?;
    let storage = Storage::local(&config.storage.dir);
    let options = PhotoOptions {
        limits: config.limits,
        thumbnail_size: config.thumbnail_size,
        memory_budget: config.memory_budget,
        max_candidates: config.max_candidates,
        concurrency: config.worker.concurrency.get(),
        job_timeout: config.worker.job_timeout,
    };
    // `thumbs`: where the worker writes (the gateway writes the originals).
    let mut svc = WorkerService::connect(&config.base, &jobs::PHOTOS, config.worker)
        .await?
        .storage(storage.clone(), "thumbs", &config.storage)
        .await;
    let handler = PhotoHandler::new(
        svc.pool().clone(),
        storage,
        detector,
        Fetcher::new(config.fetch.clone()),
        options,
    );
    let handlers = svc
        .handlers()
        .on(RowHandler(handler))
        .on(svc.reconciler(config.reconcile, reconcile::UnsettledPhotos));
    svc.start(handlers)
}
