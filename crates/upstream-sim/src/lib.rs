#![doc = include_str!("../README.md")]

pub mod bank;
pub mod config;
mod faults;
pub mod llm;
mod rng;
pub mod wispro;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::bank::{BankConfig, BankControl, BankKnobs, BankStats, Cancelled, Qr, QrStatus};
pub use crate::faults::{Faults, HANG_FOR};
pub use crate::llm::{
    AnswerMode, LlmConfig, LlmControl, LlmKnobs, LlmStats, REFUSAL, RouteStats, condense,
};
pub use crate::wispro::{ErrorMode, WisproConfig, WisproControl, WisproKnobs, WisproStats};

use crate::rng::SplitMix64;

/// Everything the three simulators start with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; [`SimConfig::default`] binds `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// Seed of the dice that decide which requests an error rate fails.
    pub seed: u64,
    pub llm: LlmConfig,
    pub wispro: WisproConfig,
    pub bank: BankConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 1,
            llm: LlmConfig::default(),
            wispro: WisproConfig::default(),
            bank: BankConfig::default(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    llm: LlmControl,
    wispro: WisproControl,
    bank: BankControl,
    rng: Mutex<SplitMix64>,
    shutdown: CancellationToken,
}

/// What every handler reaches: the three simulators' handles, the dice and the
/// shutdown token that ends hung requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimState(Arc<Shared>);

impl SimState {
    /// The simulators of `config`; their sleeps end when `shutdown` is cancelled.
    pub fn new(config: SimConfig, shutdown: CancellationToken) -> Self {
        Self(Arc::new(Shared {
            llm: LlmControl::new(config.llm),
            wispro: WisproControl::new(config.wispro),
            bank: BankControl::new(config.bank),
            rng: Mutex::new(SplitMix64::new(config.seed)),
            shutdown,
        }))
    }

    pub fn llm(&self) -> &LlmControl {
        &self.0.llm
    }

    pub fn wispro(&self) -> &WisproControl {
        &self.0.wispro
    }

    pub fn bank(&self) -> &BankControl {
        &self.0.bank
    }

    pub(crate) fn rng(&self) -> &Mutex<SplitMix64> {
        &self.0.rng
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }
}

/// Every route of the three simulators, their `/_sim` controls and
/// `/healthz`. Testable with `oneshot`.
pub fn router(state: SimState) -> Router {
    Router::new()
        .merge(llm::router())
        .merge(llm::control_router())
        .merge(wispro::router())
        .merge(wispro::control_router())
        .merge(bank::router())
        .merge(bank::control_router())
        .route("/healthz", get(healthz))
        .route("/_sim/healthz", get(healthz))
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "path", "no such route") })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// One debug line per request: method, path (no query: it may carry data) and status.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// `{"error": "invalid_request", "message": ..., "field": ...}`: a 4xx naming the field.
pub(crate) fn error_body(status: StatusCode, field: &str, message: &str) -> Response {
    let error = if status == StatusCode::NOT_FOUND {
        "not_found"
    } else {
        "invalid_request"
    };
    let body = json!({"error": error, "message": format!("{field}: {message}"), "field": field});
    (status, Json(body)).into_response()
}

/// 400 for a knob change the simulator refuses; `message` names the knob.
pub(crate) fn bad_knobs(message: String) -> Response {
    let body = json!({"error": "invalid_knobs", "message": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The simulators serving on a port, for a test: knobs and counters through
/// [`Sim::llm`], [`Sim::wispro`], [`Sim::bank`]; stopped by [`Sim::stop`] or
/// when dropped.
#[derive(Debug)]
pub struct Sim {
    addr: SocketAddr,
    state: SimState,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _stop_on_drop: DropGuard,
}

impl Sim {
    /// Binds `config.addr` (`127.0.0.1:0` by default) and serves in the background.
    pub async fn start(config: SimConfig) -> anyhow::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Self::start_on(listener, config)
    }

    /// Serves on `listener` in the background (`config.addr` is ignored).
    pub fn start_on(listener: tokio::net::TcpListener, config: SimConfig) -> anyhow::Result<Sim> {
        let addr = listener.local_addr().context("reading the bound address")?;
        let shutdown = CancellationToken::new();
        let state = SimState::new(config, shutdown.clone());
        let app = router(state.clone());
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
                .context("upstream-sim server")
        });
        tracing::debug!(%addr, "upstream-sim started");
        Ok(Sim {
            addr,
            state,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the base URL of all three APIs.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn llm(&self) -> &LlmControl {
        self.state.llm()
    }

    pub fn wispro(&self) -> &WisproControl {
        self.state.wispro()
    }

    pub fn bank(&self) -> &BankControl {
        self.state.bank()
    }

    /// Ends hung and slow requests, stops serving and waits (at most five
    /// seconds) for the server to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let mut task = self.task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = format!("{e:#}"), "upstream-sim stopped on an error")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "upstream-sim task failed"),
            Err(_) => {
                tracing::warn!("upstream-sim did not stop within 5s; aborting it");
                task.abort();
            }
        }
    }
}

/// The binary's body: binds `config.addr` and serves every simulator until `shutdown`.
pub async fn run(config: SimConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr = config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding SIM_ADDR {addr}"))?;
    let state = SimState::new(config, shutdown.clone());
    let info = state.wispro().dataset_info();
    tracing::info!(
        addr = %listener.local_addr().unwrap_or(addr),
        wispro.clients = info.size,
        wispro.seed = info.seed,
        "upstream-sim listening"
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("upstream-sim server")
}
