//! `photo-worker`: finds bib numbers on race photos until SIGTERM or SIGINT (see the crate docs).

fn main() -> std::process::ExitCode {
    service::main(
        "photo-worker",
        photo_worker::Config::from_vars,
        photo_worker::run,
    )
}
