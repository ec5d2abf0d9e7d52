-- Retries that retry. An operator who retries a dead letter (`queuectl retry`,
-- the admin API) puts its row back in the state that runs; the failure it
-- reopens is kept here, oldest first: [{"error": "...", "reopened_at": "..."}].
ALTER TABLE persons ADD COLUMN qr_error_history JSONB NOT NULL DEFAULT '[]';
ALTER TABLE companies ADD COLUMN context_error_history JSONB NOT NULL DEFAULT '[]';
-- A payment flagged for an operator and reopened by a retried check: the flag's
-- reason goes to the history, and the check limit counts again from the
-- checks made when it was reopened (`checks_base`).
ALTER TABLE payments ADD COLUMN operator_history JSONB NOT NULL DEFAULT '[]';
ALTER TABLE payments ADD COLUMN checks_base INTEGER NOT NULL DEFAULT 0
    CHECK (checks_base >= 0);

-- The reconciler's repair scan: a completed payment is booked (movement and
-- paid_at) in the transaction that completes it, so `paid_at IS NULL` marks one
-- completed by hand or by an older version. Partial: it holds only those rows,
-- however many payments were ever made. Rows the earlier reconciler repaired
-- without setting paid_at take their movement's time first.
UPDATE payments p SET paid_at = m.booked_at
  FROM account_movements m
 WHERE m.payment_id = p.id AND p.status = 'completed' AND p.paid_at IS NULL;
CREATE INDEX payments_completed_unbooked ON payments (id)
    WHERE status = 'completed' AND paid_at IS NULL;
