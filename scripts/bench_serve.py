"""`thrift serve` under load: 50 clients doing lookups against a 10,000-entry cache.

    python scripts/bench_serve.py [--clients 50] [--seconds 60] [--entries 10000]
                                  [--workers N] [--home DIR] [--json FILE]

Loopback only, bounded in time. The cache: the first question of `--entries` Quora pairs
(../shared/data/qqp_dev_sample.tsv), each with a made-up answer, stored through the API
(`SemanticCache.store_many`) in a fresh THRIFT_HOME (kept in `--home` between runs). The
lookups, in a fixed shuffled order, are a third each: a stored question (an exact hit, no
model), the other question of a stored pair (a paraphrase or a near miss: the model and
the vectors), and a question of the data set that is not stored (a miss, the same work).
Each text is asked once (no vector is reused).

Two servers are measured in the same run, one after the other, each a real `thrift serve`
(uvicorn) on a loopback port: the baseline, one worker process answering one request at a
time on one connection, each lookup embedded alone (`--workers 1 --serial`), and the
default (`--workers` one per core, a thread pool, embeds batched; engine.py). The
clients are asyncio tasks of this one process, each with one keep-alive HTTP/1.1
connection, sending a lookup as soon as the last one answered. Each
run warms up for 3 s (not counted), then counts for `--seconds`: lookups answered per
second, p50 and p99 latency (send to last byte), and errors (any status but 200, or a
broken connection); then the same by how each lookup ended (exact, semantic, miss).
The clients share the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from loopback import HOST  # noqa: E402
from serve_servers import ServeServer  # noqa: E402

KEY = "bench-admin-key-0123456789abcdef"
DATA = ROOT.parent / "shared" / "data" / "qqp_dev_sample.tsv"
WARM_UP_S = 3.0


def pairs(entries: int) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(stored (question, answer)), paraphrases of stored questions, unstored questions."""
    with open(DATA, encoding="utf-8") as f:
        rows = [
            (r["question1"].strip(), r["question2"].strip())
            for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    seen: set[str] = set()
    unique = []
    for q1, q2 in rows:
        if q1 and q2 and q1 not in seen and q2 not in seen:
            seen.update((q1, q2))
            unique.append((q1, q2))
    stored, rest = unique[:entries], unique[entries:]
    answers = [(q1, f"Answer {i}: what we know about '{q1[:40]}'.") for i, (q1, _q2) in enumerate(stored)]
    return answers, [q2 for _q1, q2 in stored], [q1 for q1, _q2 in rest]


def build(home: Path, entries: int) -> None:
    from thrift_cli.cache import SemanticCache

    marker = home / f"bench-serve-{entries}.done"
    if marker.exists():
        return
    stored, _, _ = pairs(entries)
    started = time.perf_counter()
    with SemanticCache(home=home, shared=(), scrub=False) as cache:
        cache.store_many(stored)
    marker.write_text("ok")
    print(f"built {len(stored):,} entries in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def workload(entries: int) -> list[bytes]:
    """Every stored question, every paraphrase and as many unstored questions, once each,
    shuffled: no text repeats within a run (so no vector is reused, engine.py)."""
    stored, near, unstored = pairs(entries)
    questions = [q for q, _ in stored] + near + unstored[: len(near)]
    random.Random(7).shuffle(questions)
    return [json.dumps({"query": q}).encode() for q in questions]


def request(body: bytes) -> bytes:
    return (
        f"POST /lookup HTTP/1.1\r\nHost: {HOST}\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def client(
    port: int, bodies: list[bytes], start: int, clients: int, until: float, counted_from: float, out: dict
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    i = start
    try:
        while time.perf_counter() < until:
            body = bodies[i % len(bodies)]
            i += clients
            sent = time.perf_counter()
            try:
                writer.write(request(body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                answer = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
                if sent >= counted_from:
                    out["errors"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            done = time.perf_counter()
            if sent >= counted_from:
                ms = (done - sent) * 1000.0
                out["latencies"].append(ms)
                if status != 200:
                    out["errors"] += 1
                else:
                    out["by_tier"].setdefault(json.loads(answer)["tier"] or "miss", []).append(ms)
    finally:
        writer.close()


async def load(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    out: dict = {"latencies": [], "errors": 0, "by_tier": {}}
    counted_from = time.perf_counter() + WARM_UP_S
    until = counted_from + seconds
    await asyncio.gather(
        *(client(port, bodies, c, clients, until, counted_from, out) for c in range(clients))
    )
    lat = sorted(out["latencies"])
    return {
        "lookups": len(lat),
        "per_second": len(lat) / seconds,
        "p50_ms": statistics.median(lat) if lat else None,
        "p99_ms": lat[int(0.99 * (len(lat) - 1))] if lat else None,
        "errors": out["errors"],
        "by_tier": {tier: percentiles(ms) for tier, ms in sorted(out["by_tier"].items())},
    }


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[int(0.99 * (len(ordered) - 1))],
    }


def serve(home: Path, workers: int, batch: bool) -> ServeServer:
    """A real `thrift serve` (tests/serve_servers.py), warmed up."""
    server = ServeServer.start(
        home,
        key=KEY,
        workers=workers,
        extra=() if batch else ("--serial",),
        env={"THRIFT_SCRUB": "false", "PYTHONPATH": str(ROOT)},
    )
    # Every worker loads its model and vectors on its first lookups: ask until all have.
    warm = json.dumps({"query": "warm up the model and the vectors"}).encode()
    for _ in range(20 * workers):
        req = urllib.request.Request(
            f"{server.url}/lookup",
            data=warm,
            method="POST",
            headers={"X-API-Key": KEY, "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=30).read()
    return server


def measure(home: Path, bodies: list[bytes], clients: int, seconds: float, workers: int, batch: bool) -> dict:
    with serve(home, workers, batch) as server:
        result = asyncio.run(load(server.port, bodies, clients, seconds))
    return {"workers": workers, "batch": batch, **result}


def main() -> int:
    from thrift_cli.server.command import default_workers

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    build(home, args.entries)
    bodies = workload(args.entries)
    rows = [
        (
            "baseline: 1 worker, 1 request at a time",
            measure(home, bodies, args.clients, args.seconds, 1, False),
        ),
        (
            f"thrift serve: {args.workers} workers, batched embeds",
            measure(home, bodies, args.clients, args.seconds, args.workers, True),
        ),
    ]
    base = rows[0][1]["per_second"]
    print(
        f"\n{args.clients} clients, {args.seconds:.0f} s each, {args.entries:,} entries; "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    print("| server | lookups/s | vs baseline | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['per_second']:,.0f} | {r['per_second'] / base:.2f}x | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} |"
        )
    print("\n| server | lookup ended | n | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|")
    for name, r in rows:
        for tier, p in r["by_tier"].items():
            print(f"| {name} | {tier} | {p['n']:,} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps([{"server": n, **r} for n, r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
