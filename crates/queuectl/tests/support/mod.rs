//! Test helpers: a fresh key prefix on the real Redis, jobs and dead letters made
//! with queue-core itself, and a runner for the built `queuectl` binary.

use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use queue_core::worker::worker;
use queue_core::{
    Admin, Broker, BrokerConfig, CancellationToken, Job, JobError, NewJob, Producer, Queue,
    QueueStats, WorkerConfig,
};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

/// One test's corner of Redis: its own prefix, removed when dropped (even on panic).
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    pub broker: Broker,
    rt: Runtime,
    workers: Mutex<Vec<(CancellationToken, JoinHandle<queue_core::Result<()>>)>>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "queuectl failed: {self:#?}");
        &self.stdout
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl TestRedis {
    pub fn new() -> Self {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        // The tail of a UUIDv7 is random (its head is the clock, shared by parallel tests).
        let id = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("qctl-{}", &id[id.len() - 12..]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let broker = rt
            .block_on(Broker::connect(
                BrokerConfig::new(url.clone()).prefix(prefix.clone()),
            ))
            .expect("tests need Redis at REDIS_URL or redis://127.0.0.1:6379");
        Self {
            url,
            prefix,
            broker,
            rt,
            workers: Mutex::new(Vec::new()),
        }
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.broker.clone())
    }

    pub fn queue(&self, name: &str) -> Queue {
        self.broker.queue(name).expect("valid queue name")
    }

    /// Runs `queuectl` against this test's Redis and prefix.
    pub fn queuectl(&self, args: &[&str]) -> Run {
        run_queuectl(&["--redis-url", &self.url, "--prefix", &self.prefix], args)
    }

    /// Enqueues `n` jobs of kind `test.job` to run now; returns their ids.
    pub fn enqueue(&self, queue: &str, n: usize) -> Vec<String> {
        let q = self.queue(queue);
        let jobs = (0..n).map(|i| NewJob::new("test.job", format!("job-{i}").into_bytes()));
        let done = self
            .block_on(Producer::new(self.broker.clone()).enqueue_many(&q, jobs))
            .expect("enqueue");
        done.iter().map(|e| e.id().to_owned()).collect()
    }

    pub fn enqueue_job(&self, queue: &str, job: NewJob) -> String {
        let q = self.queue(queue);
        self.block_on(Producer::new(self.broker.clone()).enqueue(&q, job))
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Stats straight from the library, to check what the binary did.
    pub fn stats(&self, queue: &str) -> QueueStats {
        self.block_on(self.admin().stats(&self.queue(queue)))
            .expect("stats")
    }

    /// Runs every waiting job of `queue` through a worker whose handler fails
    /// permanently, until the queue holds `expected` dead letters.
    pub fn dead_letter_all(&self, queue: &str, expected: u64) {
        self.start_worker(queue, "qctl-failing", |job: Job| async move {
            Err(JobError::permanent(anyhow::anyhow!(
                "boom: {} job {} rejected\nsecond line of the error",
                job.kind(),
                job.id()
            )))
        });
        self.wait_until("jobs to be dead-lettered", || {
            self.stats(queue).failed >= expected
        });
        self.stop_workers();
        assert_eq!(self.stats(queue).failed, expected);
    }

    /// Starts a fast-polling worker; it runs until [`TestRedis::stop_workers`] or
    /// the end of the test.
    pub fn start_worker<H: queue_core::Handler>(&self, queue: &str, consumer: &str, handler: H) {
        let config = WorkerConfig {
            consumer: Some(consumer.to_owned()),
            block: Duration::from_millis(50),
            pause_poll: Duration::from_millis(20),
            promote_interval: Duration::from_millis(50),
            grace_period: Duration::from_millis(200),
            ..WorkerConfig::default()
        };
        let w = worker(&self.broker, &self.queue(queue), config, handler).expect("worker");
        let token = CancellationToken::new();
        let handle = self.rt.spawn(w.run(token.clone()));
        self.workers
            .lock()
            .expect("workers lock")
            .push((token, handle));
    }

    /// Stops every worker started by this test and waits until they have stopped.
    pub fn stop_workers(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        for (token, _) in &workers {
            token.cancel();
        }
        for (_, handle) in workers {
            self.block_on(handle)
                .expect("worker task")
                .expect("worker run");
        }
    }

    /// Polls `cond` until it holds, failing the test after a deadline.
    #[track_caller]
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for (token, _) in &workers {
            token.cancel();
        }
        let admin = self.admin();
        let cleaned = self.rt.block_on(async {
            for (_, handle) in workers {
                let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
            }
            for queue in admin.queues().await? {
                admin.destroy(&queue).await?;
            }
            Ok::<_, queue_core::Error>(())
        });
        if let Err(e) = cleaned {
            eprintln!("cleanup of prefix {} failed: {e}", self.prefix);
        }
    }
}

/// Runs the built binary with `global` then `args`, ignoring the caller's environment.
pub fn run_queuectl(global: &[&str], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_queuectl"))
        .args(global)
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("RSQ_PREFIX")
        .output()
        .expect("run queuectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The row of a table whose first cell is `first`, as header -> cell.
/// Headers are single words, so splitting on whitespace is exact.
#[track_caller]
pub fn row(table: &str, first: &str) -> HashMap<String, String> {
    let mut lines = table
        .lines()
        .skip_while(|l| !l.starts_with("QUEUE") && !l.starts_with("CONSUMER"));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("no table header in:\n{table}"))
        .split_whitespace()
        .collect();
    let cells: Vec<&str> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"));
    assert_eq!(cells.len(), header.len(), "ragged row in:\n{table}");
    header
        .into_iter()
        .map(str::to_owned)
        .zip(cells.into_iter().map(str::to_owned))
        .collect()
}
