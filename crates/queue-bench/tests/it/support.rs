//! Starts the real `queue-bench worker` binary, so tests can kill it with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use queue_core::testing::{PATIENCE, redis_url};

/// A `queue-bench worker` process (the real binary, killed with SIGKILL by tests).
pub struct WorkerProcess {
    child: Child,
    pub consumer: String,
}

impl WorkerProcess {
    /// Starts a worker process on `queue` under `prefix` and waits until it says
    /// `ready consumer=NAME`.
    pub async fn spawn(prefix: &str, queue: &str, args: &[&str]) -> Self {
        Self::spawn_on(&redis_url(), &[], prefix, queue, args).await
    }

    /// [`WorkerProcess::spawn`] on the Redis at `url`, with `env` added to the
    /// environment.
    pub async fn spawn_on(
        url: &str,
        env: &[(&str, &str)],
        prefix: &str,
        queue: &str,
        args: &[&str],
    ) -> Self {
        let mut child = worker_command(url, prefix, queue)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting queue-bench worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A blocking read of the first line, off the runtime's threads.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut process = Self {
            child,
            consumer: String::new(),
        };
        let line = tokio::time::timeout(PATIENCE, rx)
            .await
            .expect("the worker process prints its ready line in time")
            .expect("the reader thread answers");
        process.consumer = line
            .trim()
            .strip_prefix("ready consumer=")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        process
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the worker process");
        self.child.wait().expect("reap the worker process");
    }
}

/// The `queue-bench worker` command on `queue` of the Redis at `url`.
pub fn worker_command(url: &str, prefix: &str, queue: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_queue-bench"));
    command
        .arg("worker")
        .args(["--redis-url", url, "--prefix", prefix, "--queue", queue]);
    command
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
