//! `sync-worker`: synchronises Wispro customers until SIGTERM or SIGINT.

fn main() -> std::process::ExitCode {
    service::main(
        "sync-worker",
        sync_worker::Config::from_vars,
        sync_worker::run,
    )
}
