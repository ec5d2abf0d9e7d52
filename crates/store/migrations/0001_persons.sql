-- People registered by a clerk; their QR code is rendered in the background.
CREATE TABLE persons (
    id          BIGSERIAL PRIMARY KEY,
    document    TEXT NOT NULL UNIQUE,
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    email       TEXT,
    -- Exactly the text the QR encodes, and where its PNG will be (fixed at insert).
    qr_content  TEXT NOT NULL,
    qr_path     TEXT NOT NULL,
    qr_status   TEXT NOT NULL DEFAULT 'pending'
                CHECK (qr_status IN ('pending', 'ready', 'failed')),
    qr_error    TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
