-- The lists of the API (`store::lists`) page newest first by id (a batch's
-- photos in upload order), a filter's rows only. A filter value few rows have
-- is read as a range of one of these indexes from the cursor's id on, so a
-- page costs its rows however many there are; a value most rows have is read
-- along the primary key (the planner picks per value). Unfiltered lists read
-- the primary key; users by number or Wispro id are few, through
-- users_by_id_number_key and the unique id_wispro. `IF NOT EXISTS`: on a large
-- table an operator builds them `CONCURRENTLY` beforehand under these names
-- (docs/operations.md).
CREATE INDEX IF NOT EXISTS persons_by_qr_status ON persons (qr_status, id);
CREATE INDEX IF NOT EXISTS companies_by_context_status ON companies (context_status, id);
CREATE INDEX IF NOT EXISTS payments_by_status ON payments (status, id);
-- `needs_operator=true` reads payments_flagged (0012); `false` is nearly every
-- payment, so the primary key read newest first finds its rows at once.
-- A batch's photos, all or by status. The second replaces photos_by_batch
-- (batch_id, processing_status), of which it is an extension: the batch's
-- progress counts read it as they read that one.
CREATE INDEX IF NOT EXISTS photos_by_batch_id ON photos (batch_id, id);
CREATE INDEX IF NOT EXISTS photos_by_batch_status ON photos (batch_id, processing_status, id);
DROP INDEX IF EXISTS photos_by_batch;
