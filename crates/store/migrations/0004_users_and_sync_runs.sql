-- The ISP's customers, kept in step with Wispro by the sync-worker. `password`
-- holds a Laravel-compatible bcrypt hash; a sync never changes it.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT,
    -- As the customer's record had it (bare, V-/E- prefixed, dotted).
    id_number     TEXT,
    -- Wispro's client UUID, once a sync has matched or created the user.
    id_wispro     TEXT UNIQUE,
    zone          TEXT,
    phone         TEXT,
    phone_mobile  TEXT,
    address       TEXT,
    city          TEXT,
    state         TEXT,
    password      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_by_id_number ON users (id_number);
-- The replaced system's suffix match (`id_number LIKE '%123456'`) through an
-- index: the reversed number's prefix.
CREATE INDEX users_by_reversed_id_number ON users (reverse(id_number) text_pattern_ops);

-- One run of the Wispro sync: progress, counts and the first error reasons.
CREATE TABLE sync_runs (
    id             BIGSERIAL PRIMARY KEY,
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    requested_by   TEXT NOT NULL,
    per_page       INTEGER NOT NULL,
    total_pages    INTEGER,
    -- The last page whose customers are all done: a resumed run starts after it.
    pages_done     INTEGER NOT NULL DEFAULT 0,
    created        INTEGER NOT NULL DEFAULT 0,
    updated        INTEGER NOT NULL DEFAULT 0,
    skipped        INTEGER NOT NULL DEFAULT 0,
    errors         INTEGER NOT NULL DEFAULT 0,
    error_samples  JSONB NOT NULL DEFAULT '[]',
    failure        TEXT,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One run at a time, whatever the number of gateways: a second active run is
-- a unique violation.
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs ((true))
    WHERE status IN ('queued', 'running');
