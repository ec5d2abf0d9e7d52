//! `payment_checks_due`: the checks waiting in the delayed set that come due
//! within the window, which an autoscaler reads since a stream trigger cannot
//! see them.

use std::time::Duration;

use payment_scheduler::due;
use queue_core::NewJob;
use queue_core::testing::eventually;
use service::testing::http_get;

use crate::support::{PaymentWorld, TestApp};

#[tokio::test]
async fn checks_due_within_the_window_are_counted_overdue_ones_too_and_exported_on_metrics() {
    let app = TestApp::new().await;
    let broker = &app.redis.broker;
    assert_eq!(
        due::due_within(broker, &app.queue, due::WINDOW)
            .await
            .expect("count"),
        0
    );
    for delay in [30, 45, 300] {
        app.enqueue_job(NewJob::new("payment.check", "soon").delay(Duration::from_secs(delay)))
            .await;
    }
    assert_eq!(app.stats().await.delayed, 3);
    let within = |s| due::due_within(broker, &app.queue, Duration::from_secs(s));
    assert_eq!(
        within(60).await.expect("count"),
        2,
        "30 s and 45 s are within a minute"
    );
    assert_eq!(within(10).await.expect("count"), 0);
    assert_eq!(within(600).await.expect("count"), 3);
    // A job overdue but not yet moved into its stream is still due work.
    let overdue = "0x";
    let _: u64 = app
        .redis
        .cmd(
            redis::cmd("ZADD")
                .arg(app.queue.keys().delayed())
                .arg(1)
                .arg(overdue),
        )
        .await;
    assert_eq!(within(60).await.expect("count"), 3);
    let _: u64 = app
        .redis
        .cmd(
            redis::cmd("ZREM")
                .arg(app.queue.keys().delayed())
                .arg(overdue),
        )
        .await;

    // Every test of this binary shares the process's recorder, so another
    // test's scheduler may have written the gauge last: assert it is there,
    // its value is what `due_within` returns (asserted above).
    let running = app.spawn(app.config()).await;
    eventually("payment_checks_due on /metrics", async || {
        let (status, body) = http_get(running.addr, "/metrics").await;
        (status == 200 && body.lines().any(|l| l.starts_with("payment_checks_due "))).then_some(())
    })
    .await;
    running.stop().await;
    app.finish().await;
}
