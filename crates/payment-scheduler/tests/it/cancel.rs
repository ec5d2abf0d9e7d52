//! The bank adapter's cancel and voucher, as the gateway's cancel route and
//! the checks use them.

use ::payments::{Bank, BankError, CreateQr, QrBank};
use store::payments::{Currency, PaymentStatus};

use crate::support::{PaymentWorld, TestApp};

fn qr(script: &str) -> CreateQr {
    CreateQr {
        amount_cents: 1_000,
        currency: Currency::Bob,
        description: format!("Pedido script:{script}"),
        expires_at: None,
    }
}

#[tokio::test]
async fn a_qr_is_cancelled_at_the_bank_unless_it_is_paid_or_unknown() {
    let app = TestApp::new().await;
    let bank = QrBank::new(app.bank_config()).expect("bank client");

    let open = bank.create_qr(&qr("pending")).await.expect("created");
    bank.cancel_qr(&open.qr_id).await.expect("cancelled");
    let read = bank.qr_status(&open.qr_id).await.expect("status");
    assert_eq!(
        (read.status, read.voucher_id),
        (PaymentStatus::Cancelled, None)
    );
    bank.cancel_qr(&open.qr_id)
        .await
        .expect("cancelling again changes nothing");

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

    let unknown = bank.cancel_qr("qr-unknown").await.expect_err("unknown");
    assert!(matches!(unknown, BankError::NotFound), "{unknown:?}");
    assert_eq!(app.sim.bank().stats().cancellations, 1);
    app.finish().await;
}
