#![doc = include_str!("../README.md")]

pub mod actions;
pub mod audit;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod enqueue;
pub mod error;
pub mod json;
pub mod middleware;
pub mod openapi;
pub mod paging;
pub mod params;
pub mod routes;
pub mod signature;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use queue_core::{Admin, Broker, CancellationToken};
use storage::Storage;
use store::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use config::{Config, MigrateConfig, MigrateRedis, QrFormat, Secret, SecretUrl};
pub use enqueue::Enqueuer;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub broker: Broker,
    /// Every enqueue that follows a commit goes through it, to the queue of
    /// the job's kind: a deadline, and a breaker that skips enqueues while
    /// Redis keeps failing.
    pub enqueuer: Enqueuer,
    /// One permit per multipart upload being read (`PHOTO_MAX_CONCURRENT_UPLOADS`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    pub admin: Admin,
    /// The bank that creates payment QRs.
    pub bank: Arc<dyn payments::Bank>,
    pub storage: Storage,
    /// Verified keys (cached briefly), `last_used_at` writes, failures per address.
    pub keyring: Arc<auth::Keyring>,
}

impl AppState {
    /// A connection of the pool (none to be had is a 500, logged).
    pub async fn conn(
        &self,
    ) -> Result<impl std::ops::DerefMut<Target = store::PgConnection>, error::ApiError> {
        Ok(self.pool.acquire().await.map_err(store::StoreError::from)?)
    }
}

/// The API: every route group merged, with the body limit, the request timeout
/// and error logging; without health and metrics. Testable with `oneshot`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes.get();
    let request_timeout = state.config.request_timeout;
    Router::new()
        .merge(routes::persons::router())
        .merge(routes::companies::router())
        .merge(routes::queues::router())
        .merge(routes::jobs::router())
        .merge(routes::keys::router())
        .merge(routes::sync::router())
        .merge(routes::photos::router(&state.config))
        .merge(routes::payments::router())
        .merge(routes::lists::router())
        .merge(routes::docs::router())
        .merge(dashboard::router())
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(
                state.config.max_concurrent_requests.get(),
            )),
            middleware::limit_concurrency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            middleware::timeout,
        ))
        // Outermost, so it also sees the timeout's answer and the fallback's 404.
        .layer(axum::middleware::from_fn(middleware::log_errors))
        .with_state(state)
}

/// Adds request ids (generated unless the client sent `x-request-id`) and a span
/// per request that continues the caller's trace context; errors are logged inside
/// it by `router`'s middleware, not here.
pub fn with_http_layers(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<axum::body::Body>| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let span = tracing::info_span!(
                        "request",
                        http.method = %req.method(),
                        http.route = %req.uri().path(),
                        request.id = %request_id,
                    );
                    telemetry::continue_http_trace(&span, req.headers());
                    span
                })
                // `middleware::log_errors` logs each failure once, with its detail.
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn store_config(config: &Config) -> store::StoreConfig {
    store::StoreConfig {
        max_connections: config.database_max_connections.get(),
        ..store::StoreConfig::new(config.database_url.expose())
    }
}

/// `api-gateway migrate`: applies the database migrations that have not run yet
/// and, when `REDIS_URL` is set, creates every catalogue queue's streams and
/// consumer group (idempotent), so an autoscaler reading a group's lag finds it
/// before the queue's first worker starts (docs/operations.md, "Scale").
pub async fn migrate(config: MigrateConfig, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let store_config = store::StoreConfig {
        max_connections: 1,
        ..store::StoreConfig::new(config.database_url.expose())
    };
    let pool = store::connect(&store_config).await.with_context(|| {
        format!(
            "applying migrations to PostgreSQL at {}",
            config.database_url.redacted()
        )
    })?;
    pool.close().await;
    tracing::info!("migrations applied");
    if let Some(redis) = &config.redis {
        create_queue_groups(redis).await?;
    }
    Ok(())
}

async fn create_queue_groups(redis: &config::MigrateRedis) -> anyhow::Result<()> {
    let broker = Broker::connect(service::config::broker_config(
        &redis.url,
        redis.cluster,
        &redis.prefix,
    ))
    .await
    .with_context(|| format!("connecting to Redis at {}", redis.url.redacted()))?;
    let admin = Admin::new(broker.clone());
    for spec in jobs::CATALOGUE {
        let queue = spec.open(&broker)?;
        admin
            .create_groups(&queue)
            .await
            .with_context(|| format!("creating the consumer groups of queue {}", spec.name))?;
    }
    tracing::info!(
        queues = jobs::CATALOGUE.len(),
        "queue streams and consumer groups ready"
    );
    Ok(())
}

/// Connects to PostgreSQL (running migrations), Redis and storage.
pub async fn connect(config: Config) -> anyhow::Result<AppState> {
    let pool = store::connect(&store_config(&config))
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                config.database_url.redacted()
            )
        })?;
    let broker = Broker::connect(service::config::broker_config(
        &config.redis_url,
        config.redis_cluster,
        &config.redis_prefix,
    ))
    .await
    .with_context(|| format!("connecting to Redis at {}", config.redis_url.redacted()))?;
    let enqueuer = Enqueuer::new(broker.clone(), config.enqueue)?;
    let bank = payments::connect(&config.payments.bank).context("building the bank client")?;
    Ok(AppState {
        pool,
        enqueuer,
        uploads: Arc::new(tokio::sync::Semaphore::new(
            config.photos.max_concurrent_uploads.get(),
        )),
        admin: Admin::new(broker.clone()),
        broker,
        bank,
        storage: Storage::local(&config.storage_dir),
        keyring: Arc::new(auth::Keyring::new(config.auth.clone())),
        config: Arc::new(config),
    })
}

/// The public API with its layers, and a bare `/healthz` (the process is up)
/// for load balancers that probe the port they send traffic to. Readiness with
/// its dependencies' details and the metrics are on the health port
/// ([`health_app`]), never here.
pub fn app(state: AppState) -> Router {
    let alive = axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) });
    with_http_layers(router(state).route("/healthz", alive))
}

/// `HEALTH_ADDR`: `/healthz`, `/readyz` (Redis, PostgreSQL and the enqueue
/// breaker, each `ok` or its error) and `/metrics`, as every worker serves them.
pub fn health_app(state: &AppState) -> Router {
    let broker = state.broker.clone();
    let pool = state.pool.clone();
    let enqueuer = state.enqueuer.clone();
    let readiness = telemetry::Readiness::new()
        .check("redis", move || {
            let broker = broker.clone();
            async move { broker.ping().await.map_err(|e| e.to_string()) }
        })
        .check("postgres", move || {
            let pool = pool.clone();
            async move { store::ping(&pool).await.map_err(|e| e.to_string()) }
        })
        .check("enqueue", move || {
            let state = enqueuer.breaker().status();
            async move {
                use enqueue::BreakerState;
                match state {
                    BreakerState::Closed => Ok(()),
                    BreakerState::Open {
                        consecutive_failures,
                        retry_in,
                        last_error,
                    } => Err(format!(
                        "circuit open after {consecutive_failures} consecutive failures \
                         ({last_error}); requests skip the enqueue and the reconcilers \
                         carry their rows; next try in {:.1}s",
                        retry_in.as_secs_f64()
                    )),
                    BreakerState::HalfOpen { last_error } => Err(format!(
                        "circuit half-open after {last_error}; the next enqueue probes Redis"
                    )),
                }
            }
        });
    telemetry::health_router(readiness)
}

/// Serves the API on `api` and health on `health` until `shutdown`, then
/// drains open requests.
pub async fn run_on(
    api: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = api.local_addr()?;
    let health_addr = health.local_addr()?;
    tracing::info!(%addr, %health_addr, "api-gateway listening");
    let health_router = health_app(&state);
    // Either server ending (an error) stops the other.
    let stop = shutdown.child_token();
    let serve = |listener, router, stop: CancellationToken| async move {
        let served = telemetry::serve_on(listener, router, stop.clone()).await;
        stop.cancel();
        served
    };
    let (served, health_served) = tokio::join!(
        serve(api, app(state), stop.clone()),
        serve(health, health_router, stop),
    );
    served.and(health_served.context("health server"))
}

/// Binds `API_ADDR` and `HEALTH_ADDR` and serves until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (addr, health_addr) = (config.api_addr, config.health_addr);
    let state = connect(config).await?;
    let api = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding API_ADDR {addr}"))?;
    let health = tokio::net::TcpListener::bind(health_addr)
        .await
        .with_context(|| format!("binding HEALTH_ADDR {health_addr}"))?;
    run_on(api, health, state, shutdown).await
}
