-- The lists of the API (`store::lists`) page newest first by id (a batch's
-- photos in upload order), a filter's rows only: each filtered list is a range
-- of one of these indexes, read from the cursor's id on, so a page costs its
-- rows however many there are. (Unfiltered lists read the primary key; users
-- by number or Wispro id are few, through users_by_id_number_key and the
-- unique id_wispro.)
CREATE INDEX persons_by_qr_status ON persons (qr_status, id);
CREATE INDEX companies_by_context_status ON companies (context_status, id);
CREATE INDEX payments_by_status ON payments (status, id);
-- `needs_operator=true` reads payments_flagged (0012); `false` is nearly every
-- payment, so the primary key read newest first finds its rows at once.
-- A batch's photos, all or by status. The second replaces photos_by_batch
-- (batch_id, processing_status), of which it is an extension: the batch's
-- progress counts read it as they read that one.
CREATE INDEX photos_by_batch_id ON photos (batch_id, id);
CREATE INDEX photos_by_batch_status ON photos (batch_id, processing_status, id);
DROP INDEX photos_by_batch;
