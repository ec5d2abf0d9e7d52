//! What queuectl's tests add to `queue_core::testing`: a runtime for tests that
//! stay synchronous (they run the built binary and wait for it), the binary's
//! runner, and a parser for its tables. The key prefix, its cleanup, fast worker
//! settings, waiting and workers all come from `queue_core::testing`.

use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::Mutex;

use queue_core::testing::{RunningWorker, TestRedis, eventually, fast_worker_config, redis_url};
use queue_core::{Handler, Job, JobError, NewJob, Queue, QueueStats, Worker, WorkerConfig};
use store::testing::TestDb;
use tokio::runtime::Runtime;

/// One test's world: its own key prefix on the real Redis (`redis`), and a
/// runtime for the library calls that set up and check what the binary sees.
pub struct TestEnv {
    // Fields drop in this order: workers are cancelled, the runtime ends their
    // tasks, and only then does `redis` delete the prefix's keys, so no worker
    // writes after the cleanup.
    workers: Mutex<Vec<RunningWorker>>,
    rt: Runtime,
    pub redis: TestRedis,
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

impl TestEnv {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let redis = rt.block_on(TestRedis::new());
        Self {
            workers: Mutex::new(Vec::new()),
            rt,
            redis,
        }
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn queue(&self, name: &str) -> Queue {
        self.redis.broker.queue(name).expect("valid queue name")
    }

    /// Runs `queuectl` against this test's Redis and prefix.
    pub fn queuectl(&self, args: &[&str]) -> Run {
        run_queuectl(
            &["--redis-url", &redis_url(), "--prefix", &self.redis.prefix],
            args,
        )
    }

    /// A database of this test's own, dropped with it.
    pub fn database(&self) -> TestDb {
        self.block_on(TestDb::new())
    }

    /// Runs `queuectl` against this test's Redis and prefix and `db`.
    pub fn queuectl_db(&self, db: &TestDb, args: &[&str]) -> Run {
        run_queuectl(
            &[
                "--redis-url",
                &redis_url(),
                "--prefix",
                &self.redis.prefix,
                "--database-url",
                &db.url,
            ],
            args,
        )
    }

    /// Enqueues `n` jobs of kind `test.job` to run now; returns their ids.
    pub fn enqueue(&self, queue: &str, n: usize) -> Vec<String> {
        let jobs = (0..n).map(|i| NewJob::new("test.job", format!("job-{i}").into_bytes()));
        let done = self
            .block_on(self.redis.producer.enqueue_many(&self.queue(queue), jobs))
            .expect("enqueue");
        done.iter().map(|e| e.id().to_owned()).collect()
    }

    pub fn enqueue_job(&self, queue: &str, job: NewJob) -> String {
        self.block_on(self.redis.producer.enqueue(&self.queue(queue), job))
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Stats straight from the library, to check what the binary did.
    pub fn stats(&self, queue: &str) -> QueueStats {
        self.block_on(self.redis.stats(&self.queue(queue)))
    }

    /// Polls the library's stats of `queue` until `done` holds.
    pub fn wait_until(&self, queue: &str, what: &str, done: impl Fn(&QueueStats) -> bool) {
        let q = self.queue(queue);
        self.block_on(eventually(what, async || {
            done(&self.redis.stats(&q).await).then_some(())
        }));
    }

    /// Runs every waiting job of `queue` through a worker whose handler fails
    /// permanently, until the queue holds `expected` dead letters.
    pub fn dead_letter_all(&self, queue: &str, expected: u64) {
        self.start_worker(queue, fast_worker_config(), |job: Job| async move {
            Err(JobError::permanent(anyhow::anyhow!(
                "boom: {} job {} rejected\nsecond line of the error",
                job.kind(),
                job.id()
            )))
        });
        self.wait_until(queue, "the jobs are dead-lettered", |s| {
            s.failed >= expected
        });
        self.stop_workers();
        assert_eq!(self.stats(queue).failed, expected);
    }

    /// Starts a worker (with `queue_core::testing`'s fast settings, or a variant
    /// of them); it runs until [`TestEnv::stop_workers`] or the end of the test.
    pub fn start_worker<H: Handler>(&self, queue: &str, config: WorkerConfig, handler: H) {
        // Spawned from inside the runtime, so the worker's task lives on it.
        let worker =
            self.block_on(async { self.redis.spawn_worker(&self.queue(queue), config, handler) });
        self.workers.lock().expect("workers lock").push(worker);
    }

    /// Runs an already built worker (e.g. one with repeating jobs) until
    /// [`TestEnv::stop_workers`] or the end of the test.
    pub fn spawn<H: Handler>(&self, worker: Worker<H>) {
        let worker = self.block_on(async { self.redis.spawn(worker) });
        self.workers.lock().expect("workers lock").push(worker);
    }

    /// Stops every worker started by this test and waits until they have stopped.
    pub fn stop_workers(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        self.block_on(async {
            for worker in workers {
                worker.stop().await;
            }
        });
    }
}

/// Runs the built binary with `global` then `args`, ignoring the caller's environment.
pub fn run_queuectl(global: &[&str], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_queuectl"))
        .args(global)
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("RSQ_PREFIX")
        // A test that wants PostgreSQL names its own database.
        .env_remove("DATABASE_URL")
        .env("USER", "tester")
        .output()
        .expect("run queuectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The row whose first cell is `first` in the first table of `text` whose header
/// starts with `header`, as header -> cell. Tables end at a blank line. Columns
/// are at least two spaces apart and no header or cell holds two spaces in a row
/// (`FAILED AT`, `daily at 03:00 UTC` are one cell each), so that split is exact.
#[track_caller]
pub fn row_of(text: &str, header: &str, first: &str) -> HashMap<String, String> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{header} ")))
        .take_while(|l| !l.trim().is_empty());
    let columns = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("no table starting with {header:?} in:\n{text}")),
    );
    let row = lines
        .map(cells)
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in the {header} table of:\n{text}"));
    assert_eq!(row.len(), columns.len(), "ragged row in:\n{text}");
    columns.into_iter().zip(row).collect()
}

/// The row of queue `queue` in the first `QUEUE ...` table of `text` (the stats).
#[track_caller]
pub fn row(text: &str, queue: &str) -> HashMap<String, String> {
    row_of(text, "QUEUE", queue)
}

/// What follows the line `title` (e.g. the `REPEATING` table under the stats).
#[track_caller]
pub fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n{title}\n"))
        .unwrap_or_else(|| panic!("no {title:?} section in:\n{text}"));
    &text[start + title.len() + 2..]
}
