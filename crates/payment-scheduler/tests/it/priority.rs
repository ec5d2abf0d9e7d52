//! Priority lanes: a check of a pending payment (high lane) is taken before
//! checks of active payments (low lane) that were waiting before it.

use chrono::Utc;
use payment_scheduler::schedule;
use store::payments::PaymentStatus;

use crate::support::TestApp;

#[tokio::test]
async fn a_high_lane_check_is_taken_before_low_lane_checks_that_were_due_with_it() {
    let app = TestApp::new().await;
    let mut config = app.config();
    // One at a time, so each start is a fresh choice of the highest lane.
    config.worker.concurrency = 1.try_into().expect("nonzero");
    let worker = app.spawn(config).await;
    // Its start-up jobs (reconcile, cleanup) done and nothing else to take,
    // the worker waits in its blocking read.
    app.redis
        .stats_until(&app.queue, "the worker is idle", |s| {
            s.completed >= 2 && s.waiting == 0 && s.active == 0
        })
        .await;

    // Three active payments' checks (low lane), then a pending one's (high
    // lane), all due at the same moment: one promotion wakes the blocked read.
    let due = Utc::now() + chrono::Duration::milliseconds(1000);
    let mut low = Vec::new();
    for _ in 0..3 {
        let p = app.add_payment("completed").await;
        let job = schedule::check_job(p.id, 1, PaymentStatus::Active, due);
        app.redis
            .producer
            .enqueue(&app.queue, job)
            .await
            .expect("enqueue");
        low.push(p.id);
    }
    let high = app.add_payment("completed").await;
    let job = schedule::check_job(high.id, 1, PaymentStatus::Pending, due);
    app.redis
        .producer
        .enqueue(&app.queue, job)
        .await
        .expect("enqueue");
    assert!(Utc::now() < due, "enqueued before they were due");

    for id in low.iter().chain([&high.id]) {
        app.settled(*id).await;
    }
    let order: Vec<i64> = {
        let mut conn = app.db.pool.acquire().await.expect("conn");
        sqlx::query_scalar("SELECT payment_id FROM payment_checks ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .expect("order")
    };
    assert_eq!(order.len(), 4);
    assert_eq!(
        order[0], high.id,
        "the high-lane check ran first: {order:?} (low {low:?})"
    );
    worker.stop().await;
    app.finish().await;
}
