//! `qr-worker`: renders QR codes until SIGTERM or SIGINT (see the crate docs).

fn main() -> std::process::ExitCode {
    service::main("qr-worker", qr_worker::Config::from_vars, qr_worker::run)
}
