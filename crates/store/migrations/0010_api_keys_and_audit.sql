-- API keys. Only a hash of each key is kept, with a short prefix in clear
-- (`rsq_ab12cd34`) to find its row and to name it in lists and the audit log;
-- the full key is shown once, when it is created. Keys are random and long, so
-- an unsalted SHA-256 is enough (see store::keys).
CREATE TABLE api_keys (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT        NOT NULL,
    prefix       TEXT        NOT NULL UNIQUE,
    key_hash     BYTEA       NOT NULL CHECK (octet_length(key_hash) = 32),
    role         TEXT        NOT NULL CHECK (role IN ('user', 'operator', 'admin')),
    created_by   TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

-- Every action that changes state, by whom, and how it ended. A row is written
-- `pending` before the action runs and gets its outcome (`ok` or the error)
-- after, so an action is never done without its row (see ops::Auditor).
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT        NOT NULL,
    action  TEXT        NOT NULL,
    target  TEXT        NOT NULL,
    outcome TEXT        NOT NULL,
    detail  TEXT
);
