-- What the live feed of `thrift top` (and `thrift serve`) shows for each lookup: the
-- question asked. Kept only where no entry holds it: on semantic hits (the entry holds the
-- paraphrase it matched) and on misses that stored nothing (failed, timed out,
-- lookup-only). Exact hits and stored misses read it from their entry (events.entry_id).
-- NULL on the events recorded before it.
ALTER TABLE events ADD COLUMN question TEXT;
