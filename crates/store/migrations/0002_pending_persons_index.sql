-- The QR reconciler's scan: persons still pending, oldest first. Partial, so it
-- holds only the few rows in flight, however many persons are ready.
CREATE INDEX persons_pending_by_created ON persons (created_at, id)
    WHERE qr_status = 'pending';
