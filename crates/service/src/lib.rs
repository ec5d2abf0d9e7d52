#![doc = include_str!("../README.md")]

pub mod config;
pub mod gauges;
pub mod healthcheck;
pub mod reconcile;
pub mod rows;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use queue_core::CancellationToken;

pub use crate::config::{BaseConfig, ConfigError, Env, Secret, SecretUrl, Vars, worker_config};
pub use crate::worker::WorkerService;

/// `EX_CONFIG`-style status for a configuration the operator must fix.
pub const EXIT_BAD_CONFIG: u8 = 64;

/// The whole `main` of a binary: reads its config with `from_vars` from the
/// environment before any runtime, socket or connection exists (a bad value
/// prints `NAME: invalid configuration: VAR: reason` and exits 64), then starts
/// the runtime and telemetry, makes the shutdown token (SIGTERM/SIGINT) and runs
/// `run(config, shutdown)`. An error is logged once and exits 1.
///
/// `NAME healthcheck [IP:PORT[/PATH]]` probes the running service's health
/// endpoint instead (`HEALTH_ADDR`'s `/readyz` by default) and exits 0 when it
/// answers 200: a container's `HEALTHCHECK` without curl (see [`healthcheck`]).
///
/// ```no_run
/// # mod qr_worker { pub struct Config; impl Config { pub fn from_vars(_: &dyn service::Vars) -> Result<Self, service::ConfigError> { Ok(Config) } }
/// # pub async fn run(_: Config, _: queue_core::CancellationToken) -> anyhow::Result<()> { Ok(()) } }
/// fn main() -> std::process::ExitCode {
///     service::main("qr-worker", qr_worker::Config::from_vars, qr_worker::run)
/// }
/// ```
pub fn main<C, Fut>(
    name: &str,
    from_vars: impl FnOnce(&dyn Vars) -> Result<C, ConfigError>,
    run: impl FnOnce(C, CancellationToken) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(healthcheck::COMMAND) {
        return healthcheck::run(name, &Env, args.next().as_deref());
    }
    // Everything is validated before a runtime, a connection or a port exists.
    let (config, telemetry_config) = match config::telemetry(&Env, name)
        .and_then(|telemetry| Ok((from_vars(&Env)?, telemetry)))
    {
        Ok(both) => both,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _guard = match telemetry::init(telemetry_config) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{name}: cannot start telemetry: {e:#}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        };
        let shutdown = telemetry::shutdown_token();
        match run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(
                    service = name,
                    error = format!("{e:#}"),
                    "stopped on an error"
                );
                ExitCode::FAILURE
            }
        }
    })
}

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A service whose connections are open and whose port is bound, ready to run:
/// what a binary's `start` returns, so a test can read the bound address
/// before running it.
pub struct Started {
    addr: SocketAddr,
    run: Box<dyn FnOnce(CancellationToken) -> RunFuture + Send>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// A service serving on `addr` that `run` runs until its token is cancelled.
    pub fn new<F, Fut>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            addr,
            run: Box::new(move |shutdown| Box::pin(run(shutdown))),
        }
    }

    /// The bound address (a worker's health port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until `shutdown` is cancelled, or an error stops it.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        (self.run)(shutdown).await
    }
}
