//! A binary run as a process of its own, so that a test can stop it with
//! SIGTERM or kill it with SIGKILL as a machine or an orchestrator would, or
//! see it refuse a bad configuration as [`crate::main`] promises.

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use queue_core::testing::{PATIENCE, eventually};

use crate::EXIT_BAD_CONFIG;

/// Runs `program` with exactly `vars` as its environment until it exits.
pub fn run(program: &str, vars: &[(&str, &str)]) -> Output {
    std::process::Command::new(program)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Runs the binary `program` (`env!("CARGO_BIN_EXE_<name>")`) with exactly
/// `vars` and a health port the system picks, and checks that it refuses its
/// configuration as [`crate::main`] does: status 64 and one line on stderr,
/// `<name>: invalid configuration: <var>: ...` containing `rule` and not
/// `secret`.
pub fn assert_config_refused(
    program: &str,
    vars: &[(&str, &str)],
    var: &str,
    rule: &str,
    secret: &str,
) {
    let name = Path::new(program)
        .file_name()
        .expect("a binary's path")
        .to_string_lossy();
    let mut env = vars.to_vec();
    env.push(("HEALTH_ADDR", "127.0.0.1:0"));
    let out = run(program, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(EXIT_BAD_CONFIG)),
        "{var}: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("{name}: invalid configuration: {var}: "))
            && stderr.contains(rule),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");
}

/// A binary running with exactly the given environment; its stdout (JSON log
/// lines) and stderr are collected line by line. Killed if dropped running.
pub struct Process {
    pub name: &'static str,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `program` with exactly `vars` as its environment.
    pub fn start(name: &'static str, program: &Path, vars: &[(&str, &str)]) -> Self {
        Self::start_with(name, program, &[], vars)
    }

    /// Starts `program` with `args` and exactly `vars` as its environment.
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

    /// Whether it wrote a panic message to stderr.
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
