//! Binaries run as processes of their own, so that a test can stop them with
//! SIGTERM or kill them with SIGKILL: the real `api-gateway` binary
//! ([`service::testing::process::Process`]), and `qr-worker`'s `main` (see
//! [`qr_worker_process`]).

use std::path::Path;
use std::process::ExitCode;

use queue_core::testing::eventually;
pub use service::testing::process::Process;

use crate::helpers::{ADMIN_TOKEN, USER_TOKEN};

/// Set in the environment of this test binary when it runs as the qr-worker.
const AS_QR_WORKER: &str = "RSQ_IT_AS_QR_WORKER";

/// The qr-worker process of the tests that start one: this test binary run again with
/// [`AS_QR_WORKER`] set, doing exactly what `qr-worker`'s `main` does. Cargo
/// hands a test only its own package's executables (`CARGO_BIN_EXE_*`), and
/// building `qr-worker` from inside a test would wait on the build lock and
/// rebuild the shared crates with `-p qr-worker`'s features.
#[test]
#[ignore = "the qr-worker process that other tests start"]
fn qr_worker_process() {
    if std::env::var_os(AS_QR_WORKER).is_some() {
        let code = service::main("qr-worker", qr_worker::Config::from_vars, qr_worker::run);
        // `ExitCode` has no stable way out of a test function but its value.
        std::process::exit(if code == ExitCode::SUCCESS {
            0
        } else if code == ExitCode::from(service::EXIT_BAD_CONFIG) {
            i32::from(service::EXIT_BAD_CONFIG)
        } else {
            1
        });
    }
}

/// Starts [`qr_worker_process`] with exactly `vars` (its libtest lines on stdout
/// are not JSON, and [`Process::json_lines`] skips them).
pub fn start_qr_worker(vars: &[(&str, &str)]) -> Process {
    let me = std::env::current_exe().expect("the test binary's path");
    let args = [
        "--exact",
        "processes::qr_worker_process",
        "--ignored",
        "--nocapture",
    ];
    Process::start_with(
        "qr-worker",
        &me,
        &args,
        &[vars, &[(AS_QR_WORKER, "1")]].concat(),
    )
}

/// Starts the real `api-gateway` binary with `vars`, the ports picked by the
/// system and the tests' tokens.
pub fn start_gateway(vars: &[(&str, &str)]) -> Process {
    let own = [
        ("API_ADDR", "127.0.0.1:0"),
        ("HEALTH_ADDR", "127.0.0.1:0"),
        ("API_ADMIN_TOKEN", ADMIN_TOKEN),
        ("API_USER_TOKEN", USER_TOKEN),
    ];
    Process::start(
        "api-gateway",
        Path::new(env!("CARGO_BIN_EXE_api-gateway")),
        &[vars, &own].concat(),
    )
}

/// The API address `gateway` listens on, once its log says so.
pub async fn listening_addr(gateway: &Process) -> String {
    eventually("the gateway says where it listens", async || {
        let line = gateway.line("api-gateway listening")?;
        line["addr"].as_str().map(str::to_owned)
    })
    .await
}
