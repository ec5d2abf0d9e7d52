-- Why a photo failed, every time it did, oldest first: a photo retried from its
-- dead letter runs again (and `processing_error` is cleared once it
-- completes), but the earlier failures stay readable here.
ALTER TABLE photos ADD COLUMN error_history TEXT[] NOT NULL DEFAULT '{}';
