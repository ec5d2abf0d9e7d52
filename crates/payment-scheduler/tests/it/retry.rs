//! An operator's retry of a dead-lettered check (`queuectl retry`, the admin
//! API): the payment runs again and is checked at once, even one the dead
//! letter left flagged for an operator.

use std::time::Duration;

use store::payments::{CheckOutcome, Payment, PaymentStatus};

use crate::support::{PaymentWorld, Provider, TestApp, both_providers};

both_providers!(
    retrying_a_dead_lettered_check_reopens_the_flagged_payment_and_checks_it_again,
    retrying_a_dead_lettered_check_of_a_payment_still_checked_runs_its_next_check_now,
);

/// Waits until the payment is flagged for an operator.
async fn flagged(app: &TestApp, id: i64) -> Payment {
    app.payment_until(id, "the payment is flagged", |p| p.needs_operator)
        .await
}

/// Waits until the payment is completed, and checks what the retry left.
async fn completed_after_a_retry(app: &TestApp, id: i64, reason: &str) {
    let done = app
        .payment_until(id, "the payment is completed", |p| {
            p.status == PaymentStatus::Completed
        })
        .await;
    assert!(
        !done.needs_operator && done.operator_reason.is_none(),
        "{done:?}"
    );
    let history: Vec<Option<&str>> = done
        .operator_history
        .iter()
        .map(|e| e.error.as_deref())
        .collect();
    assert_eq!(history, [Some(reason)], "the flag is kept in the history");
    assert_eq!((done.checks_made, done.checks_base), (2, 1));
    let checks = app.history(id).await;
    assert_eq!(
        checks.iter().map(|c| c.outcome).collect::<Vec<_>>(),
        [CheckOutcome::Failed, CheckOutcome::Ok],
        "the dead-lettered check, then the retried one"
    );
    assert_eq!(app.movements(id).await.len(), 1);
}

async fn retrying_a_dead_lettered_check_reopens_the_flagged_payment_and_checks_it_again(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let mut config = app.config();
    // One check allowed, one attempt, a bank that hangs: the check times out,
    // is dead-lettered and the payment flagged for an operator.
    config.worker.max_attempts = 1;
    config.worker.job_timeout = Duration::from_millis(300);
    config.schedule.max_checks = 1;
    let (one, all) = (
        app.add_payment("completed").await,
        app.add_payment("completed").await,
    );
    app.sim.bank().set_hang(true);
    let worker = app.spawn(config).await;
    let job = app.enqueue_check(&one).await;
    app.enqueue_check(&all).await;
    let reason = flagged(&app, one.id)
        .await
        .operator_reason
        .expect("a reason");
    assert!(reason.contains("after 1 checks"), "{reason}");
    flagged(&app, all.id).await;
    app.stats_until("both checks are dead letters", |s| s.dead_lettered == 2)
        .await;
    app.sim.bank().set_hang(false);

    // One dead letter, by its job id.
    app.retry_dead(&job).await;
    completed_after_a_retry(&app, one.id, &reason).await;
    assert!(
        app.payment(all.id).await.needs_operator,
        "only the one retried"
    );

    // Every dead letter.
    assert_eq!(app.retry_all_dead().await, 1);
    completed_after_a_retry(&app, all.id, &reason).await;
    worker.stop().await;
    app.finish().await;
}

async fn retrying_a_dead_lettered_check_of_a_payment_still_checked_runs_its_next_check_now(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let mut config = app.config();
    config.worker.max_attempts = 1;
    config.worker.job_timeout = Duration::from_millis(300);
    // The check after the dead letter waits far longer than the test.
    config.schedule.delay_pending = Duration::from_secs(3600);
    let p = app.add_payment("completed").await;
    app.sim.bank().set_hang(true);
    let worker = app.spawn(config).await;
    let job = app.enqueue_check(&p).await;
    let waiting = app
        .payment_until(p.id, "check 1 is recorded failed", |p| p.checks_made == 1)
        .await;
    assert!(!waiting.needs_operator && waiting.next_check_at.is_some());
    app.sim.bank().set_hang(false);

    app.retry_dead(&job).await;
    let done = app
        .payment_until(p.id, "the payment is completed", |p| {
            p.status == PaymentStatus::Completed
        })
        .await;
    assert_eq!((done.checks_made, done.checks_base), (2, 0));
    assert!(done.operator_history.is_empty(), "it was never flagged");
    assert_eq!(app.movements(p.id).await.len(), 1);
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 1);
    worker.stop().await;
    app.finish().await;
}
