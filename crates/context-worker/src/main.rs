//! `context-worker`: condenses company contexts until SIGTERM or SIGINT.

fn main() -> std::process::ExitCode {
    service::main(
        "context-worker",
        context_worker::Config::from_vars,
        context_worker::run,
    )
}
