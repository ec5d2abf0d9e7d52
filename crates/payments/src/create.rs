//! Creating a payment QR, as the gateway's `POST /api/payments/qr` does: ask
//! the bank for the QR first (nothing is stored if it refuses or cannot be
//! reached), then store the payment in one transaction with what the bank's
//! first answer settles (a QR the bank reports `completed` at creation gets its
//! movement and `paid_at` there, not from a later repair), then enqueue its
//! first check, due at once (as the replaced system checked at once, then by
//! status; the status delays apply from the second check on).
//!
//! The caller enqueues the first check: a failed enqueue is logged, not
//! returned, since the payment is stored and the reconciler enqueues its check
//! from `next_check_at` with the same key.

use chrono::Utc;
use queue_core::NewJob;
use store::PgPool;
use store::payments::{self, NewPayment, Payment};
use tracing::info;

use crate::bank::{Bank, BankError, CreateQr};
use crate::schedule;

/// Why a payment was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The bank refused the QR or could not be reached: nothing was stored.
    #[error(transparent)]
    Bank(#[from] BankError),
    /// The bank created the QR but storing the payment failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// A stored payment and the job of its first check, for the caller to enqueue
/// as it enqueues after any commit (the gateway: within its deadline, through
/// its breaker). None when the bank's first answer was final.
#[derive(Debug)]
pub struct Created {
    pub payment: Payment,
    pub first_check: Option<NewJob>,
}

/// Creates the QR at the bank and stores its payment (booked if the bank says
/// it is paid already); returns it with its first check, runnable at once.
/// The row is committed when this returns: a failed enqueue of the check
/// after it is made good by the reconciler from `next_check_at`, with the
/// same key, never doubled.
pub async fn create_payment(
    pool: &PgPool,
    bank: &dyn Bank,
    request: &CreateQr,
) -> Result<Created, CreateError> {
    let created = bank.create_qr(request).await?;
    // A final status ends the checks before they start.
    let next_check_at = schedule::first_check_at(created.status, Utc::now());
    let mut tx = pool.begin().await.map_err(store::StoreError::from)?;
    let payment = payments::insert(
        &mut tx,
        &NewPayment {
            qr_id: &created.qr_id,
            amount_cents: request.amount_cents,
            currency: request.currency,
            description: &request.description,
            status: created.status,
            qr_image_base64: &created.image_base64,
            expires_at: created.expires_at,
            next_check_at,
        },
    )
    .await?;
    let booked = payment.status == payments::PaymentStatus::Completed
        && payments::book_movement(&mut tx, &payment).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    if booked {
        metrics::counter!("payment_movements_booked_total").increment(1);
    }
    let first_check = schedule::next_check_job(&payment);
    if first_check.is_none() {
        info!(
            payment.id = payment.id,
            payment.status = %payment.status,
            movement.booked = booked,
            "payment stored with a final status; nothing to check"
        );
    }
    Ok(Created {
        payment,
        first_check,
    })
}
