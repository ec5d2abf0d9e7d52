//! What a failed job does to its row (`service::rows`), against the real Redis
//! and PostgreSQL, with a test `RowJob` whose row lives in memory: the message's
//! path says how its run ends, and the row writes down what it was told.

use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use jobs::JobKind;
use jobs::v1::GenerateQr;
use queue_core::testing::{TestRedis, eventually, fast_worker_config};
use queue_core::{Job, NewJob, Queue};
use service::rows::{Failure, RowHandler, RowJob, Settled};
use store::testing::TestDb;
use store::{PgConnection, PgPool};

/// What the row was told, in order: `note <text>`, `failed <text>`, or
/// `declined` (the job no longer spoke for it).
#[derive(Debug, Clone)]
struct Row {
    pool: PgPool,
    told: Arc<Mutex<Vec<String>>>,
    /// Failed writes of `mark_failed` still to come, to see the hook retried.
    failing_marks: Arc<Mutex<u32>>,
}

impl Row {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            told: Arc::default(),
            failing_marks: Arc::default(),
        }
    }

    fn told(&self) -> Vec<String> {
        self.told.lock().expect("lock").clone()
    }

    fn tell(&self, what: String) {
        self.told.lock().expect("lock").push(what);
    }
}

impl RowJob for Row {
    type Message = GenerateQr;
    const ROW: &'static str = "row";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn row_id(msg: &GenerateQr) -> i64 {
        msg.person_id
    }

    async fn run(&self, msg: &GenerateQr, _job: &Job) -> Result<Settled, Failure> {
        match msg.path.as_str() {
            "done" => Ok(Settled::Done),
            "gone" => Ok(Settled::Gone),
            "permanent" => Err(Failure::Permanent(anyhow!("no attempt can fix it"))),
            "stale" => Err(Failure::Stale(anyhow!("a newer job owns the row"))),
            _ => Err(anyhow!("worth another try").context("attempt").into()),
        }
    }

    async fn note_error(
        &self,
        _conn: &mut PgConnection,
        msg: &GenerateQr,
        error: &str,
    ) -> anyhow::Result<()> {
        if msg.content == "note fails" {
            return Err(anyhow!("the database said no"));
        }
        self.tell(format!("note {error}"));
        Ok(())
    }

    async fn mark_failed(
        &self,
        _conn: &mut PgConnection,
        msg: &GenerateQr,
        error: &str,
    ) -> anyhow::Result<bool> {
        {
            let mut failing = self.failing_marks.lock().expect("lock");
            if *failing > 0 {
                *failing -= 1;
                return Err(anyhow!("PostgreSQL is down"));
            }
        }
        if msg.path == "stale" {
            self.tell("declined".to_owned());
            return Ok(false);
        }
        self.tell(format!("failed {error}"));
        Ok(true)
    }
}

async fn enqueue(redis: &TestRedis, q: &Queue, path: &str, content: &str) {
    let msg = GenerateQr {
        person_id: 1,
        content: content.to_owned(),
        path: path.to_owned(),
    };
    // Without the row's key: the tests enqueue several jobs of person 1, which
    // the key would make one.
    let job = NewJob::message(GenerateQr::KIND, &msg);
    redis.enqueue_entry(q, job).await;
}

/// Runs one job of `path` (and `content`) with two attempts until the row
/// was told `told` things; returns them.
async fn told_after(path: &str, content: &str, told: usize, failing_marks: u32) -> Vec<String> {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let q = redis.queue("rows");
    let row = Row::new(db.pool.clone());
    *row.failing_marks.lock().expect("lock") = failing_marks;
    let mut config = fast_worker_config();
    config.max_attempts = 2;
    let handlers = jobs::Handlers::new(&jobs::QR).on(RowHandler(row.clone()));
    let worker = redis.spawn_worker(&q, config, handlers);
    enqueue(&redis, &q, path, content).await;
    let seen = eventually(&format!("the row was told {told} things"), async || {
        Some(row.told()).filter(|t| t.len() >= told)
    })
    .await;
    worker.stop().await;
    seen
}

#[tokio::test]
async fn each_failed_attempt_is_noted_and_only_the_dead_letter_hook_fails_the_row() {
    let told = told_after("retry", "", 3, 0).await;
    assert_eq!(
        told,
        [
            "note attempt: worth another try",
            "note attempt: worth another try",
            "failed attempt: worth another try"
        ]
    );
}

#[tokio::test]
async fn a_permanent_failure_is_noted_once_then_the_hook_fails_the_row() {
    let told = told_after("permanent", "", 2, 0).await;
    assert_eq!(
        told,
        ["note no attempt can fix it", "failed no attempt can fix it"]
    );
}

#[tokio::test]
async fn a_stale_job_leaves_its_row_alone() {
    let told = told_after("stale", "", 1, 0).await;
    assert_eq!(
        told,
        ["declined"],
        "no note, and the row declines the failure"
    );
}

#[tokio::test]
async fn a_note_that_cannot_be_written_changes_nothing_else() {
    let told = told_after("permanent", "note fails", 1, 0).await;
    assert_eq!(told, ["failed no attempt can fix it"]);
}

#[tokio::test]
async fn the_hook_is_retried_until_the_row_is_failed() {
    let told = told_after("permanent", "", 2, 2).await;
    assert_eq!(
        told,
        ["note no attempt can fix it", "failed no attempt can fix it"]
    );
}

#[tokio::test]
async fn a_job_whose_row_is_gone_is_dropped_not_dead_lettered() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let q = redis.queue("rows");
    let row = Row::new(db.pool.clone());
    let handlers = jobs::Handlers::new(&jobs::QR).on(RowHandler(row.clone()));
    let worker = redis.spawn_worker(&q, fast_worker_config(), handlers);
    enqueue(&redis, &q, "gone", "").await;
    enqueue(&redis, &q, "done", "").await;
    let stats = redis
        .stats_until(&q, "both jobs completed", |s| s.completed == 2)
        .await;
    assert_eq!((stats.retried, stats.dead_lettered), (0, 0), "{stats:#?}");
    assert!(row.told().is_empty(), "{:?}", row.told());
    worker.stop().await;
}
