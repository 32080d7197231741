-- thrift's local store, first version. Applied migrations are never edited: add a new,
-- higher-numbered file instead.

-- One row per cached answer. `rowid` links an entry to its vector in entry_vectors.
CREATE TABLE entries (
    rowid         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: in-memory indexes key on it
    id            TEXT    NOT NULL UNIQUE,          -- UUID, stable across machines
    namespace     TEXT    NOT NULL,
    question      TEXT    NOT NULL,
    question_hash TEXT    NOT NULL UNIQUE,          -- exact key: v1:blake2b(namespace, normalized question)
    answer        TEXT    NOT NULL,
    embedding     BLOB    NOT NULL,                 -- little-endian float32[384], source of truth for the index
    created_at    REAL    NOT NULL,                 -- unix seconds
    last_hit_at   REAL,
    hit_count     INTEGER NOT NULL DEFAULT 0,
    expires_at    REAL                              -- NULL: never expires
);

CREATE INDEX entries_namespace ON entries (namespace);
CREATE INDEX entries_expires_at ON entries (expires_at) WHERE expires_at IS NOT NULL;

-- The semantic index on disk: exact cosine KNN by sqlite-vec, one partition a namespace.
-- chunk_size 64: each partition preallocates one chunk, and the default (1024 vectors,
-- 1.5 MB) made every new namespace cost 1.5 MB; scans measured no slower at 10k entries.
CREATE VIRTUAL TABLE entry_vectors USING vec0 (
    namespace TEXT PARTITION KEY,
    embedding float[384] distance_metric=cosine,
    chunk_size=64
);

-- One row per lookup, hit or miss: what `thrift stats` and `thrift top` read.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    at            REAL    NOT NULL,                 -- unix seconds
    namespace     TEXT    NOT NULL,
    tier          TEXT    NOT NULL,                 -- exact | semantic | miss
    similarity    REAL,                             -- of the served (or best rejected) candidate
    latency_ms    REAL    NOT NULL,                 -- lookup time, not the LLM call
    answer_bytes  INTEGER,                          -- size of the answer served or produced
    call_ms       REAL,                             -- how long the LLM command ran (misses)
    outcome       TEXT,                             -- miss: stored | not-stored | failed | lookup-only ...
    entry_id      TEXT,
    question_hash TEXT
);

CREATE INDEX events_at ON events (at);

-- Facts about this cache file, e.g. which embedding model wrote its vectors.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
