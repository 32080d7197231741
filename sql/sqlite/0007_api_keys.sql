-- `thrift serve`'s API keys (thrift_cli/server/auth.py): one row per key a tenant holds.
-- Only a SHA-256 of the key is kept, as on the remote (sql/postgres/0001): a copy of this
-- file lets nobody in. Each tenant's entries live in a file of their own,
-- $THRIFT_HOME/tenants/<tenant>/thrift.db; this table only says whose a key is.
CREATE TABLE api_keys (
    key_hash   BLOB PRIMARY KEY,                       -- sha256(key)
    tenant     TEXT NOT NULL,
    email      TEXT,
    created_at REAL NOT NULL,
    revoked_at REAL                                    -- a revoked key is no key at all
) WITHOUT ROWID;
