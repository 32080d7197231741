-- What the live feed of `thrift top` (and `thrift serve`) shows for each lookup: the
-- question asked. Kept only where no entry holds it: on semantic hits (the entry holds the
-- paraphrase it matched) and on misses that stored nothing (failed, timed out,
-- lookup-only). Exact hits and stored misses read it from their entry (events.entry_id).
-- NULL on the events recorded before it.
ALTER TABLE events ADD COLUMN question TEXT;

-- Counting the live entries of each namespace (`thrift stats`, the first frame of `thrift
-- top`) from an index alone: reading the table means reading every embedding (100,000
-- entries: 0.13 s; from this index: a few ms). It serves what entries_namespace served.
CREATE INDEX entries_namespace_expires ON entries (namespace, expires_at);
DROP INDEX entries_namespace;
