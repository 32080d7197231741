"""The remote's schema and keys against a real PostgreSQL 18 + pgvector: `thrift remote
init/status/key`, and row-level security as a non-superuser, through SQL and the RPC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import thrift_client_role
from pg_servers import connect
from redis_servers import closed_port

from thrift_cli import remote_db

DIM = 384


# Every file in sql/postgres/, in order: what `thrift remote init` applies to a new remote.
MIGRATIONS = sorted(p.stem for p in (Path(__file__).parent.parent / "sql" / "postgres").glob("*.sql"))


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


@pytest.fixture
def remote(pg_database, pg_server, thrift):
    """An initialised remote: (superuser dsn, a client role's dsn)."""
    ran = thrift("remote", "init")
    assert ran.code == 0, ran.stderr
    return pg_database, thrift_client_role(pg_server, pg_database)


def new_key(thrift, email="dev@example.com", *extra):
    ran = thrift("remote", "key", "create", email, *extra)
    assert ran.code == 0, ran.stderr
    key = ran.stdout.decode().strip()
    assert key.startswith("sc_") and len(key) > 30
    return key


def test_init_applies_the_schema_once_and_records_it(pg_database, thrift):
    first = thrift("remote", "init", "--json")
    assert first.code == 0, first.stderr
    assert __import__("json").loads(first.stdout)["applied"] == MIGRATIONS
    again = thrift("remote", "init")
    assert again.code == 0 and f"up to date, schema {MIGRATIONS[-1]}" in again.stdout.decode()
    with connect(pg_database) as conn:
        assert conn.execute("SELECT name FROM thrift_migrations ORDER BY name").fetchall() == [
            (name,) for name in MIGRATIONS
        ]
        forced = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname IN ('cache_entries', 'api_keys') ORDER BY relname"
        ).fetchall()
        assert forced == [("api_keys", True, True), ("cache_entries", True, True)]
        indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'cache_entries'").fetchall()
        assert any("hnsw" in d and "halfvec(384)" in d and "halfvec_cosine_ops" in d for (d,) in indexes)


def test_keys_are_stored_as_hashes_only(remote, thrift):
    admin, _ = remote
    key = new_key(thrift)
    with connect(admin) as conn:
        rows = conn.execute("SELECT key_hash, tenant, email FROM api_keys").fetchall()
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM api_keys t").fetchone()[0]
    assert rows == [(remote_db.key_hash(key), remote_db.tenant_of_key(key), "dev@example.com")]
    assert key not in dump and key[3:] not in dump


def test_status_reports_the_tenant_counts_and_round_trip(remote, thrift):
    admin, client = remote
    key = new_key(thrift)
    env = {"DATABASE_URL": client, "THRIFT_API_KEY": key}
    ran = thrift("remote", "status", "--json", env=env)
    assert ran.code == 0, ran.stderr
    report = __import__("json").loads(ran.stdout)
    assert (report["schema"], report["tenant"], report["entries"]) == (
        MIGRATIONS[-1],
        remote_db.tenant_of_key(key),
        0,
    )
    assert report["rtt_ms"] > 0
    assert "password" not in report["remote"]


def test_an_unknown_or_revoked_key_is_one_clear_line(remote, thrift):
    _, client = remote
    key = new_key(thrift)
    unknown = thrift("remote", "status", env={"DATABASE_URL": client, "THRIFT_API_KEY": "sc_not_a_key"})
    assert unknown.code == 1 and unknown.stderr.count("\n") == 1
    assert "does not know this API key, or it was revoked" in unknown.stderr
    assert thrift("remote", "key", "revoke", key).code == 0
    assert thrift("remote", "key", "revoke", key).code == 3  # already revoked
    revoked = thrift("remote", "status", env={"DATABASE_URL": client, "THRIFT_API_KEY": key})
    assert revoked.code == 1 and "revoked" in revoked.stderr and "Traceback" not in revoked.stderr


def test_no_remote_and_an_unreachable_remote(thrift):
    missing = thrift("remote", "status")
    assert missing.code == 2 and "no remote" in missing.stderr
    down = thrift(
        "remote", "init", env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/x"}
    )
    assert down.code == 1 and down.stderr.startswith("thrift: cannot reach the remote at")
    assert down.stderr.count("\n") == 1


def test_a_remote_of_another_embedding_model_is_refused(pg_database, thrift):
    assert thrift("remote", "init").code == 0
    with connect(pg_database, autocommit=True) as conn:
        conn.execute("UPDATE thrift_meta SET value = 'some/other-model/768' WHERE key = 'embedding_model'")
    ran = thrift("remote", "init")
    assert ran.code == 1 and "vectors come from some/other-model/768" in ran.stderr


def _insert(conn, tenant: str, question_hash: str, i: int) -> None:
    conn.execute(
        "INSERT INTO cache_entries (api_key, query, response, embedding, namespace, question_hash) "
        "VALUES (%s, %s, %s, %s, 'ns', %s)",
        (tenant, f"question {i}", f"answer {i}", unit(i), question_hash),
    )


def test_row_level_security_keeps_tenants_apart(remote, thrift):
    """As a non-superuser: tenant A cannot read, count, update or delete B's rows, through
    SQL or the RPC, and cannot write rows in B's name."""
    _, client = remote
    key_a, key_b = new_key(thrift, "a@example.com"), new_key(thrift, "b@example.com")
    tenant_a, tenant_b = remote_db.tenant_of_key(key_a), remote_db.tenant_of_key(key_b)
    with remote_db.connect(client, key_b) as b:
        assert remote_db.tenant(b) == tenant_b
        _insert(b, tenant_b, "v1:b", 1)
    with remote_db.connect(client, key_a) as a:
        _insert(a, tenant_a, "v1:a", 2)
        assert a.execute("SELECT api_key FROM cache_entries").fetchall() == [(tenant_a,)]
        assert a.execute("SELECT count(*) FROM cache_entries WHERE api_key = %s", (tenant_b,)).fetchone() == (
            0,
        )
        assert (
            a.execute("UPDATE cache_entries SET response = 'pwned' WHERE api_key = %s", (tenant_b,)).rowcount
            == 0
        )
        assert a.execute("DELETE FROM cache_entries WHERE api_key = %s", (tenant_b,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _insert(a, tenant_b, "v1:forged", 3)  # WITH CHECK: not in another tenant's name
        # The RPC runs as the caller: B's vector is nearest, but A is shown its own only.
        matches = a.execute("SELECT query FROM match_cache_entries(%s, 0.0, 10, 'ns')", (unit(1),)).fetchall()
        assert matches == [("question 2",)]
        assert a.execute("SELECT tenant FROM api_keys").fetchall() == [(tenant_a,)]  # its own key only
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.execute("INSERT INTO api_keys (key_hash, tenant) VALUES ('\\x00', 'mine')")
    with remote_db.connect(client, key_b) as b:
        assert b.execute("SELECT query, response FROM cache_entries").fetchall() == [
            ("question 1", "answer 1")
        ]
    with remote_db.connect(client) as nobody:  # no key: nothing at all
        assert nobody.execute("SELECT count(*) FROM cache_entries").fetchone() == (0,)


def test_the_rpc_finds_the_nearest_above_the_threshold_through_hnsw(remote, thrift):
    _, client = remote
    key = new_key(thrift)
    tenant = remote_db.tenant_of_key(key)
    with remote_db.connect(client, key) as conn:
        for i in range(50):
            _insert(conn, tenant, f"v1:{i}", i)
        conn.execute("UPDATE cache_entries SET deleted_at = now() WHERE question_hash = 'v1:7'")
        best = conn.execute(
            "SELECT query, similarity FROM match_cache_entries(%s, 0.9, 3, 'ns')", (unit(3),)
        ).fetchall()
        assert best == [("question 3", pytest.approx(1.0))]
        assert conn.execute(
            "SELECT count(*) FROM match_cache_entries(%s, 0.9, 3, 'ns')", (unit(7),)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM match_cache_entries(%s, 0.9, 3, 'other')", (unit(3),)
        ).fetchone() == (0,)
        with conn.transaction():
            # 50 rows: the planner would rather scan and sort, or use the tenant's btree.
            for plan_setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.execute(f"SET LOCAL {plan_setting} = off")
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    # match_cache_entries' order, as the halfvec index holds it
                    "EXPLAIN SELECT id FROM cache_entries WHERE deleted_at IS NULL "
                    "ORDER BY embedding::halfvec(384) <=> %s::vector(384)::halfvec(384) LIMIT 5",
                    (unit(3),),
                )
            )
    assert "cache_entries_embedding_idx" in plan


THRIFTLM_SCHEMA = """
CREATE TABLE cache_entries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    api_key TEXT NOT NULL,
    query TEXT NOT NULL,
    response TEXT NOT NULL,
    embedding VECTOR(384) NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now(),
    last_hit_at TIMESTAMPTZ,
    hit_count INTEGER DEFAULT 0
);
CREATE INDEX cache_entries_embedding_idx ON cache_entries USING hnsw (embedding vector_cosine_ops);
CREATE FUNCTION match_cache_entries(query_embedding vector(384), match_threshold float, match_count int,
                                    p_api_key text)
RETURNS TABLE (id uuid, response text, similarity float) LANGUAGE sql AS $$
    SELECT id, response, 1 - (embedding <=> query_embedding) FROM cache_entries
    WHERE api_key = p_api_key ORDER BY embedding <=> query_embedding LIMIT match_count
$$;
"""


def test_a_thriftlm_database_is_adopted_in_place(pg_database, pg_server, thrift, fake_llm, tmp_path):
    """ThriftLM's table (the schema from its PyPI description), two users' keys, a
    duplicate question: adopted, every answer and embedding kept, keys hashed, and
    `thrift ask --remote` with the same key serves the old answers."""
    from thrift_cli.embed import default_embedder

    questions = ["How do I learn to code quickly?", "What is a vector database?", "Why is the sky blue?"]
    vectors = default_embedder().embed(questions)
    with connect(pg_database, autocommit=True) as conn:
        conn.execute(THRIFTLM_SCHEMA)
        from pgvector.psycopg import register_vector

        register_vector(conn)
        rows = [
            ("user-key-alice", questions[0], "Practice every day.", vectors[0], "2026-01-01"),
            ("user-key-alice", questions[1], "A store of embeddings.", vectors[1], "2026-01-02"),
            ("user-key-bob", questions[0], "Bob's answer.", vectors[0], "2026-01-03"),
            ("user-key-bob", questions[2], "Rayleigh scattering (old).", vectors[2], "2026-01-04"),
            (
                "user-key-bob",
                questions[2] + " ",
                "Rayleigh scattering.",
                vectors[2],
                "2026-01-05",
            ),  # a duplicate
        ]
        for key, q, a, v, at in rows:
            conn.execute(
                "INSERT INTO cache_entries (api_key, query, response, embedding, created_at, hit_count) "
                "VALUES (%s, %s, %s, %s, %s, 2)",
                (key, q, a, v, at),
            )
        before = dict(conn.execute("SELECT id::text, embedding::text FROM cache_entries").fetchall())
    plain = thrift("remote", "init")
    assert plain.code == 2 and "--adopt --namespace" in plain.stderr  # never clobbered by a plain init
    ran = thrift("remote", "init", "--adopt", "--namespace", "support", "--json")
    assert ran.code == 0, ran.stderr
    report = __import__("json").loads(ran.stdout)
    assert (report["rows"], report["entries"], report["tenants"]) == (5, 4, 2)
    with connect(pg_database) as conn:
        after = dict(conn.execute("SELECT id::text, embedding::text FROM cache_entries").fetchall())
        assert all(before[i] == v for i, v in after.items())  # ids and embeddings kept, byte for byte
        assert conn.execute(
            "SELECT count(*) FROM cache_entries WHERE api_key LIKE 'user-key-%'"
        ).fetchone() == (0,)
        dup = conn.execute("SELECT response, hit_count FROM cache_entries WHERE query LIKE 'Why%'").fetchall()
        assert dup == [("Rayleigh scattering.", 4)]  # the newest answer, the hits added up
        assert conn.execute("SELECT to_regclass('thriftlm_cache_entries')").fetchone() == (None,)
        names = {r[0] for r in conn.execute("SELECT name FROM thrift_migrations")}
        assert names == set(MIGRATIONS)
    assert thrift("remote", "init").stdout.decode().endswith(f"up to date, schema {MIGRATIONS[-1]}\n")
    # Alice's ThriftLM key is her thrift key: her old answer is served through the remote.
    client = thrift_client_role(pg_server, pg_database)
    env = {"DATABASE_URL": client, "THRIFT_API_KEY": "user-key-alice"}
    hit = thrift(
        "ask", "--json", "--remote", "-n", "support", questions[0], "--", *fake_llm.command(), env=env
    )
    assert hit.code == 0 and hit.stdout == b"Practice every day." and hit.report["source"] == "remote"
    bob = thrift(
        "ask",
        "--json",
        "--remote",
        "-n",
        "support",
        questions[0],
        "--",
        *fake_llm.command(),
        env={**env, "THRIFT_API_KEY": "user-key-bob", "THRIFT_HOME": str(tmp_path / "bob")},
    )
    assert bob.stdout == b"Bob's answer." and fake_llm.calls == []
