//! Creating a payment as the gateway does: what the bank's first answer
//! settles is stored with the payment, and the first check runs at once.

use std::time::Duration;

use queue_core::testing::holds_for;
use store::payments::PaymentStatus;

use crate::support::{PaymentWorld, Provider, TestApp, both_providers};

both_providers!(
    the_first_check_runs_right_after_creation_and_the_status_delays_apply_from_the_second,
);

// The simulator's own contract only: BNB's creation answers no status.
#[tokio::test]
async fn a_qr_the_bank_reports_completed_at_creation_is_stored_with_its_movement_and_paid_at() {
    let app = TestApp::new().await;
    let p = app.create_as_the_gateway("completed").await;

    assert_eq!(p.status, PaymentStatus::Completed);
    assert!(
        p.paid_at.is_some(),
        "paid_at is set by the creating transaction"
    );
    assert_eq!((p.next_check_at, p.checks_made), (None, 0));
    let movements = app.movements(p.id).await;
    assert_eq!(
        movements.len(),
        1,
        "booked with the payment, not by a repair"
    );
    assert_eq!(movements[0].amount_cents, 12_550);
    let s = app.stats().await;
    assert_eq!((s.waiting, s.delayed), (0, 0), "nothing to check: {s:#?}");
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 0);
    app.finish().await;
}

async fn the_first_check_runs_right_after_creation_and_the_status_delays_apply_from_the_second(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let mut config = app.config();
    // Far longer than the test: a check that waited for it would never run.
    config.schedule.delay_pending = Duration::from_secs(3600);
    let worker = app.spawn(config).await;
    let p = app.create_as_the_gateway("pending,pending,completed").await;
    assert_eq!(p.status, PaymentStatus::Pending);
    let due = p.next_check_at.expect("a first check");
    assert!(due <= chrono::Utc::now(), "due at creation: {due}");

    let checked = app
        .payment_until(p.id, "the first check ran", |p| p.checks_made == 1)
        .await;
    let history = app.history(p.id).await;
    assert_eq!(history[0].status, Some(PaymentStatus::Pending));
    // From the second check on, the delay of the status the bank answered.
    let next = checked.next_check_at.expect("a second check");
    assert!(
        next >= history[0].checked_at + chrono::Duration::minutes(59),
        "{next} after {}",
        history[0].checked_at
    );
    holds_for("no second read", Duration::from_millis(300), async || {
        app.sim.bank().status_reads(&p.qr_id) == 1
    })
    .await;
    worker.stop().await;
    app.finish().await;
}
