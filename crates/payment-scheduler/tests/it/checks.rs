//! Each status path through the simulator, at both providers: the checks
//! follow the bank's answers, stop on a final status, and book a movement
//! (with the bank's voucher) only when paid.

use store::payments::{CheckOutcome, Currency, PaymentStatus};

use crate::support::{PaymentWorld, Provider, TestApp, both_providers, statuses};

use PaymentStatus::*;

both_providers!(
    a_payment_paid_after_two_pending_reads_is_completed_with_one_movement_and_its_history,
    every_status_path_ends_where_the_bank_says_and_only_a_payment_books_a_movement,
    a_qr_the_bank_reports_in_error_makes_failed_checks_until_it_is_flagged,
);

async fn a_payment_paid_after_two_pending_reads_is_completed_with_one_movement_and_its_history(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let worker = app.spawn(app.config()).await;
    let p = app.create("pending,pending,completed").await;

    let done = app.settled(p.id).await;
    assert_eq!(done.status, Completed);
    assert_eq!(done.checks_made, 3);
    assert!(done.paid_at.is_some() && !done.needs_operator);
    let history = app.history(p.id).await;
    assert_eq!(
        statuses(&history),
        [Some(Pending), Some(Pending), Some(Completed)]
    );
    assert_eq!(
        history.iter().map(|c| c.changed).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert!(history.iter().all(|c| c.outcome == CheckOutcome::Ok));
    let movements = app.movements(p.id).await;
    assert_eq!(movements.len(), 1);
    assert_eq!(
        (movements[0].amount_cents, movements[0].currency),
        (12_550, Currency::Bob)
    );
    let voucher = app.sim.bank().qr(&p.qr_id).expect("known").voucher_id;
    assert_eq!(
        movements[0].voucher_id,
        Some(voucher),
        "the bank's voucher is kept"
    );
    assert_eq!(app.sim.bank().status_reads(&p.qr_id), 3);
    worker.stop().await;
    app.finish().await;
}

async fn every_status_path_ends_where_the_bank_says_and_only_a_payment_books_a_movement(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let worker = app.spawn(app.config()).await;
    let paths = [
        ("pending,completed", Completed, vec![Pending, Completed]),
        (
            "pending,processing,active,completed",
            Completed,
            vec![Pending, Processing, Active, Completed],
        ),
        (
            "pending,processing,cancelled",
            Cancelled,
            vec![Pending, Processing, Cancelled],
        ),
        (
            "pending,active,expired",
            Expired,
            vec![Pending, Active, Expired],
        ),
        (
            "active,active,processing,completed",
            Completed,
            vec![Active, Active, Processing, Completed],
        ),
        ("cancelled", Cancelled, vec![Cancelled]),
    ];
    let mut created = Vec::new();
    for (script, _, _) in &paths {
        created.push(app.create(script).await);
    }
    for (p, (script, end, seen)) in created.iter().zip(&paths) {
        let (end, seen) = (
            provider.seen(*end),
            seen.iter().map(|s| provider.seen(*s)).collect::<Vec<_>>(),
        );
        let done = app.settled(p.id).await;
        assert_eq!(done.status, end, "{script}");
        assert_eq!(done.checks_made as usize, seen.len(), "{script}");
        let history = app.history(p.id).await;
        assert_eq!(
            statuses(&history),
            seen.iter().copied().map(Some).collect::<Vec<_>>(),
            "{script}"
        );
        let booked = app.movements(p.id).await.len();
        assert_eq!(booked, usize::from(end == Completed), "{script}");
        assert_eq!(
            app.sim.bank().status_reads(&p.qr_id) as usize,
            seen.len(),
            "{script}: no read after the final status"
        );
    }
    let s = app.stats().await;
    assert_eq!((s.dead_lettered, s.retried), (0, 0), "{s:#?}");
    worker.stop().await;
    app.finish().await;
}

/// BNB's statusId 4 (the `error` step): no final status, so each check
/// counts as failed against the budget until the payment is flagged.
async fn a_qr_the_bank_reports_in_error_makes_failed_checks_until_it_is_flagged(
    provider: Provider,
) {
    let app = TestApp::with(provider).await;
    let mut config = app.config();
    config.schedule.max_checks = 3;
    let worker = app.spawn(config).await;
    let p = app.create("pending,error").await;

    let flagged = app.settled(p.id).await;
    assert!(flagged.needs_operator, "{flagged:?}");
    assert_eq!((flagged.status, flagged.checks_made), (Pending, 3));
    let history = app.history(p.id).await;
    assert_eq!(
        history.iter().map(|c| c.outcome).collect::<Vec<_>>(),
        [CheckOutcome::Ok, CheckOutcome::Failed, CheckOutcome::Failed]
    );
    let error = history[1].error.clone().expect("the error");
    match provider {
        Provider::Bnb => assert!(error.contains("in error"), "{error}"),
        // The own contract has no error status: an unusable answer.
        Provider::Sim => assert!(error.contains("unusable"), "{error}"),
    }
    assert!(app.movements(p.id).await.is_empty());
    worker.stop().await;
    app.finish().await;
}
