//! The bank adapter's cancel and voucher at both providers, as the gateway's
//! cancel route and the checks use them.

use ::payments::{BankError, CreateQr};
use store::payments::{Currency, PaymentStatus};

use crate::support::{PaymentWorld, Provider, TestApp, both_providers};

both_providers!(a_qr_is_cancelled_at_the_bank_unless_it_is_paid_or_unknown);

fn qr(script: &str) -> CreateQr {
    CreateQr {
        amount_cents: 1_000,
        currency: Currency::Bob,
        description: format!("Pedido script:{script}"),
        expires_at: None,
    }
}

async fn a_qr_is_cancelled_at_the_bank_unless_it_is_paid_or_unknown(provider: Provider) {
    let app = TestApp::with(provider).await;
    let bank = app.bank();

    let open = bank.create_qr(&qr("pending")).await.expect("created");
    bank.cancel_qr(&open.qr_id).await.expect("cancelled");
    let read = bank.qr_status(&open.qr_id).await.expect("status");
    assert_eq!(
        (read.status, read.voucher_id),
        (provider.seen(PaymentStatus::Cancelled), None)
    );

    let paid = bank.create_qr(&qr("pending")).await.expect("created");
    assert!(app.sim.bank().pay(&paid.qr_id));
    let refused = bank.cancel_qr(&paid.qr_id).await.expect_err("paid");
    assert!(
        matches!(refused, BankError::AlreadyPaid) && refused.is_permanent(),
        "{refused:?}"
    );
    let read = bank.qr_status(&paid.qr_id).await.expect("status");
    let voucher = app.sim.bank().qr(&paid.qr_id).expect("known").voucher_id;
    assert_eq!(
        (read.status, read.voucher_id),
        (PaymentStatus::Completed, Some(voucher))
    );

    let unknown = bank.cancel_qr("424242").await.expect_err("unknown");
    match provider {
        Provider::Sim => assert!(matches!(unknown, BankError::NotFound), "{unknown:?}"),
        // BNB refuses in the body, without a distinct "unknown" answer.
        Provider::Bnb => assert!(
            matches!(unknown, BankError::Rejected { .. }) && unknown.is_permanent(),
            "{unknown:?}"
        ),
    }
    assert_eq!(app.sim.bank().stats().cancellations, 1);
    app.finish().await;
}
