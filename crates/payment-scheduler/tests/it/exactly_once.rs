//! Exactly one movement per paid payment: under redelivery of the same check,
//! under a reclaim from a worker that died holding it, and from a row left
//! completed without its movement. (A real process killed between the status
//! update and the booking is in `binary.rs`.)

use jobs::JobKind;
use jobs::v1::PaymentStatusCheck;
use queue_core::testing::eventually;
use queue_core::{NewJob, Priority};
use store::payments::{self, PaymentStatus};

use crate::support::{PaymentWorld, Provider, TestApp, both_providers};

both_providers!(
    the_same_check_delivered_again_after_it_completed_books_nothing_and_reads_nothing,
    two_deliveries_of_one_check_running_at_once_book_one_movement,
    a_check_reclaimed_from_a_worker_that_died_holding_it_books_one_movement,
    a_payment_left_completed_without_its_movement_gets_exactly_one_from_the_next_delivery,
);

async fn the_same_check_delivered_again_after_it_completed_books_nothing_and_reads_nothing(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let worker = app.spawn(app.config()).await;
    let p = app.create("completed").await;
    let done = app.settled(p.id).await;
    assert_eq!(
        (done.status, done.checks_made),
        (PaymentStatus::Completed, 1)
    );

    // Its key was released when it completed, so this is a second job for check 1.
    let second = app.enqueue_check(&p).await;
    app.completed_until(&second).await;
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.history(p.id).await.len(), 1);
    assert_eq!(app.payment(p.id).await, done, "the row is untouched");
    assert_eq!(
        app.sim.bank().status_reads(&p.qr_id),
        1,
        "a done check asks the bank nothing"
    );
    worker.stop().await;
    app.finish().await;
}

async fn two_deliveries_of_one_check_running_at_once_book_one_movement(provider: Provider) {
    let app = TestApp::with(provider).await;
    // Both deliveries read the bank while the other does.
    app.sim
        .bank()
        .set_latency(std::time::Duration::from_millis(100));
    let p = app.add_payment("completed").await;
    // The same check twice, without the key that would make the second a duplicate.
    let check = PaymentStatusCheck::new(p.id, 1);
    let mut jobs = Vec::new();
    for _ in 0..2 {
        // Without the check's key: the second delivery is the point.
        let job =
            NewJob::message(<PaymentStatusCheck as JobKind>::KIND, &check).priority(Priority::High);
        jobs.push(app.enqueue_job(job).await);
    }
    let worker = app.spawn(app.config()).await;
    // By their ids: the queue's `completed` also counts the repeating jobs.
    for job in &jobs {
        app.completed_until(job).await;
    }
    let done = app.settled(p.id).await;
    assert_eq!(
        (done.status, done.checks_made),
        (PaymentStatus::Completed, 1)
    );
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 2, "both ran");
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.history(p.id).await.len(), 1);
    worker.stop().await;
    app.finish().await;
}

async fn a_check_reclaimed_from_a_worker_that_died_holding_it_books_one_movement(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let mut p = app.add_payment("completed").await;
    // A processing payment's check waits on the normal lane, the one `read_as` takes.
    {
        let mut conn = app.conn().await;
        sqlx::query("UPDATE payments SET status = 'processing' WHERE id = $1")
            .bind(p.id)
            .execute(&mut *conn)
            .await
            .expect("update");
        p.status = PaymentStatus::Processing;
    }
    app.enqueue_check(&p).await;
    // Due at once: promote it, then let a consumer take it and "die".
    eventually("the check is waiting", async || {
        app.redis
            .admin
            .promote_due(&app.queue)
            .await
            .expect("promote");
        (app.stats().await.waiting == 1).then_some(())
    })
    .await;
    app.redis.read_as(&app.queue, "died-holding-it", 1).await;
    assert_eq!(app.redis.pending_entries(&app.queue).await.len(), 1);

    let worker = app.spawn(app.config()).await;
    let done = app.settled(p.id).await;
    assert_eq!(done.status, PaymentStatus::Completed);
    let s = app
        .redis
        .stats_until(&app.queue, "the reclaimed check completed", |s| {
            s.completed >= 1
        })
        .await;
    assert!(s.reclaimed >= 1, "{s:#?}");
    assert_eq!(app.movements(p.id).await.len(), 1);
    worker.stop().await;
    app.finish().await;
}

async fn a_payment_left_completed_without_its_movement_gets_exactly_one_from_the_next_delivery(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let p = app.add_payment("completed").await;
    // The state a crash between the status update and the booking would leave
    // if they were not one transaction (or a row completed by hand).
    {
        let mut conn = app.conn().await;
        sqlx::query(
            "UPDATE payments SET status = 'completed', checks_made = 1, next_check_at = NULL,
                    paid_at = now() WHERE id = $1",
        )
        .bind(p.id)
        .execute(&mut *conn)
        .await
        .expect("update");
        assert!(
            payments::movements(&mut conn, p.id)
                .await
                .expect("movements")
                .is_empty()
        );
    }
    let worker = app.spawn(app.config()).await;
    // The redelivered check 1, twice.
    for _ in 1..=2 {
        let job = app.enqueue_check(&p).await;
        app.completed_until(&job).await;
    }
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 0);
    worker.stop().await;
    app.finish().await;
}
