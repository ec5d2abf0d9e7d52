#![doc = include_str!("../README.md")]

pub mod config;
pub mod handler;
pub mod render;

use std::net::SocketAddr;

use anyhow::Context;
use queue_core::broker::redact_url;
use queue_core::{Broker, BrokerConfig, CancellationToken, Worker};
use storage::Storage;
use store::{PgPool, StoreConfig};
use telemetry::Readiness;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use crate::config::{Config, ConfigError};
pub use crate::handler::QrHandler;
pub use crate::render::{EccLevel, Format, RenderOptions};

/// Runs the QR worker until `shutdown` is cancelled: what `main` calls.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    QrWorker::start(config).await?.run(shutdown).await
}

/// A started worker: connected, migrated, health port bound, not yet consuming.
pub struct QrWorker {
    worker: Worker<QrHandler>,
    listener: TcpListener,
    health_addr: SocketAddr,
    readiness: Readiness,
    pool: PgPool,
}

impl std::fmt::Debug for QrWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QrWorker")
            .field("consumer", &self.worker.consumer_name())
            .field("health_addr", &self.health_addr)
            .finish()
    }
}

impl QrWorker {
    /// Validates `config`, then connects to Redis and PostgreSQL (running the
    /// migrations) and binds the health port.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let broker =
            Broker::connect(BrokerConfig::new(&config.redis_url).prefix(&config.redis_prefix))
                .await
                .with_context(|| {
                    format!("connecting to Redis at {}", redact_url(&config.redis_url))
                })?;
        let store_config = StoreConfig {
            // One per running job, plus room for the readiness probe.
            max_connections: u32::try_from(config.worker.concurrency.get() + 2).unwrap_or(u32::MAX),
            ..StoreConfig::new(&config.database_url)
        };
        let pool = store::connect(&store_config).await.with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                redact_url(&config.database_url)
            )
        })?;
        let storage = Storage::local(&config.storage_dir);
        if let Err(e) = storage.check_writable().await {
            // Not fatal: the directory may be mounted later; /readyz says so meanwhile.
            warn!(storage.dir = %config.storage_dir.display(), error = %e, "the storage directory is not writable");
        }

        let queue = jobs::QR.open(&broker)?;
        let handler = QrHandler::new(pool.clone(), storage.clone(), config.qr);
        let concurrency = config.worker.concurrency;
        let worker = queue_core::worker::worker(&broker, &queue, config.worker, handler)?;

        let listener = TcpListener::bind(config.health_addr)
            .await
            .with_context(|| format!("binding the health port {}", config.health_addr))?;
        let health_addr = listener
            .local_addr()
            .context("reading the health address")?;
        let readiness = readiness(broker, pool.clone(), storage);
        info!(
            queue.name = queue.name(),
            consumer = worker.consumer_name(),
            concurrency = concurrency.get(),
            health.addr = %health_addr,
            storage.dir = %config.storage_dir.display(),
            "qr worker started"
        );
        Ok(Self {
            worker,
            listener,
            health_addr,
            readiness,
            pool,
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` answer (the bound port when the
    /// configured one was 0).
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Consumes `qr.generate` jobs and serves the health endpoints until `shutdown`;
    /// if either stops on its own, the other is stopped too.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stop = shutdown.child_token();
        let router = telemetry::health_router(self.readiness);
        let server = {
            let stop = stop.clone();
            async move {
                let result = telemetry::serve_on(self.listener, router, stop.clone()).await;
                stop.cancel();
                result
            }
        };
        let worker = {
            let stop = stop.clone();
            async move {
                let result = self.worker.run(stop.clone()).await;
                stop.cancel();
                result
            }
        };
        let (worker, server) = tokio::join!(Box::pin(worker), server);
        self.pool.close().await;
        worker.context("qr worker")?;
        server.context("health server")?;
        info!("qr worker stopped");
        Ok(())
    }
}

/// `/readyz`: Redis answers, PostgreSQL answers, the storage accepts a file.
fn readiness(broker: Broker, pool: PgPool, storage: Storage) -> Readiness {
    Readiness::new()
        .check("redis", move || {
            let broker = broker.clone();
            async move { broker.ping().await.map_err(|e| e.to_string()) }
        })
        .check("postgres", move || {
            let pool = pool.clone();
            async move { store::ping(&pool).await.map_err(|e| e.to_string()) }
        })
        .check("storage", move || {
            let storage = storage.clone();
            // The directory the gateway's paths point into, not just the root.
            async move {
                storage
                    .check_writable_in("qr")
                    .await
                    .map_err(|e| e.to_string())
            }
        })
}
