-- thrift sync's push ledger: one row per push batch, written in the batch's own
-- transaction. A sync killed before it learns whether its batch committed looks its batch
-- id up here: present, the batch (and its hit deltas) is in; absent, it never committed
-- and goes again. The transaction id alone cannot say so after a server crash: ids whose
-- transaction wrote no flushed WAL are handed out again.
CREATE TABLE sync_pushes (
    api_key   text NOT NULL DEFAULT thrift_tenant(),  -- the tenant, as in cache_entries
    batch_id  uuid NOT NULL,
    pushed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key, batch_id)
);

ALTER TABLE sync_pushes ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync_pushes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_pushes ON sync_pushes
    USING (api_key = (SELECT thrift_tenant()))
    WITH CHECK (api_key = (SELECT thrift_tenant()));

GRANT SELECT, INSERT, DELETE ON sync_pushes TO thrift_client, thrift_admin;
