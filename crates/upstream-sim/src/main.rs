//! `upstream-sim`: serves the LLM, Wispro and bank simulators until SIGTERM or
//! SIGINT (see the crate docs).

fn main() -> std::process::ExitCode {
    service::main(
        "upstream-sim",
        upstream_sim::config::from_vars,
        upstream_sim::run,
    )
}
