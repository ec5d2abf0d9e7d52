-- One person, one user. A user is matched by its identity number normalised
-- into a key: the letter (V, E, J, G, P) if any, then the digits with leading
-- zeros stripped; spaces (the no-break space too, whatever the database's
-- locale), dots and dashes ignored. `V-12.345.678` and
-- `v 012345678` are `V12345678`, `12.345.678` is `12345678`, `J-30.123.456-7`
-- is `J301234567`; anything else (`N/A`, fewer than 5 or more than 10 digits)
-- has no key. The sync-worker computes the same key from a Wispro record
-- (`sync_worker::idnumber`; a test holds the two together).
CREATE FUNCTION identity_number_key(raw TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT m[1] || m[2]
    FROM (
        SELECT regexp_match(
            upper(regexp_replace(raw, '[ \t\n\r\f\v\u00a0.-]', '', 'g')),
            '^([VEJGP]?)0*([1-9][0-9]{4,9})$'
        ) AS m
    ) AS parsed
$$;

-- Generated, so that every writer keeps it (this platform, or a legacy
-- application writing `id_number` itself) and existing rows get it here, in
-- one statement whatever the table's size.
ALTER TABLE users
    ADD COLUMN id_number_key TEXT GENERATED ALWAYS AS (identity_number_key(id_number)) STORED;
CREATE INDEX users_by_id_number_key ON users (id_number_key);
-- The replaced system's suffix match merged different people; it is gone.
DROP INDEX users_by_reversed_id_number;

-- A run's passes over Wispro's pages. Customers added or removed in Wispro
-- during a pass shift its offset pages, so a pass that saw `total_records`
-- change is followed by another (up to `SYNC_MAX_PASSES`).
ALTER TABLE sync_runs
    -- The pass under way; `pages_done` counts its pages.
    ADD COLUMN pass INTEGER NOT NULL DEFAULT 1,
    -- `total_records` as the pass's first page gave it.
    ADD COLUMN pass_total_records BIGINT,
    -- Whether a later page of the pass gave another `total_records`.
    ADD COLUMN pass_changed BOOLEAN NOT NULL DEFAULT false;
