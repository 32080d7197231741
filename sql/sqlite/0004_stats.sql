-- What `thrift stats` (thrift_cli/stats.py) needs beyond the events table.

-- The size of the question asked, for the tokens a hit saved (the prompt is sent as well
-- as the answer received); NULL on the events recorded before it.
ALTER TABLE events ADD COLUMN question_bytes INTEGER;

-- The candidates a false-hit guard refused, one row each, with the pair itself: the
-- question asked and the stored question it was not served. Written in the transaction
-- of the lookup's event (event_id), so `thrift stats` can list the vetoed pairs.
CREATE TABLE vetoes (
    id         INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL,                   -- events.id of the lookup
    at         REAL    NOT NULL,                   -- unix seconds, as the event's
    namespace  TEXT    NOT NULL,
    question   TEXT    NOT NULL,                   -- the question asked
    candidate  TEXT    NOT NULL,                   -- the stored question refused
    similarity REAL    NOT NULL,
    guard      TEXT    NOT NULL                    -- which guard: numbers, word order...
);

CREATE INDEX vetoes_at ON vetoes (at);

-- Time saved joins each hit to the miss whose call stored the entry it served: this
-- finds that miss by entry id without a scan of every event.
CREATE INDEX events_stored_entry ON events (entry_id, call_ms) WHERE tier = 'miss' AND outcome = 'stored';

-- Covering indexes for `thrift stats` on a large file (scripts/bench_stats.py: 100,000
-- entries, 1,000,000 events): the hits grouped by the entry they served, and the misses
-- by outcome, are read from these alone, in their order, without a sort or a table scan.
-- They cost file space (that file: 377 MB without them, 476 MB with) and one more
-- index write per event (a stored miss: two, with events_stored_entry).
CREATE INDEX events_hits ON events (entry_id, tier, source, latency_ms, answer_bytes, question_bytes, at, namespace)
    WHERE tier IN ('exact', 'semantic');
CREATE INDEX events_misses ON events (outcome, namespace, call_ms, latency_ms, at) WHERE tier = 'miss';
