//! `payment-scheduler`: checks QR payments at the bank until SIGTERM or SIGINT.

fn main() -> std::process::ExitCode {
    service::main(
        "payment-scheduler",
        payment_scheduler::Config::from_vars,
        payment_scheduler::run,
    )
}
