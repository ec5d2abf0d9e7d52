//! The generic reconciler against the real Redis and PostgreSQL, with a test
//! `Pending` whose rows live in memory (the reconciler only needs their
//! positions and jobs).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::rows::JobOfRow;
use queue_core::testing::TestRedis;
use queue_core::{Enqueued, NewJob, Queue};
use service::config::ReconcileConfig;
use service::reconcile::{Pending, Reconciler};
use service::testing::Running;
use store::testing::TestDb;
use store::{Page, PgConnection, Position};

use crate::worker::connect;

/// Every row is pending, oldest (lowest id) first, all of the same age.
#[derive(Debug, Clone)]
struct Rows(Vec<i64>);

/// A row of [`Rows`]: its id.
#[derive(Debug, Clone, Copy)]
struct Row(i64);

fn row_job(id: i64) -> NewJob {
    NewJob::new("t.row", id.to_string()).unique_until_settled(format!("row:{id}"))
}

impl JobOfRow for Row {
    const ROW: &'static str = "row";

    fn job(&self) -> Option<(Position, NewJob)> {
        Some(((DateTime::<Utc>::UNIX_EPOCH, self.0), row_job(self.0)))
    }
}

impl Pending for Rows {
    type Message = jobs::v1::ReconcileQr;
    type Row = Row;

    async fn pending(&self, _conn: &mut PgConnection, page: Page) -> store::Result<Vec<Row>> {
        let after = page.after.map_or(i64::MIN, |(_, id)| id);
        Ok(self
            .0
            .iter()
            .filter(|&&id| id > after)
            .take(page.limit as usize)
            .map(|&id| Row(id))
            .collect())
    }
}

fn reconciler(
    redis: &TestRedis,
    db: &TestDb,
    q: &Queue,
    rows: Rows,
    batch: u32,
) -> Reconciler<Rows> {
    let config = ReconcileConfig {
        interval: Duration::from_secs(30),
        after: Duration::ZERO,
        batch,
    };
    Reconciler::new(
        db.pool.clone(),
        redis.producer.clone(),
        q.clone(),
        config,
        rows,
    )
}

#[tokio::test]
async fn a_row_whose_job_was_removed_by_hand_gets_its_job_again() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let q = redis.queue("rows-removed");
    // Row 1's job waits in the delayed set, row 2's in the stream; an operator
    // (or a bug) removes both by hand, behind the back of their unique keys.
    let delayed = redis
        .producer
        .enqueue(&q, row_job(1).delay(Duration::from_secs(3600)))
        .await
        .expect("enqueue");
    assert!(matches!(delayed, Enqueued::Scheduled { .. }), "{delayed:?}");
    let Enqueued::Added { entry_id, .. } = redis
        .producer
        .enqueue(&q, row_job(2))
        .await
        .expect("enqueue")
    else {
        panic!("added");
    };
    let popped: Vec<(Vec<u8>, f64)> = redis
        .cmd(redis::cmd("ZPOPMIN").arg(q.keys().delayed()))
        .await;
    assert_eq!(popped.len(), 1);
    let deleted: u64 = redis
        .cmd(redis::cmd("XDEL").arg(q.keys().stream(None)).arg(&entry_id))
        .await;
    assert_eq!(deleted, 1);

    let done = reconciler(&redis, &db, &q, Rows(vec![1, 2]), 10)
        .run_once()
        .await
        .expect("reconcile");
    assert_eq!(done.enqueued, 2, "{done:?}");
    let stats = redis.stats(&q).await;
    assert_eq!((stats.waiting, stats.delayed), (2, 0));
    // Their jobs exist again: the next pass creates nothing.
    let again = reconciler(&redis, &db, &q, Rows(vec![1, 2]), 10)
        .run_once()
        .await
        .expect("reconcile");
    assert_eq!(again.enqueued, 0, "{again:?}");
    redis.finish().await;
    db.cleanup().await;
}

#[tokio::test]
async fn rows_whose_jobs_exist_do_not_hide_newer_rows_without_one() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let q = redis.queue("rows-paged");
    // Five batches' worth of old rows whose jobs wait, then three new rows
    // whose jobs were lost.
    let old: Vec<i64> = (1..=25).collect();
    redis
        .producer
        .enqueue_many(&q, old.iter().map(|&id| row_job(id)))
        .await
        .expect("enqueue");
    let rows = Rows((1..=28).collect());

    let done = reconciler(&redis, &db, &q, rows, 5)
        .run_once()
        .await
        .expect("reconcile");
    assert_eq!(done.enqueued, 3, "{done:?}");
    assert_eq!(done.pending, 28, "{done:?}");
    assert_eq!(redis.stats(&q).await.waiting, 28);
    redis.finish().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_run_reads_a_bounded_number_of_pages_and_the_next_goes_on_from_there() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let q = redis.queue("rows-bounded");
    let pages = service::reconcile::MAX_PAGES as i64;
    // One page per row: every row of the first run's pages has its job.
    redis
        .producer
        .enqueue_many(&q, (1..=pages).map(row_job))
        .await
        .expect("enqueue");
    let reconciler = reconciler(&redis, &db, &q, Rows((1..=pages + 1).collect()), 1);

    let first = reconciler.run_once().await.expect("reconcile");
    assert_eq!(
        (first.pending, first.enqueued),
        (pages as usize, 0),
        "{first:?}"
    );
    let second = reconciler.run_once().await.expect("reconcile");
    assert_eq!((second.pending, second.enqueued), (1, 1), "{second:?}");
    // Past the last row, the next run starts again from the oldest.
    let third = reconciler.run_once().await.expect("reconcile");
    assert_eq!(third.enqueued, 0, "{third:?}");
    assert_eq!(third.pending as i64, pages, "{third:?}");
    redis.finish().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_reconciler_is_registered_with_one_call_and_one_out_of_range_fails_the_start() {
    let (redis, db) = (TestRedis::new().await, TestDb::new().await);
    let config = |interval| ReconcileConfig {
        interval,
        after: Duration::ZERO,
        batch: 10,
    };

    let mut svc = connect(&redis, &db).await;
    let handlers = svc
        .handlers()
        .on(svc.reconciler(config(Duration::from_secs(1)), Rows(Vec::new())));
    let running = Running::spawn(svc.start(handlers).expect("the worker is created"));
    let queue = jobs::QR.open(&redis.broker).expect("queue");
    let stats = redis
        .stats_until(&queue, "the reconciler ran", |s| s.completed >= 1)
        .await;
    assert_eq!(stats.repeating.len(), 1, "{stats:?}");
    // Named after its kind, `qr.reconcile`.
    assert_eq!(stats.repeating[0].name, "qr-reconcile");
    running.stop().await;

    // Built by hand, not read by `reconcile_config`, which refuses it.
    let mut svc = connect(&redis, &db).await;
    let handlers = svc
        .handlers()
        .on(svc.reconciler(config(Duration::from_millis(10)), Rows(Vec::new())));
    let err = svc.start(handlers).expect_err("an interval under 1s");
    assert!(
        format!("{err:#}").contains("qr-reconcile interval"),
        "{err:#}"
    );
    db.cleanup().await;
}
