//! Binaries run as processes of their own, so that a test can stop them with
//! SIGTERM or kill them with SIGKILL: the real `api-gateway` binary, and
//! `qr-worker`'s `main` (see [`qr_worker_process`]).

use std::path::Path;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use queue_core::testing::{PATIENCE, eventually};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A binary running with exactly the given environment; its stdout (JSON log
/// lines) and stderr are collected line by line. Killed if dropped running.
pub struct Process {
    pub name: &'static str,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn start(name: &'static str, program: &Path, vars: &[(&str, &str)]) -> Self {
        Self::start_with(name, program, &[], vars)
    }

    pub fn start_with(
        name: &'static str,
        program: &Path,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Self {
            name,
            child,
            stdout,
            stderr,
        }
    }

    /// The log lines that parse as JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .expect("stdout lock")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The first JSON log line whose message is `message`.
    pub fn line(&self, message: &str) -> Option<Value> {
        self.json_lines()
            .into_iter()
            .find(|l| l["message"] == message)
    }

    /// What the process wrote, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.stdout.lock().expect("stdout lock").join("\n"),
            self.name,
            self.stderr.lock().expect("stderr lock").join("\n"),
        )
    }

    pub fn panicked(&self) -> bool {
        self.stderr
            .lock()
            .expect("stderr lock")
            .iter()
            .any(|l| l.contains("panicked"))
    }

    /// SIGKILL, then reaps it: no grace, no cleanup, as when a machine dies.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL the process");
    }

    /// SIGTERM, then waits for the graceful exit (which also flushes the traces).
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} exits after SIGTERM", self.name))
            .expect("wait");
        // The pipes close with the process; give the readers their last lines.
        eventually("the log readers see the end of output", async || {
            (Arc::strong_count(&self.stdout) == 1 && Arc::strong_count(&self.stderr) == 1)
                .then_some(())
        })
        .await;
        (status, self.output())
    }
}

fn collect(pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().expect("lines lock").push(line);
        }
    });
    lines
}

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
