//! A check asked for by the bank's notification (`jobs::rows::notified_check_job`):
//! it runs now, on the high lane, as the payment's next check, so the scheduled
//! check of that number finds its work done; the numbering has no gap and a
//! paid QR books one movement however the two meet.

use std::time::Duration;

use jobs::rows::notified_check_job;
use store::payments::PaymentStatus;

use crate::support::{PaymentWorld, TestApp};

/// The check numbers recorded, first first.
async fn numbers(app: &TestApp, id: i64) -> Vec<i32> {
    app.history(id)
        .await
        .iter()
        .map(|c| c.check_number)
        .collect()
}

#[tokio::test]
async fn a_notified_check_confirms_a_paid_qr_at_once_and_the_scheduled_check_finds_it_done() {
    let app = TestApp::new().await;
    let mut config = app.config();
    // Only the notification can explain a confirmation within the test.
    config.schedule.delay_pending = Duration::from_secs(3600);
    let worker = app.spawn(config).await;
    let p = app.create("pending").await;
    let first = app
        .payment_until(p.id, "the first check is recorded", |p| p.checks_made == 1)
        .await;
    let scheduled_due = first.next_check_at.expect("a second check is scheduled");
    let scheduled = app
        .redis
        .admin
        .unique_holder(&app.queue, &format!("payment:{}:check:2", p.id))
        .await
        .expect("redis")
        .expect("check 2 waits in the delayed set");

    assert!(app.sim.bank().pay(&p.qr_id));
    let notified = app.enqueue_job(notified_check_job(p.id)).await;
    app.completed_until(&notified).await;
    let done = app.payment(p.id).await;
    assert_eq!(
        (done.status, done.checks_made, done.next_check_at),
        (PaymentStatus::Completed, 2, None),
        "recorded as check 2, due at {scheduled_due}"
    );
    assert_eq!(numbers(&app, p.id).await, [1, 2]);
    assert_eq!(app.movements(p.id).await.len(), 1);
    let reads = app.sim.bank().status_reads(&p.qr_id);

    // The scheduled check 2, run now: its work is done, the bank is not asked.
    assert!(
        app.redis
            .admin
            .promote(&app.queue, &scheduled)
            .await
            .expect("promote")
    );
    app.completed_until(&scheduled).await;
    // A notification repeated after the payment is final asks nothing either.
    let again = app.enqueue_job(notified_check_job(p.id)).await;
    app.completed_until(&again).await;
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), reads);
    assert_eq!(numbers(&app, p.id).await, [1, 2]);
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.payment(p.id).await, done, "the row is untouched");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_notified_check_and_the_scheduled_one_running_at_once_record_one_check_and_one_movement()
{
    let app = TestApp::new().await;
    // Both read the bank while the other does.
    app.sim.bank().set_latency(Duration::from_millis(100));
    let p = app.add_payment("completed").await;
    let scheduled = app.enqueue_check(&p).await;
    let notified = app.enqueue_job(notified_check_job(p.id)).await;
    let worker = app.spawn(app.config()).await;
    app.completed_until(&scheduled).await;
    app.completed_until(&notified).await;
    let done = app.settled(p.id).await;
    assert_eq!(
        (done.status, done.checks_made),
        (PaymentStatus::Completed, 1)
    );
    assert_eq!(numbers(&app, p.id).await, [1]);
    assert_eq!(app.movements(p.id).await.len(), 1);
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_notified_check_that_cannot_read_the_bank_records_nothing_and_the_schedule_stays() {
    let app = TestApp::new().await;
    let mut config = app.config();
    config.schedule.delay_pending = Duration::from_secs(3600);
    let worker = app.spawn(config).await;
    let p = app.create("pending").await;
    let before = app
        .payment_until(p.id, "the first check is recorded", |p| p.checks_made == 1)
        .await;
    // Every attempt of the notified check fails.
    app.sim.bank().fail_next(100);
    let notified = app.enqueue_job(notified_check_job(p.id)).await;
    app.completed_until(&notified).await;
    app.sim.bank().fail_next(0);
    assert_eq!(numbers(&app, p.id).await, [1]);
    assert_eq!(app.payment(p.id).await, before, "the row is untouched");
    assert_eq!(app.stats().await.dead_lettered, 0);
    worker.stop().await;
    app.finish().await;
}
