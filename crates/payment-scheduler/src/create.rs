//! Creating a payment QR, as the gateway's `POST /api/payments/qr` does: ask
//! the bank for the QR first (nothing is stored if it refuses or cannot be
//! reached), then store the payment in one transaction with what the bank's
//! first answer settles (a QR the bank reports `completed` at creation gets its
//! movement and `paid_at` there, not from a later repair), then enqueue its
//! first check, due at once (as the replaced system checked at once, then by
//! status; the status delays apply from the second check on).
//!
//! A failed enqueue is logged, not returned: the payment is stored and the
//! reconciler enqueues its check from `next_check_at` with the same key.

use chrono::Utc;
use queue_core::{Producer, Queue};
use store::PgPool;
use store::payments::{self, NewPayment, Payment};
use tracing::{info, warn};

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

/// Creates the QR at the bank, stores its payment (booked if the bank says it
/// is paid already) and enqueues its first check, runnable at once.
pub async fn create_payment(
    pool: &PgPool,
    bank: &dyn Bank,
    producer: &Producer,
    queue: &Queue,
    request: &CreateQr,
) -> Result<Payment, CreateError> {
    let created = bank.create_qr(request).await?;
    // A final status ends the checks before they start.
    let next_check_at = (!created.status.is_final()).then(Utc::now);
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
    // The row is committed: from here on the creation succeeds. The check's key
    // is unique until settled, so a lost enqueue is made good by the
    // reconciler with the same key, never doubled.
    let Some(job) = schedule::next_check_job(&payment) else {
        info!(
            payment.id = payment.id,
            payment.status = %payment.status,
            movement.booked = booked,
            "payment stored with a final status; nothing to check"
        );
        return Ok(payment);
    };
    match producer.enqueue(queue, job).await {
        Ok(enqueued) => info!(
            payment.id = payment.id,
            payment.amount_cents = payment.amount_cents,
            payment.currency = payment.currency.as_str(),
            job.id = enqueued.id(),
            "payment QR created, first check enqueued"
        ),
        Err(e) => warn!(
            payment.id = payment.id,
            error = format!("{:#}", anyhow::Error::from(e)),
            "payment QR created, but enqueueing its first check failed; the reconciler will enqueue it"
        ),
    }
    Ok(payment)
}
