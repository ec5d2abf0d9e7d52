-- QR payments created at a bank and checked in the background until they reach
-- a final status. Amounts are exact: whole cents (BOB and USD have two decimals),
-- never floating point.
CREATE TABLE payments (
    id                BIGSERIAL PRIMARY KEY,
    -- The bank's id of the QR.
    qr_id             TEXT NOT NULL UNIQUE,
    amount_cents      BIGINT NOT NULL CHECK (amount_cents > 0),
    currency          TEXT NOT NULL CHECK (currency IN ('BOB', 'USD')),
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'active',
                                        'completed', 'cancelled', 'expired')),
    -- The QR image as the bank sent it (PNG, base64).
    qr_image_base64   TEXT NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    checks_made       INTEGER NOT NULL DEFAULT 0 CHECK (checks_made >= 0),
    -- When the next check is due; NULL once checks ended (final status, or
    -- flagged for an operator).
    next_check_at     TIMESTAMPTZ,
    -- Checks stopped without a final status (the check limit): an operator looks.
    needs_operator    BOOLEAN NOT NULL DEFAULT false,
    operator_reason   TEXT,
    paid_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The payment reconciler's scan: payments still checked, by due time. Partial,
-- so it holds only the payments in flight, however many have settled.
CREATE INDEX payments_next_check ON payments (next_check_at, id)
    WHERE next_check_at IS NOT NULL;

-- One row per check of a payment: what the bank said, or why the check failed.
CREATE TABLE payment_checks (
    id            BIGSERIAL PRIMARY KEY,
    payment_id    BIGINT NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    check_number  INTEGER NOT NULL CHECK (check_number >= 1),
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    -- The status the bank answered (NULL when the check failed).
    status        TEXT,
    -- Whether this check changed the payment's status.
    changed       BOOLEAN NOT NULL DEFAULT false,
    error         TEXT,
    -- When the check was due (the payment's next_check_at), so lateness shows.
    due_at        TIMESTAMPTZ,
    checked_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A redelivered check never records itself twice.
    UNIQUE (payment_id, check_number)
);
-- The daily cleanup deletes old history by time.
CREATE INDEX payment_checks_by_checked_at ON payment_checks (checked_at);

-- Money booked to the shop's account. One movement per paid payment: the
-- unique payment_id makes a second booking impossible, whatever redelivers.
CREATE TABLE account_movements (
    id            BIGSERIAL PRIMARY KEY,
    payment_id    BIGINT NOT NULL UNIQUE REFERENCES payments (id),
    kind          TEXT NOT NULL DEFAULT 'qr_payment',
    amount_cents  BIGINT NOT NULL CHECK (amount_cents > 0),
    currency      TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    booked_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per run of the payment cleanup (once per period across replicas).
CREATE TABLE payment_cleanup_runs (
    id                    BIGSERIAL PRIMARY KEY,
    -- The period the run was for (the day, YYYY-MM-DD, or the period's start).
    period                TEXT NOT NULL,
    checks_deleted        BIGINT NOT NULL,
    dead_letters_deleted  BIGINT NOT NULL,
    ran_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);
