//! The `payment.check` job: read the QR's status at the bank, apply it, and
//! schedule the next check.
//!
//! A check's effects are one PostgreSQL transaction on the locked payment row:
//! the history row, the new status and next check time, and, when the status
//! becomes `completed`, the account movement (unique per payment). So there is
//! no moment at which a payment is completed without its movement: a worker
//! killed in between rolls the whole check back, and the redelivered job does it
//! again. The row's `checks_made` says which checks are done, so a redelivered
//! or duplicate check finds its work done and only makes sure of what follows
//! it (the next check's job, a movement missing from an older row). The next
//! check is enqueued after the commit, with a key unique until settled; if that
//! enqueue is lost, the reconciler enqueues it from `next_check_at`.
//!
//! A bank call that fails is retried by the runner with backoff; on the last
//! attempt (or at once for a refusal no retry can fix) the check counts as
//! failed: it is recorded and the next check is scheduled as usual. Whatever
//! else dead-letters a check (a timeout or panic on its last attempt, a worker
//! dying on every delivery), the dead-letter hook does the same, so a payment
//! is never left without its next check. A check an operator retried from the
//! dead-letter stream checks the payment again at once, as its next check,
//! reopening it first if the dead letter left it flagged for an operator.
//!
//! A check numbered [`NEXT_CHECK`] (0) was asked for by the bank's notification
//! (`jobs::rows::notified_check_job`): it reads the bank now and is recorded as
//! the payment's next check, its number taken under the row's lock, so the
//! scheduled check of that number finds its work done (docs/design.md,
//! "Notification, then check"). It only ever adds a reading: when the bank
//! cannot be read it records nothing, and the scheduled checks go on as before.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use jobs::JobHandler;
use jobs::rows::NEXT_CHECK;
use jobs::v1::PaymentStatusCheck;
use queue_core::{DeadLettered, Enqueued, Job, JobError, Producer, Queue};
use store::PgPool;
use store::payments::{self, CheckApplied, CheckOutcome, NewCheck, Payment, PaymentStatus};
use tracing::{info, warn};

use crate::config::ScheduleConfig;
use ::payments::{Bank, QrStatus, schedule};

/// What a check found.
#[derive(Debug, Clone)]
pub enum CheckResult {
    /// The bank answered this status (and, once paid, its voucher).
    Status(QrStatus),
    /// Every attempt failed; the error.
    Failed(String),
}

/// What applying a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The payment is gone: nothing to do.
    Gone,
    /// The check was done already (a redelivery) or checks had ended; the row
    /// as it is now.
    AlreadyDone(Payment),
    /// The check was recorded; the row after it, and whether it booked the movement.
    Recorded { payment: Payment, booked: bool },
}

/// Runs `payment.check` jobs. Cheap to share.
#[derive(Debug, Clone)]
pub struct CheckHandler {
    pool: PgPool,
    bank: Arc<dyn Bank>,
    producer: Producer,
    queue: Queue,
    schedule: ScheduleConfig,
}

impl CheckHandler {
    pub fn new(
        pool: PgPool,
        bank: Arc<dyn Bank>,
        producer: Producer,
        queue: Queue,
        schedule: ScheduleConfig,
    ) -> Self {
        Self {
            pool,
            bank,
            producer,
            queue,
            schedule,
        }
    }

    /// Applies check `check_number` of payment `id` in one transaction: history,
    /// status, next check (or the operator flag), and the movement when paid.
    /// [`NEXT_CHECK`] (0) applies it as the payment's next check, whatever its
    /// number, decided under the row's lock.
    pub async fn apply(
        &self,
        id: i64,
        check_number: i32,
        result: &CheckResult,
    ) -> anyhow::Result<Applied> {
        let mut tx = self.pool.begin().await.context("beginning a transaction")?;
        let Some(payment) = payments::lock(&mut tx, id)
            .await
            .context("locking the payment")?
        else {
            return Ok(Applied::Gone);
        };
        let check_number = if check_number == NEXT_CHECK as i32 {
            payment.checks_made + 1
        } else {
            check_number
        };
        if check_number <= payment.checks_made || payment.next_check_at.is_none() {
            tx.rollback().await.context("rolling back")?;
            return Ok(Applied::AlreadyDone(payment));
        }
        let (outcome, status, error) = match result {
            CheckResult::Status(s) => (CheckOutcome::Ok, s.status, None),
            CheckResult::Failed(e) => (CheckOutcome::Failed, payment.status, Some(e.as_str())),
        };
        let changed = status != payment.status;
        let error = error.map(store::error_text);
        payments::record_check(
            &mut tx,
            &NewCheck {
                payment_id: id,
                check_number,
                outcome,
                status: matches!(result, CheckResult::Status(_)).then_some(status),
                changed,
                error: error.as_deref(),
                due_at: payment.next_check_at,
            },
        )
        .await
        .context("recording the check")?;
        let limit = i32::try_from(self.schedule.max_checks).unwrap_or(i32::MAX);
        let (next_check_at, operator_reason) = match self.schedule.next_delay(status) {
            None => (None, None),
            Some(_) if check_number - payment.checks_base >= limit => (
                None,
                Some(format!(
                    "no final status after {} checks (PAYMENT_MAX_CHECKS); last status {status}",
                    check_number - payment.checks_base
                )),
            ),
            Some(delay) => (
                Some(Utc::now() + chrono::Duration::from_std(delay).context("the check delay")?),
                None,
            ),
        };
        let applied = CheckApplied {
            checks_made: check_number,
            status,
            next_check_at,
            operator_reason,
        };
        let updated = payments::apply_check(&mut tx, id, &applied)
            .await
            .context("updating the payment")?;
        let booked = if status == PaymentStatus::Completed {
            let voucher = match result {
                CheckResult::Status(s) => s.voucher_id.as_deref(),
                CheckResult::Failed(_) => None,
            };
            payments::book_movement_with_voucher(&mut tx, &payment, voucher)
                .await
                .context("booking the movement")?
        } else {
            false
        };
        tx.commit().await.context("committing the check")?;
        record_metrics(&payment, &updated, result, booked);
        Ok(Applied::Recorded {
            payment: updated,
            booked,
        })
    }

    /// Makes sure of what follows a done check: the movement of a completed
    /// payment (healing a row completed without one) and the job of its next
    /// check (when the enqueue after the commit was lost).
    pub async fn follow_up(&self, payment: &Payment) -> anyhow::Result<()> {
        if payment.status == PaymentStatus::Completed {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a connection")?;
            if payments::book_movement(&mut conn, payment)
                .await
                .context("booking a missing movement")?
            {
                warn!(
                    payment.id = payment.id,
                    "a completed payment had no movement; booked it"
                );
            }
        }
        self.schedule_next(payment).await
    }

    /// Enqueues the payment's next check, if it is still checked; "duplicate"
    /// when that job exists already.
    pub async fn schedule_next(&self, payment: &Payment) -> anyhow::Result<()> {
        if let Some(job) = schedule::next_check_job(payment) {
            let enqueued = self
                .producer
                .enqueue(&self.queue, job)
                .await
                .context("enqueueing the next check")?;
            if !matches!(enqueued, Enqueued::Duplicate { .. }) {
                tracing::debug!(
                    payment.id = payment.id,
                    check.number = payment.checks_made + 1,
                    job.id = enqueued.id(),
                    "next check scheduled"
                );
            }
        }
        Ok(())
    }

    /// A payment flagged for an operator is reopened (see
    /// [`payments::reopen_flagged`]); one still checked is returned as it is.
    async fn reopen(&self, payment: Payment) -> anyhow::Result<Payment> {
        if !payment.needs_operator {
            return Ok(payment);
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a database connection")?;
        match payments::reopen_flagged(&mut conn, payment.id)
            .await
            .context("reopening the payment")?
        {
            Some(reopened) => {
                info!(
                    payment.id = payment.id,
                    payment.checks_made = reopened.checks_made,
                    "an operator retried a dead-lettered check; the flagged payment is checked again"
                );
                Ok(reopened)
            }
            None => Ok(payment),
        }
    }

    /// Records check `check_number` as failed and schedules the next one.
    async fn fail(&self, id: i64, check_number: i32, error: &str) -> anyhow::Result<()> {
        match self
            .apply(id, check_number, &CheckResult::Failed(error.to_owned()))
            .await?
        {
            Applied::Gone => Ok(()),
            Applied::AlreadyDone(payment) => self.follow_up(&payment).await,
            Applied::Recorded { payment, .. } => {
                warn!(
                    payment.id = id,
                    check.number = check_number,
                    payment.needs_operator = payment.needs_operator,
                    error,
                    "payment check failed; the next one is scheduled"
                );
                self.schedule_next(&payment).await
            }
        }
    }
}

/// `payment_checks_total{outcome, status}`, `payment_check_lateness_seconds`
/// (how long after its due time a check was applied),
/// `payment_movements_booked_total` and `payment_flagged_total`.
fn record_metrics(before: &Payment, after: &Payment, result: &CheckResult, booked: bool) {
    let outcome = match result {
        CheckResult::Status(_) => "ok",
        CheckResult::Failed(_) => "failed",
    };
    metrics::counter!(
        "payment_checks_total",
        "outcome" => outcome,
        "status" => after.status.as_str()
    )
    .increment(1);
    // A notified check runs before its due time: no lateness to tell.
    if let Some(due) = before.next_check_at
        && due <= Utc::now()
    {
        let late = (Utc::now() - due).to_std().unwrap_or_default();
        metrics::histogram!("payment_check_lateness_seconds").record(late.as_secs_f64());
    }
    if booked {
        metrics::counter!("payment_movements_booked_total").increment(1);
    }
    if after.needs_operator && !before.needs_operator {
        metrics::counter!("payment_flagged_total").increment(1);
    }
}

impl JobHandler<PaymentStatusCheck> for CheckHandler {
    async fn handle(&self, msg: PaymentStatusCheck, job: Job) -> Result<(), JobError> {
        let id = msg.payment();
        let Ok(check_number) = i32::try_from(msg.check_number) else {
            return Err(JobError::permanent(anyhow::anyhow!(
                "check number {} is out of range",
                msg.check_number
            )));
        };
        let payment = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .context("acquiring a database connection")?;
            payments::get(&mut conn, id)
                .await
                .context("reading the payment")?
        };
        let Some(mut payment) = payment else {
            // docs/design.md: a job whose row is gone is dropped, not dead-lettered.
            info!(
                payment.id = id,
                job.id = job.id(),
                "the payment no longer exists; the check is dropped"
            );
            return Ok(());
        };
        let notified = msg.check_number == NEXT_CHECK;
        let mut check_number = check_number;
        if notified {
            // Its number for the checks below; `apply` takes the number it
            // finds under the lock, as a scheduled check may run meanwhile.
            check_number = payment.checks_made + 1;
        } else if job.is_dead_letter_retry() && !payment.status.is_final() {
            // An operator retried this check from the dead-letter stream: the
            // payment runs again (reopened if the dead letter flagged it) and
            // its next check runs now, in this job. Its dead letter already
            // counted as a failed check, so the job's own number is done.
            payment = self.reopen(payment).await?;
            check_number = payment.checks_made + 1;
        }
        if check_number <= payment.checks_made || payment.next_check_at.is_none() {
            info!(
                payment.id = id,
                check.number = check_number,
                payment.checks_made = payment.checks_made,
                "this check was done already; making sure of what follows it"
            );
            self.follow_up(&payment).await?;
            return Ok(());
        }
        if check_number > payment.checks_made + 1 {
            warn!(
                payment.id = id,
                check.number = check_number,
                payment.checks_made = payment.checks_made,
                "a check from the future; dropped (its predecessor schedules it)"
            );
            return Ok(());
        }
        let started = Instant::now();
        let answer = match self.bank.qr_status(&payment.qr_id).await {
            Ok(answer) => answer,
            Err(e) => {
                let last = e.is_permanent() || job.is_last_attempt();
                let text = format!("attempt {} of {}: {e}", job.attempt(), job.max_attempts());
                if !last {
                    warn!(
                        payment.id = id,
                        check.number = check_number,
                        check.notified = notified,
                        job.attempt = job.attempt(),
                        duration_ms = started.elapsed().as_millis() as u64,
                        error = %e,
                        "reading the payment status failed; retrying"
                    );
                    return Err(JobError::Retry(anyhow::Error::new(e)));
                }
                if notified {
                    // The scheduled checks still come: nothing to record.
                    warn!(
                        payment.id = id,
                        error = text,
                        "the notified check could not read the bank; the scheduled checks go on"
                    );
                } else {
                    self.fail(id, check_number, &text).await?;
                }
                return Ok(());
            }
        };
        let number = if notified {
            NEXT_CHECK as i32
        } else {
            check_number
        };
        let applied = self.apply(id, number, &CheckResult::Status(answer)).await?;
        match &applied {
            Applied::Gone => {}
            Applied::AlreadyDone(p) => self.follow_up(p).await?,
            Applied::Recorded { payment: p, booked } => {
                info!(
                    payment.id = id,
                    check.number = p.checks_made,
                    check.notified = notified,
                    payment.status = %p.status,
                    payment.previous_status = %payment.status,
                    movement.booked = booked,
                    payment.needs_operator = p.needs_operator,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "payment checked"
                );
                // Its movement, if paid, was booked in the same transaction.
                self.schedule_next(p).await?;
            }
        }
        Ok(())
    }

    /// Whatever dead-lettered the check, it counts as failed and the next one is
    /// scheduled (or the payment flagged). Retried by the runner until it succeeds.
    async fn on_dead_letter(
        &self,
        msg: Option<PaymentStatusCheck>,
        letter: DeadLettered,
    ) -> anyhow::Result<()> {
        let Some(msg) = msg else {
            return Ok(()); // no payment to name
        };
        let Ok(check_number) = i32::try_from(msg.check_number) else {
            return Ok(());
        };
        if msg.check_number == NEXT_CHECK {
            // A notified check only adds a reading; the scheduled ones go on.
            return Ok(());
        }
        self.fail(msg.payment(), check_number, &letter.error).await
    }
}
