-- The remote's work as functions, called by both of thrift's paths to it: the Postgres
-- protocol (psycopg: `SELECT thrift_pull(...)`) and Supabase's REST API (PostgREST:
-- `POST /rest/v1/rpc/thrift_pull`), so the conflict rules and the change window live
-- here once. Every function runs as its caller (SECURITY INVOKER): row-level security
-- holds inside, and each one also names the caller's tenant in its own WHERE, so a
-- role that bypasses RLS (Supabase's service_role key) still sees one tenant only.
-- Under PostgREST each call is one transaction.

-- Who is asking, and what this remote is: the client checks both before it syncs.
CREATE FUNCTION thrift_session() RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'tenant', thrift_tenant(),
        'schema', (SELECT max(name) FROM thrift_migrations),
        'model', (SELECT value FROM thrift_meta WHERE key = 'embedding_model'),
        'database', current_database(),
        'port', inet_server_port())
$$;

CREATE FUNCTION thrift_snapshot() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT pg_current_snapshot()::text
$$;

-- thrift_tenant(), or an error a client turns into one line.
CREATE FUNCTION thrift_caller() RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    me text := thrift_tenant();
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'the remote does not know this API key, or it was revoked'
            USING ERRCODE = '28000';
    END IF;
    RETURN me;
END
$$;

-- `thrift remote status` over REST: the caller's row counts.
CREATE FUNCTION thrift_status() RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'schema', (SELECT max(name) FROM thrift_migrations),
        'tenant', thrift_caller(),
        'entries', count(*) FILTER (WHERE deleted_at IS NULL),
        'tombstones', count(*) FILTER (WHERE deleted_at IS NOT NULL),
        'namespaces', count(DISTINCT namespace) FILTER (WHERE deleted_at IS NULL))
    FROM cache_entries WHERE api_key = (SELECT thrift_caller())
$$;

-- A push batch is staged in two temporary tables (COPY fills them on the Postgres path,
-- thrift_push on the REST path), then applied by thrift_apply_push in the same transaction.
CREATE FUNCTION thrift_stage_push() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS sync_push (
        id text, query text, response text, embedding vector(384), created_at timestamptz,
        last_hit_at timestamptz, hit_delta int4, namespace text, question_hash text,
        expires_at timestamptz) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS sync_forget (
        id text, query text, namespace text, question_hash text, deleted_at timestamptz)
        ON COMMIT DROP;
END
$$;

-- The conflict rules (README, "thrift sync"): one entry per (tenant, question hash); hit
-- counts add what each side counted since its last push; of two answers the newer write
-- wins (ties by id, as the mirror's `newer`); a tombstone wins over an older write, and a
-- write newer than the tombstone brings the entry back. A forget keeps the row as a
-- tombstone (answer and vector dropped) so every mirror deletes its copy; a question never
-- pushed gets a tombstone too, so a mirror pushing an older answer later loses to it.
-- Rows are written in question-hash order: concurrent pushes lock in one order and
-- cannot deadlock.
-- Whether an incoming write beats the row there: newer than the live row (ties by id, as
-- the mirror's `newer`), or newer than the row's tombstone.
CREATE FUNCTION thrift_wins(new_created timestamptz, new_id uuid, old_created timestamptz, old_id uuid,
                            old_deleted timestamptz) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN old_deleted IS NULL THEN (new_created, new_id::text) > (old_created, old_id::text)
                ELSE new_created > old_deleted END
$$;

CREATE FUNCTION thrift_apply_push() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me text := thrift_caller();
BEGIN
    INSERT INTO cache_entries AS e (id, api_key, query, response, embedding, created_at,
                                    last_hit_at, hit_count, namespace, question_hash, expires_at)
    SELECT CASE WHEN p.id ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN p.id::uuid
                ELSE gen_random_uuid() END,
           me, p.query, p.response, p.embedding, p.created_at, p.last_hit_at, p.hit_delta,
           p.namespace, p.question_hash, p.expires_at
    FROM pg_temp.sync_push p ORDER BY p.question_hash
    ON CONFLICT (api_key, question_hash) DO UPDATE SET
        hit_count   = e.hit_count + EXCLUDED.hit_count,  -- the hits counted there since its last push
        last_hit_at = greatest(e.last_hit_at, EXCLUDED.last_hit_at),
        id          = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.id ELSE e.id END,
        query       = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.query ELSE e.query END,
        response    = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.response ELSE e.response END,
        embedding   = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.embedding ELSE e.embedding END,
        expires_at  = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.expires_at ELSE e.expires_at END,
        deleted_at  = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN NULL ELSE e.deleted_at END,
        created_at  = CASE WHEN thrift_wins(EXCLUDED.created_at, EXCLUDED.id, e.created_at, e.id, e.deleted_at)
                           THEN EXCLUDED.created_at ELSE e.created_at END;

    INSERT INTO cache_entries AS e (id, api_key, query, response, embedding, created_at,
                                    namespace, question_hash, deleted_at)
    SELECT CASE WHEN g.id ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN g.id::uuid
                ELSE gen_random_uuid() END,
           me, g.query, '', NULL, g.deleted_at, g.namespace, g.question_hash, g.deleted_at
    FROM pg_temp.sync_forget g ORDER BY g.question_hash
    ON CONFLICT (api_key, question_hash) DO UPDATE SET
        deleted_at = EXCLUDED.deleted_at, response = '', embedding = NULL
    WHERE (e.deleted_at IS NULL AND e.created_at <= EXCLUDED.deleted_at)
       OR (e.deleted_at IS NOT NULL AND e.deleted_at < EXCLUDED.deleted_at);
END
$$;

-- The REST path's push: one batch in one call, so in one transaction. Idempotent by its
-- batch id: the id goes into the push ledger first, and a batch sent again (a sync that
-- was killed, or timed out, before it learned the outcome sends it again with the same
-- id) finds it there and changes nothing, so hit deltas count once. A second copy sent
-- while the first is still running waits on the ledger row, then finds it.
-- p_entries: [{id, query, response, embedding: "[...]", created_at, last_hit_at,
-- hit_delta, namespace, question_hash, expires_at}]; p_forgets: [{id, query, namespace,
-- question_hash, deleted_at}]. Returns {"applied": bool}.
CREATE FUNCTION thrift_push(p_batch_id uuid, p_entries json DEFAULT '[]', p_forgets json DEFAULT '[]')
RETURNS json LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    me text := thrift_caller();
BEGIN
    INSERT INTO sync_pushes (api_key, batch_id) VALUES (me, p_batch_id) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN json_build_object('applied', false);
    END IF;
    -- Ledger rows outlive any copy of their batch still on its way (a statement timeout
    -- ends one long before a day), then go.
    DELETE FROM sync_pushes WHERE api_key = me AND pushed_at < now() - interval '1 day';
    PERFORM thrift_stage_push();
    INSERT INTO pg_temp.sync_push
    SELECT * FROM json_to_recordset(p_entries) AS r(
        id text, query text, response text, embedding vector(384), created_at timestamptz,
        last_hit_at timestamptz, hit_delta int4, namespace text, question_hash text,
        expires_at timestamptz);
    INSERT INTO pg_temp.sync_forget
    SELECT * FROM json_to_recordset(p_forgets) AS r(
        id text, query text, namespace text, question_hash text, deleted_at timestamptz);
    PERFORM thrift_apply_push();
    RETURN json_build_object('applied', true);
END
$$;

-- The change window of a pull: the caller's rows whose last change is visible in the
-- snapshot p_target but was not in p_cursor (NULL: every row), after the row
-- (p_after_xid, p_after_id) in (changed_xid, id) order. A transaction still running when
-- the cursor's snapshot was taken is in that snapshot's in-progress list, so it is pulled
-- once it commits, however many younger ones committed before it.
CREATE FUNCTION thrift_pull(
    p_cursor text,
    p_target text,
    p_after_xid text DEFAULT '0',
    p_after_id uuid DEFAULT '00000000-0000-0000-0000-000000000000',
    p_limit integer DEFAULT 1000
) RETURNS TABLE (
    id text, query text, response text, embedding vector(384), created_at timestamptz,
    last_hit_at timestamptz, hit_count integer, namespace text, question_hash text,
    expires_at timestamptz, deleted_at timestamptz, changed_xid text
) LANGUAGE sql STABLE AS $$
    SELECT e.id::text, e.query, e.response, e.embedding, e.created_at, e.last_hit_at, e.hit_count,
           e.namespace, e.question_hash, e.expires_at, e.deleted_at, e.changed_xid::text
    FROM cache_entries e
    WHERE e.api_key = (SELECT thrift_caller())
      AND e.changed_xid < pg_snapshot_xmax(p_target::pg_snapshot)
      AND pg_visible_in_snapshot(e.changed_xid, p_target::pg_snapshot)
      AND (p_cursor IS NULL
           OR (e.changed_xid >= pg_snapshot_xmin(p_cursor::pg_snapshot)
               AND NOT pg_visible_in_snapshot(e.changed_xid, p_cursor::pg_snapshot)))
      AND (e.changed_xid, e.id) > (p_after_xid::xid8, p_after_id)
    ORDER BY e.changed_xid, e.id
    LIMIT p_limit
$$;

-- How many rows a pull would read now (thrift sync --dry-run, the progress bar).
CREATE FUNCTION thrift_count_changes(p_cursor text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM cache_entries e
    WHERE e.api_key = (SELECT thrift_caller())
      AND (p_cursor IS NULL
           OR (e.changed_xid >= pg_snapshot_xmin(p_cursor::pg_snapshot)
               AND NOT pg_visible_in_snapshot(e.changed_xid, p_cursor::pg_snapshot)))
$$;

-- Whether a push batch is in (the Postgres path asks after an interrupted sync), and its
-- ledger row dropped once the mirror has finished it.
CREATE FUNCTION thrift_pushed(p_batch_id uuid) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM sync_pushes WHERE api_key = (SELECT thrift_caller())
                   AND batch_id = p_batch_id)
$$;

-- The remote tier's exact lookup: the caller's live entry for a question hash.
CREATE FUNCTION thrift_lookup(p_question_hash text) RETURNS TABLE (
    id uuid, namespace text, query text, question_hash text, response text,
    created_at timestamptz, last_hit_at timestamptz, hit_count integer,
    expires_at timestamptz, embedding vector(384)
) LANGUAGE sql STABLE AS $$
    SELECT e.id, e.namespace, e.query, e.question_hash, e.response, e.created_at, e.last_hit_at,
           e.hit_count, e.expires_at, e.embedding
    FROM cache_entries e
    WHERE e.api_key = (SELECT thrift_caller()) AND e.question_hash = p_question_hash
      AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
$$;

GRANT EXECUTE ON FUNCTION thrift_session, thrift_status, thrift_wins, thrift_snapshot, thrift_caller, thrift_stage_push,
    thrift_apply_push, thrift_push, thrift_pull, thrift_count_changes, thrift_pushed, thrift_lookup
    TO thrift_client, thrift_admin;

-- Supabase: PostgREST runs a request as `anon` (the anon / publishable key) or
-- `authenticated`, roles made NOINHERIT there (membership of thrift_client would give them
-- nothing): they get a thrift client's rights themselves. The API key in the x-api-key
-- header still chooses the tenant, under row-level security. `thrift remote init` calls
-- this on every run, so a role made after the first init gets its rights at the next.
CREATE FUNCTION thrift_grant_api_roles() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO %I', r);
            EXECUTE format('GRANT SELECT, INSERT, DELETE ON sync_pushes TO %I', r);
            EXECUTE format('GRANT SELECT ON api_keys, thrift_meta, thrift_migrations TO %I', r);
            EXECUTE format('GRANT EXECUTE ON FUNCTION thrift_tenant, thrift_key_hash, match_cache_entries, '
                           'thrift_session, thrift_status, thrift_wins, thrift_snapshot, thrift_caller, '
                           'thrift_stage_push, thrift_apply_push, thrift_push, thrift_pull, '
                           'thrift_count_changes, thrift_pushed, thrift_lookup TO %I', r);
        END IF;
    END LOOP;
END
$$;

REVOKE EXECUTE ON FUNCTION thrift_grant_api_roles FROM PUBLIC;

-- PostgREST caches the schema: tell it about the new functions.
NOTIFY pgrst, 'reload schema';
