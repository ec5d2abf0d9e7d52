use std::process::ExitCode;

use api_gateway::{Config, MigrateConfig};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => service::main("api-gateway", Config::from_vars, api_gateway::run),
        // Apply the database migrations and exit (scripts, CI, a Kubernetes init
        // container): needs only DATABASE_URL. `api-gateway` alone also applies them.
        Some("migrate") => service::main(
            "api-gateway",
            MigrateConfig::from_vars,
            api_gateway::migrate,
        ),
        // A container's HEALTHCHECK: GETs /readyz on HEALTH_ADDR (see service::main).
        Some(service::healthcheck::COMMAND) => service::healthcheck::run(
            "api-gateway",
            &service::Env,
            std::env::args().nth(2).as_deref(),
        ),
        Some(other) => {
            eprintln!(
                "api-gateway: unknown command {other:?}; usage: api-gateway [migrate | healthcheck [IP:PORT[/PATH]]]"
            );
            ExitCode::from(service::EXIT_BAD_CONFIG)
        }
    }
}
