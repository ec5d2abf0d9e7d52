//! One test's world, the same for every worker's tests: a Redis key prefix and
//! a database of its own, the worker's queue (from its catalogue spec) on that
//! prefix, a temporary storage directory, and the simulated third party the
//! worker calls, if any. A worker's tests add only what is theirs (its config,
//! its rows) with an extension trait on [`TestWorld`]; the constructors are not
//! called `new`, so that such a trait can offer `new()` for its own queue.

use std::path::PathBuf;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Executor, PgConnection, Postgres};

use jobs::QueueSpec;
use queue_core::admin::DeadLetter;
use queue_core::testing::{TestRedis, eventually};
use queue_core::{NewJob, Queue, QueueStats, WorkerConfig};
use store::PastError;
use store::testing::TestDb;

use crate::BaseConfig;

/// One test's world: `redis` (its own key prefix), `db` (its own database),
/// `queue` (the spec's queue, with its lanes, on that prefix), `storage` (a
/// temporary directory) and `sim`, the simulator the worker calls (`()` when
/// it calls none). Clean up with [`TestWorld::finish`] after stopping the
/// workers; if a test panics first, the prefix and the database go on drop.
pub struct TestWorld<S = ()> {
    pub redis: TestRedis,
    pub db: TestDb,
    pub queue: Queue,
    pub storage: tempfile::TempDir,
    pub sim: S,
    spec: QueueSpec,
}

impl TestWorld {
    /// A world for the workers of `spec`'s queue, with no simulator.
    pub async fn for_queue(spec: &QueueSpec) -> Self {
        Self::for_queue_with_sim(spec, ()).await
    }
}

impl<S> TestWorld<S> {
    /// A world for the workers of `spec`'s queue that call `sim`.
    pub async fn for_queue_with_sim(spec: &QueueSpec, sim: S) -> Self {
        let redis = TestRedis::new().await;
        let queue = if spec.priority_lanes {
            redis.priority_queue(spec.name)
        } else {
            redis.queue(spec.name)
        };
        Self {
            redis,
            queue,
            db: TestDb::new().await,
            storage: tempfile::tempdir().expect("a temporary storage directory"),
            sim,
            spec: *spec,
        }
    }

    /// [`super::base_config`] for this world's prefix and database.
    pub fn base_config(&self) -> BaseConfig {
        super::base_config(&self.redis.prefix, &self.db.url)
    }

    /// [`super::fast_worker_config`] for this world's queue.
    pub fn worker_config(&self) -> WorkerConfig {
        super::fast_worker_config(&self.spec)
    }

    /// `path` inside the storage directory.
    pub fn storage_path(&self, path: &str) -> PathBuf {
        self.storage.path().join(path)
    }

    /// A connection of the database's pool.
    pub async fn conn(&self) -> PoolConnection<Postgres> {
        self.db.pool.acquire().await.expect("db connection")
    }

    /// Enqueues `job` on the world's queue; the id of the job that will run
    /// (for a duplicate, the one holding its key).
    pub async fn enqueue_job(&self, job: NewJob) -> String {
        self.redis
            .producer
            .enqueue(&self.queue, job)
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    pub async fn stats(&self) -> QueueStats {
        self.redis.stats(&self.queue).await
    }

    /// Polls the queue's stats until `done` holds; returns them.
    pub async fn stats_until(&self, what: &str, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
        self.redis.stats_until(&self.queue, what, done).await
    }

    /// Waits until the job `job_id` has a completion record.
    pub async fn completed_until(&self, job_id: &str) {
        self.redis.completed_until(&self.queue, job_id).await
    }

    /// How many jobs of `kind` completed (the queue's `completed` counter also
    /// counts the runs of its reconciler and other repeating jobs).
    pub async fn completions_of(&self, kind: &str) -> usize {
        self.redis
            .admin
            .completions(&self.queue, 1000)
            .await
            .expect("completions")
            .iter()
            .filter(|c| c.kind == kind)
            .count()
    }

    /// The dead letter of job `job_id`; panics if there is none.
    pub async fn dead_letter(&self, job_id: &str) -> DeadLetter {
        self.redis
            .admin
            .dead_letter(&self.queue, job_id)
            .await
            .expect("the dead letter")
    }

    /// Waits until job `job_id` is a dead letter; returns it.
    pub async fn dead_letter_until(&self, job_id: &str) -> DeadLetter {
        eventually(&format!("job {job_id} is dead-lettered"), async || {
            self.redis.admin.dead_letter(&self.queue, job_id).await.ok()
        })
        .await
    }

    /// Retries a dead letter, by job id or dead-letter entry id, as an
    /// operator does.
    pub async fn retry_dead(&self, id: &str) {
        self.redis
            .admin
            .retry_dead(&self.queue, id)
            .await
            .expect("retry the dead letter");
    }

    /// Retries every dead letter of the queue, as an operator does; how many.
    pub async fn retry_all_dead(&self) -> u64 {
        self.redis
            .admin
            .retry_all_dead(&self.queue)
            .await
            .expect("retry every dead letter")
    }

    /// Stops the simulator, deletes the queue's keys (checking none is left)
    /// and drops the database. Stop the workers first.
    pub async fn finish(self) {
        // A simulator stops when dropped (upstream-sim's `Sim` holds a drop guard).
        drop(self.sim);
        self.redis.finish().await;
        self.db.cleanup().await;
    }
}

/// Checks a row's history after an operator's retry: exactly one earlier
/// error was kept, and it contains `what`.
pub fn assert_one_past_error(history: &[PastError], what: &str) {
    let errors: Vec<&str> = history.iter().filter_map(|e| e.error.as_deref()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(what),
        "the earlier error is kept: {errors:?}"
    );
}

/// A table held in `EXCLUSIVE` mode by a connection of the test's own: its
/// readers go on, its writers wait until [`TableLock::release`], so a test sees
/// for sure a state that would otherwise pass in a moment.
pub struct TableLock {
    conn: PgConnection,
}

impl TableLock {
    /// Locks `table` of the database at `database_url`.
    pub async fn new(database_url: &str, table: &str) -> Self {
        let mut conn = PgConnection::connect(database_url)
            .await
            .expect("a connection of the test's own");
        conn.execute("BEGIN").await.expect("begin");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "LOCK TABLE {table} IN EXCLUSIVE MODE"
        )))
        .await
        .expect("lock the table");
        Self { conn }
    }

    /// Ends the transaction, and with it the lock.
    pub async fn release(mut self) {
        self.conn
            .execute("ROLLBACK")
            .await
            .expect("release the lock");
    }
}
