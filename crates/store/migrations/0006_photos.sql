-- Race photos, uploaded in batches (or given by URL), and the bib numbers found
-- on them. A photo is stored `pending`; the photo-worker moves it `processing`,
-- then `completed` with its detections or `failed` with `processing_error`.
CREATE TABLE photo_batches (
    id          BIGSERIAL PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE photos (
    id                 BIGSERIAL PRIMARY KEY,
    batch_id           BIGINT NOT NULL REFERENCES photo_batches (id) ON DELETE CASCADE,
    -- The file name the client sent, for people only (never a path).
    original_name      TEXT,
    content_type       TEXT,
    -- The original in storage (`photos/...`): set at upload, or by the worker
    -- once it fetched `source_url`.
    storage_path       TEXT,
    -- The URL a photo given by URL is fetched from (allowed hosts only).
    source_url         TEXT,
    thumbnail_path     TEXT,
    width              INTEGER,
    height             INTEGER,
    size_bytes         BIGINT,
    processing_status  TEXT NOT NULL DEFAULT 'pending'
                       CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    processing_error   TEXT,
    -- Processing attempts started (one per move to `processing`).
    attempts           INTEGER NOT NULL DEFAULT 0,
    processed_at       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (storage_path IS NOT NULL OR source_url IS NOT NULL)
);
-- A batch's progress.
CREATE INDEX photos_by_batch ON photos (batch_id, processing_status);
-- The reconciler's scan: photos not settled yet, least recently moved first.
-- Partial, so it holds only the photos in flight however many are done.
CREATE INDEX photos_unsettled_by_updated ON photos (updated_at, id)
    WHERE processing_status IN ('pending', 'processing');

CREATE TABLE photo_detections (
    id          BIGSERIAL PRIMARY KEY,
    photo_id    BIGINT NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    -- The digits as printed, leading zeros kept.
    number      TEXT NOT NULL,
    confidence  REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    box_x       INTEGER NOT NULL,
    box_y       INTEGER NOT NULL,
    box_width   INTEGER NOT NULL,
    box_height  INTEGER NOT NULL
);
-- Search by bib.
CREATE INDEX photo_detections_by_number ON photo_detections (number, photo_id);
CREATE INDEX photo_detections_by_photo ON photo_detections (photo_id);
