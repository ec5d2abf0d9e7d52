//! The reconciler: a payment whose check job was lost (Redis lost its data) is
//! checked again, and a completed payment without its movement gets it.

use std::time::Duration;

use payment_scheduler::Reconciler;
use payment_scheduler::reconcile::OverdueChecks;
use service::config::ReconcileConfig;
use store::payments::PaymentStatus;

use crate::support::{PaymentWorld, Provider, TestApp, both_providers};

both_providers!(
    a_payment_whose_check_job_was_lost_in_a_flushed_redis_is_checked_again,
    a_run_enqueues_only_missing_checks_and_books_missing_movements,
);

async fn a_payment_whose_check_job_was_lost_in_a_flushed_redis_is_checked_again(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let p = app.create("pending,completed").await;
    // Redis loses everything of the queue: the check job is gone.
    app.redis
        .admin
        .destroy(&app.queue)
        .await
        .expect("flush the queue");
    assert_eq!(app.stats().await.delayed, 0);

    let mut config = app.config();
    config.reconcile = ReconcileConfig {
        interval: Duration::from_secs(1),
        after: Duration::from_millis(200),
        batch: 500,
    };
    let worker = app.spawn(config).await;
    let done = app.settled(p.id).await;
    assert_eq!(
        (done.status, done.checks_made),
        (PaymentStatus::Completed, 2)
    );
    assert_eq!(app.movements(p.id).await.len(), 1);
    worker.stop().await;
    app.finish().await;
}

async fn a_run_enqueues_only_missing_checks_and_books_missing_movements(provider: Provider) {
    let app = TestApp::with(provider).await;
    let kept = app.create("completed").await; // its job exists
    let lost = app.add_payment("completed").await; // never enqueued
    let paid = app.add_payment("completed").await;
    {
        let mut conn = app.conn().await;
        sqlx::query(
            "UPDATE payments SET next_check_at = now() - interval '1 hour' WHERE id IN ($1, $2)",
        )
        .bind(kept.id)
        .bind(lost.id)
        .execute(&mut *conn)
        .await
        .expect("overdue");
        sqlx::query(
            "UPDATE payments SET status = 'completed', next_check_at = NULL, checks_made = 1
             WHERE id = $1",
        )
        .bind(paid.id)
        .execute(&mut *conn)
        .await
        .expect("completed by hand");
    }
    let reconciler = Reconciler::new(
        app.db.pool.clone(),
        app.redis.producer.clone(),
        app.queue.clone(),
        ReconcileConfig {
            interval: Duration::from_secs(1),
            after: Duration::from_secs(60),
            batch: 500,
        },
        OverdueChecks,
    );
    let first = reconciler.run_once().await.expect("run");
    assert_eq!((first.pending, first.enqueued, first.repaired), (2, 1, 1));
    let second = reconciler.run_once().await.expect("run again");
    assert_eq!(
        (second.pending, second.enqueued, second.repaired),
        (2, 0, 0)
    );
    assert_eq!(app.movements(paid.id).await.len(), 1);
    // Overdue: on their lanes at once, not delayed.
    let s = app.stats().await;
    assert_eq!((s.waiting, s.delayed), (2, 0), "{s:#?}");
    app.finish().await;
}
