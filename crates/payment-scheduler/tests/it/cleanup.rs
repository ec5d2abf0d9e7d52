//! The cleanup: once per period however many replicas run, removing check
//! history older than the retention, nothing newer, and trimming every queue
//! to the retention its workers wrote.

use std::time::Duration;

use queue_core::Every;
use queue_core::testing::eventually;
use store::payments;

use crate::support::{PaymentWorld, TestApp};

#[tokio::test]
async fn two_replicas_run_the_cleanup_once_per_period() {
    let app = TestApp::new().await;
    let mut config = app.config();
    // The shortest period a repeating job allows stands in for a day.
    config.cleanup.every = Every::interval(Duration::from_secs(1)).expect("valid");
    let replicas = [app.spawn(config.clone()).await, app.spawn(config).await];
    let runs = eventually("three periods were cleaned", async || {
        let mut conn = app.conn().await;
        let runs = payments::cleanup_runs(&mut conn).await.expect("runs");
        (runs.len() >= 4).then_some(runs)
    })
    .await;
    for r in replicas {
        r.stop().await;
    }
    let mut periods: Vec<&str> = runs.iter().map(|r| r.period.as_str()).collect();
    let all = periods.len();
    periods.sort_unstable();
    periods.dedup();
    assert_eq!(periods.len(), all, "a period ran twice: {runs:#?}");
    app.finish().await;
}

#[tokio::test]
async fn a_cleanup_removes_history_older_than_the_retention_and_trims_every_queue_to_its_own() {
    let app = TestApp::new().await;
    let p = app.add_payment("completed").await;
    let dlq = app.queue.keys().dlq();
    {
        let mut conn = app.conn().await;
        for (n, age) in [(1, "40 days"), (2, "31 days"), (3, "1 day")] {
            sqlx::query(
                "INSERT INTO payment_checks (payment_id, check_number, outcome, status, checked_at)
                 VALUES ($1, $2, 'ok', 'pending', now() - $3::interval)",
            )
            .bind(p.id)
            .bind(n)
            .bind(age)
            .execute(&mut *conn)
            .await
            .expect("old check");
        }
    }
    // The payment queue keeps 30 days of dead letters (what its worker writes
    // by default), another queue the newest one, a third says nothing.
    let admin = queue_core::Admin::new(app.redis.broker.clone());
    let defaults = queue_core::WorkerConfig::default().retention();
    let month = queue_core::Retention {
        dead_letters_max_age: Some(Duration::from_secs(30 * 86_400)),
        ..defaults
    };
    admin
        .set_retention(&app.queue, &month)
        .await
        .expect("payment retention");
    let (other, silent) = (app.redis.queue("other"), app.redis.queue("silent"));
    let one = queue_core::Retention {
        dead_letters: 1,
        ..defaults
    };
    admin.set_retention(&other, &one).await.expect("other's");
    for q in [&app.queue, &other, &silent] {
        // Listed in the registry, as a producer or worker does.
        admin.create_groups(q).await.expect("listed");
    }
    // A dead letter from 1970 and one from now on each queue.
    for key in [&dlq, &other.keys().dlq(), &silent.keys().dlq()] {
        let _: String = app
            .redis
            .cmd(&redis_cmd(&["XADD", key, "1000-0", "error", "old"]))
            .await;
        let _: String = app
            .redis
            .cmd(&redis_cmd(&["XADD", key, "*", "error", "new"]))
            .await;
    }

    let cleanup = payment_scheduler::cleanup::Cleanup::new(
        app.db.pool.clone(),
        app.redis.broker.clone(),
        Duration::from_secs(30 * 86_400),
    );
    let done = cleanup.run_once("2026-12-04").await.expect("cleanup");
    assert_eq!((done.checks, done.dead_letters), (2, 2));
    let left = app.history(p.id).await;
    assert_eq!(left.iter().map(|c| c.check_number).collect::<Vec<_>>(), [3]);
    assert_eq!(app.redis.xlen(&dlq).await, 1, "the 30 days' own");
    assert_eq!(app.redis.xlen(&other.keys().dlq()).await, 1, "the newest");
    assert_eq!(app.redis.xlen(&silent.keys().dlq()).await, 2, "left alone");
    let again = cleanup.run_once("2026-12-04").await.expect("cleanup again");
    assert_eq!((again.checks, again.dead_letters), (0, 0));
    app.finish().await;
}

fn redis_cmd(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd
}
