-- Dashboard sessions (api-gateway's /dashboard): one row per signed-in browser,
-- found by the SHA-256 of the cookie's token (the token itself is never stored),
-- so a leaked table signs nobody in. A session of an API key ends with the key:
-- the lookup joins api_keys and refuses a revoked or expired key; deleting the
-- key deletes its sessions. Bootstrap tokens (API_ADMIN_TOKEN) have no key row:
-- their sessions last until they expire or sign out.
CREATE TABLE dashboard_sessions (
    token_hash BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    key_id BIGINT REFERENCES api_keys (id) ON DELETE CASCADE,
    -- The principal as authenticated at sign-in.
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    role TEXT NOT NULL,
    -- Every form of the session carries it; a POST without it is refused.
    csrf TEXT NOT NULL,
    -- The outcome of the last action, shown once by the next page.
    flash TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
-- Expired sessions are deleted at each sign-in.
CREATE INDEX dashboard_sessions_expires_at ON dashboard_sessions (expires_at);
