use api_gateway::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("api-gateway: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let telemetry_config = match telemetry::TelemetryConfig::from_env("api-gateway") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("api-gateway: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let _guard = match telemetry::init(telemetry_config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("api-gateway: {e:#}");
            return std::process::ExitCode::from(64);
        }
    };
    // `api-gateway migrate`: apply the database migrations and exit (scripts, CI,
    // a Kubernetes init container); `api-gateway` alone also applies them at start.
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return match api_gateway::migrate(&config).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "migrations failed");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let shutdown = telemetry::shutdown_token();
    match api_gateway::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "api-gateway stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
