-- Companies (clients) with a free-text business context. A long context is
-- condensed by an LLM in the background; the original is always kept.
CREATE TABLE companies (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT NOT NULL,
    -- The text in use: the original until a condensation succeeds.
    context           TEXT NOT NULL,
    context_original  TEXT NOT NULL,
    context_status    TEXT NOT NULL
                      CHECK (context_status IN ('pending', 'skipped', 'processed', 'failed')),
    context_error     TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The context reconciler's scan: companies still pending, oldest first.
CREATE INDEX companies_pending_by_created ON companies (created_at, id)
    WHERE context_status = 'pending';
