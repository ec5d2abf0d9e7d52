//! Priority lanes: a check of a pending payment (high lane) is taken before
//! checks of active payments (low lane) that became due with it.

use ::payments::schedule;
use chrono::Utc;
use store::payments::PaymentStatus;

use queue_core::testing::eventually;

use crate::support::{PaymentWorld, TestApp};

#[tokio::test]
async fn a_high_lane_check_is_taken_before_low_lane_checks_that_were_due_with_it() {
    let app = TestApp::new().await;
    // Three active payments' checks (low lane), then a pending one's (high
    // lane), all due at the same moment.
    let due = Utc::now() + chrono::Duration::milliseconds(300);
    let mut low = Vec::new();
    for _ in 0..3 {
        let p = app.add_payment("completed").await;
        let job = schedule::check_job(p.id, 1, PaymentStatus::Active, due);
        app.enqueue_job(job).await;
        low.push(p.id);
    }
    let high = app.add_payment("completed").await;
    let job = schedule::check_job(high.id, 1, PaymentStatus::Pending, due);
    app.enqueue_job(job).await;
    assert!(Utc::now() < due, "enqueued before they were due");
    // One promotion moves all four into their lanes at once. The worker starts
    // only then: a read that ran while the promotion happened could find the
    // high lane still empty a moment before the low one filled (each lane is
    // read in its own round trip), which is not what this test is about.
    let moved = eventually("the checks are due and promoted", async || {
        let moved = app
            .redis
            .admin
            .promote_due(&app.queue)
            .await
            .expect("promote");
        (moved > 0).then_some(moved)
    })
    .await;
    assert_eq!(moved, 4, "promoted together");

    let mut config = app.config();
    // One at a time, so each start is a fresh choice of the highest lane.
    config.worker.concurrency = 1.try_into().expect("nonzero");
    let worker = app.spawn(config).await;
    for id in low.iter().chain([&high.id]) {
        app.settled(*id).await;
    }
    let order: Vec<i64> = {
        let mut conn = app.conn().await;
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
