//! The wiring every queue worker shares: connect Redis and PostgreSQL, bind the
//! health port, then run the queue worker and the health server together until
//! shutdown, draining running jobs within the grace period.
//!
//! Connecting and binding happen in [`WorkerService::connect`], before any job
//! is read, so a worker's own setup can use the pool and the broker to build its
//! handler, and a test can learn the bound health port before it runs. A
//! worker's wiring is then its handlers and its reconciler
//! ([`WorkerService::reconciler`], one call).

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};

use jobs::QueueSpec;
use queue_core::{Broker, CancellationToken, Handler, Queue, RepeatingJob, WorkerConfig};
use storage::{Storage, Sweep};
use store::{PgPool, StoreConfig};
use telemetry::Readiness;

use crate::Started;
use crate::config::{BaseConfig, ReconcileConfig, StorageConfig};
use crate::reconcile::{Pending, Reconciler};

/// A worker connected to Redis and PostgreSQL (migrations applied) with its
/// health port bound, not yet reading jobs.
pub struct WorkerService {
    spec: &'static QueueSpec,
    config: WorkerConfig,
    broker: Broker,
    queue: Queue,
    pool: PgPool,
    listener: TcpListener,
    health_addr: SocketAddr,
    readiness: Readiness,
    /// Declared when the worker starts; an error (a reconciler's interval out
    /// of range) is reported then.
    repeating: Vec<anyhow::Result<RepeatingJob>>,
    /// The storage swept of temporary files while the service runs, how, and how often.
    sweeper: Option<(Storage, Sweep, std::time::Duration)>,
}

impl std::fmt::Debug for WorkerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerService")
            .field("queue", &self.spec.name)
            .field("health_addr", &self.health_addr)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl WorkerService {
    /// Checks `config`, connects to Redis and PostgreSQL (a pool of one
    /// connection per running job plus two, migrations applied) and binds
    /// `base.health_addr`. Errors say what failed, with passwords masked.
    pub async fn connect(
        base: &BaseConfig,
        spec: &'static QueueSpec,
        config: WorkerConfig,
    ) -> anyhow::Result<Self> {
        config
            .validate()
            .with_context(|| format!("the {} worker settings", spec.name))?;
        let broker = Broker::connect(base.broker_config())
            .await
            .with_context(|| format!("connecting to Redis at {}", base.redis_url))?;
        let store_config = StoreConfig {
            // One per running job, plus room for the readiness probe and the
            // worker's own bookkeeping.
            max_connections: u32::try_from(config.concurrency.get().saturating_add(2))
                .unwrap_or(u32::MAX),
            ..StoreConfig::new(base.database_url.expose())
        };
        let pool = store::connect(&store_config)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", base.database_url))?;
        let queue = spec
            .open(&broker)
            .with_context(|| format!("opening the {} queue", spec.name))?;
        let listener = TcpListener::bind(base.health_addr)
            .await
            .with_context(|| format!("binding the health port {}", base.health_addr))?;
        let health_addr = listener
            .local_addr()
            .context("reading the health address")?;
        let readiness = Readiness::new()
            .check("redis", {
                let broker = broker.clone();
                move || {
                    let broker = broker.clone();
                    async move { broker.ping().await.map_err(|e| e.to_string()) }
                }
            })
            .check("postgres", {
                let pool = pool.clone();
                move || {
                    let pool = pool.clone();
                    async move { store::ping(&pool).await.map_err(|e| e.to_string()) }
                }
            });
        Ok(Self {
            spec,
            config,
            broker,
            queue,
            pool,
            listener,
            health_addr,
            readiness,
            repeating: Vec::new(),
            sweeper: None,
        })
    }

    /// The PostgreSQL pool, for the worker's handler.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The broker (key prefix applied), for handlers that enqueue follow-up jobs.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The queue this worker consumes.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Where `/healthz`, `/readyz` and `/metrics` answer (the bound port when
    /// the configured one was 0).
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Adds a check to `/readyz` besides `redis` and `postgres`, e.g. a
    /// writable storage directory. Each check must answer within 2 s.
    pub fn readiness_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness = self.readiness.check(name, check);
        self
    }

    /// Declares a job this worker enqueues once per period on its queue (a
    /// daily cleanup), however many replicas run. A reconciler's is declared
    /// by [`WorkerService::reconciler`].
    pub fn repeat(mut self, job: RepeatingJob) -> Self {
        self.repeating.push(Ok(job));
        self
    }

    /// The reconciler of `rows` (see [`crate::reconcile`]) on this worker's
    /// queue, database and broker, to register with [`jobs::Handlers::on`]; its
    /// repeating job, every `config.interval`, is declared on this worker. The
    /// interval was checked when the config was read
    /// ([`crate::config::reconcile_config`]); one built by hand out of range
    /// makes [`WorkerService::start`] fail.
    #[must_use = "the reconciler runs only once registered with `Handlers::on`"]
    pub fn reconciler<P: Pending>(&mut self, config: ReconcileConfig, rows: P) -> Reconciler<P> {
        let reconciler = Reconciler::of(self, config, rows);
        self.repeating.push(
            reconciler
                .repeating_job()
                .with_context(|| format!("the {} interval", Reconciler::<P>::name())),
        );
        reconciler
    }

    /// Where this worker writes generated files: `/readyz` checks that `dir`
    /// (e.g. `qr`, where the gateway's paths point) can be written, and the
    /// temporary files of writers killed mid-write (a SIGKILLed replica) are
    /// swept at start and every `config.sweep_interval` while the service runs.
    /// A storage not writable now is logged, not fatal: the volume may be
    /// mounted later, and `/readyz` says so meanwhile.
    pub async fn storage(
        mut self,
        storage: Storage,
        dir: &'static str,
        config: &StorageConfig,
    ) -> Self {
        if let Err(e) = storage.check_writable().await {
            warn!(storage.dir = %config.dir.display(), error = %e, "the storage directory is not writable");
        }
        self = self.readiness_check("storage", {
            let storage = storage.clone();
            move || {
                let storage = storage.clone();
                async move {
                    storage
                        .check_writable_in(dir)
                        .await
                        .map_err(|e| e.to_string())
                }
            }
        });
        let sweep = Sweep {
            older_than: config.temp_max_age,
            ..Sweep::default()
        };
        self.sweeper = Some((storage, sweep, config.sweep_interval));
        self
    }

    /// An empty set of typed handlers for this worker's queue, to fill with
    /// [`jobs::Handlers::on`] and pass to [`WorkerService::start`].
    pub fn handlers(&self) -> jobs::Handlers {
        jobs::Handlers::new(self.spec)
    }

    /// Creates the queue worker with `handler`; [`Started::run`] then consumes
    /// jobs and serves the health port until shutdown.
    pub fn start<H: Handler>(self, handler: H) -> anyhow::Result<Started> {
        let spec = self.spec;
        let (admin, queue) = (
            queue_core::Admin::new(self.broker.clone()).with_group(self.config.group.clone()),
            self.queue.clone(),
        );
        let mut worker =
            queue_core::worker::worker(&self.broker, &self.queue, self.config, handler)
                .with_context(|| format!("creating the {} worker", spec.name))?;
        for job in self.repeating {
            worker = job
                .and_then(|job| Ok(worker.repeat(job)?))
                .with_context(|| format!("declaring the {} worker's repeating jobs", spec.name))?;
        }
        let (listener, readiness, sweeper, pool) =
            (self.listener, self.readiness, self.sweeper, self.pool);
        let health_addr = self.health_addr;
        Ok(Started::new(health_addr, move |shutdown| async move {
            // The queue worker logs its own start and stop.
            info!(queue.name = spec.name, health.addr = %health_addr, "serving /healthz, /readyz and /metrics");
            let stopped = CancellationToken::new();
            let work = async {
                let result = run(worker, listener, readiness, shutdown).await;
                stopped.cancel();
                result
            };
            // The sweep runs beside the work until the service stops, for whatever reason.
            let sweep = async {
                if let Some((storage, sweep, every)) = sweeper {
                    storage
                        .sweep_temp_files_every(every, sweep, stopped.cancelled())
                        .await;
                }
            };
            // So do the queue's gauges.
            let gauges =
                crate::gauges::export(admin, queue, crate::gauges::EVERY, stopped.cancelled());
            let (result, (), ()) = tokio::join!(work, sweep, gauges);
            pool.close().await;
            result
        }))
    }
}

/// Runs the queue worker and the health server; whichever stops first (on
/// shutdown or on an error) stops the other.
async fn run<H: Handler>(
    worker: queue_core::Worker<H>,
    listener: TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let server = {
        let stop = stop.clone();
        let router = telemetry::health_router(readiness);
        async move {
            let result = telemetry::serve_on(listener, router, stop.clone()).await;
            stop.cancel();
            result
        }
    };
    let worker = {
        let stop = stop.clone();
        async move {
            // Stops reading, then lets running jobs finish within the grace period.
            let result = worker.run(stop.clone()).await;
            stop.cancel();
            result
        }
    };
    let (worker, server) = tokio::join!(Box::pin(worker), server);
    worker.context("queue worker")?;
    server.context("health server")?;
    Ok(())
}
