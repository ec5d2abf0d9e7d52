//! `qr-worker`: reads the config, starts telemetry and runs [`qr_worker::run`]
//! until SIGTERM or SIGINT.

use std::process::ExitCode;

use qr_worker::Config;
use telemetry::TelemetryConfig;

/// `EX_CONFIG`-style status for a configuration the operator must fix.
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    // Everything is validated before a runtime, a connection or a port exists.
    let (config, telemetry_config) =
        match (Config::from_env(), TelemetryConfig::from_env("qr-worker")) {
            (Ok(c), Ok(t)) => (c, t),
            (Err(e), _) => return bad_config(&e.to_string()),
            (_, Err(e)) => return bad_config(&format!("invalid configuration: {e}")),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qr-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _guard = match telemetry::init(telemetry_config) {
            Ok(guard) => guard,
            Err(e) => return bad_config(&format!("{e:#}")),
        };
        let shutdown = telemetry::shutdown_token();
        match qr_worker::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "qr worker failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn bad_config(message: &str) -> ExitCode {
    eprintln!("qr-worker: {message}");
    ExitCode::from(EXIT_BAD_CONFIG)
}
