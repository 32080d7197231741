-- What `thrift sync` (sync/thrift_sync) needs to know about the local mirror.

-- 1 while the entry holds a local write the remote has not seen: every row the store
-- inserts (an answer, an import, a --refresh) starts dirty by this default, a row
-- pulled from the remote is written clean, and a push clears it, by rowid: a row
-- replaced meanwhile has a new rowid and stays dirty.
ALTER TABLE entries ADD COLUMN sync_dirty INTEGER NOT NULL DEFAULT 1;

-- The part of hit_count the remote already holds. hit_count - hits_synced is what this
-- machine counted since its last sync: a push adds it to the remote's count, a pull
-- sets hit_count to the remote's count plus it. Hits themselves (record_hit) touch only
-- hit_count, so the hot path is unchanged.
ALTER TABLE entries ADD COLUMN hits_synced INTEGER NOT NULL DEFAULT 0;

-- What the next push sends, found without a scan of every entry.
CREATE INDEX entries_unsynced ON entries (rowid) WHERE sync_dirty = 1 OR hit_count <> hits_synced;

-- A forgotten entry, kept until a push has told the remote, so a forget reaches every
-- mirror. Written by the store's deletes (never by expiry: expires_at travels itself).
CREATE TABLE sync_tombstones (
    question_hash TEXT PRIMARY KEY,
    id            TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    question      TEXT NOT NULL,
    deleted_at    REAL NOT NULL                     -- unix seconds
);

-- The sync's own progress: the pull cursor (the remote snapshot of the last completed
-- pull), a pull under way (its target snapshot and the last row applied), and a push
-- batch whose remote commit is not yet known to have happened.
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
