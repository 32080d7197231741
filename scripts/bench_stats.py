"""How long `thrift stats` takes on a large cache file: 100,000 entries, 1,000,000 events.

    python scripts/bench_stats.py [--entries 100000] [--events 1000000] [--runs 5] [--home DIR]

The file is built with direct SQL inserts (no model, no LLM): the schema comes from
thrift's own migrations (db.connect), entries carry a zero vector and no sqlite-vec row
(stats never reads them), and events are a mix like a busy cache's over 30 days: 45%
exact hits, 15% semantic, 40% misses (one stored miss per entry, the rest failed,
timed out, lookup-only), 20 namespaces, 1% of the lookups with a guard veto. Then the
real `thrift stats` runs as a subprocess, `--runs` times per window, and the median
and range of its wall time are printed (process start included).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrift_cli import db  # noqa: E402

NAMESPACES = [f"llm -m model-{i} {{}}" for i in range(20)]


def build(path: Path, n_entries: int, n_events: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    conn = db.connect(path)
    now = time.time()
    start = now - 30 * 86400
    blob = bytes(384 * 4)
    conn.execute("BEGIN")
    entries = []
    for i in range(n_entries):
        ns = NAMESPACES[i % len(NAMESPACES)]
        entries.append(
            (str(uuid.UUID(int=rng.getrandbits(128))), ns, f"question number {i}?", f"v1:{i:040x}")
        )
    conn.executemany(
        "INSERT INTO entries (id, namespace, question, question_hash, answer, embedding, created_at, "
        "hit_count) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        ((e[0], e[1], e[2], e[3], "an answer of some length " * 8, blob, start) for e in entries),
    )

    def events():
        # One stored miss per entry first (in time order with the rest), then the others.
        for k in range(n_events):
            at = start + (now - start) * k / n_events
            if k < n_entries:
                e = entries[k]
                yield (
                    at,
                    e[1],
                    "miss",
                    None,
                    rng.uniform(1, 5),
                    200,
                    rng.uniform(300, 3000),
                    "stored",
                    e[0],
                    e[3],
                    None,
                    20,
                )
                continue
            e = entries[rng.randrange(n_entries)]
            roll = rng.random()
            if roll < 0.45:
                yield (at, e[1], "exact", 1.0, rng.uniform(0.05, 2), 200, None, None, e[0], e[3], "local", 20)
            elif roll < 0.60:
                yield (
                    at,
                    e[1],
                    "semantic",
                    0.9,
                    rng.uniform(60, 120),
                    200,
                    None,
                    None,
                    e[0],
                    f"q{k}",
                    "local",
                    24,
                )
            elif roll < 0.95:
                yield (
                    at,
                    e[1],
                    "miss",
                    0.7,
                    rng.uniform(60, 120),
                    0,
                    rng.uniform(100, 900),
                    "command failed (exit 1)",
                    None,
                    f"q{k}",
                    None,
                    22,
                )
            elif roll < 0.98:
                yield (
                    at,
                    e[1],
                    "miss",
                    0.6,
                    rng.uniform(60, 120),
                    None,
                    None,
                    "lookup-only",
                    None,
                    f"q{k}",
                    None,
                    22,
                )
            else:
                yield (
                    at,
                    e[1],
                    "miss",
                    0.8,
                    rng.uniform(60, 120),
                    0,
                    30000.0,
                    "timed out",
                    None,
                    f"q{k}",
                    None,
                    22,
                )

    conn.executemany(
        "INSERT INTO events (at, namespace, tier, similarity, latency_ms, answer_bytes, call_ms, outcome, "
        "entry_id, question_hash, source, question_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        events(),
    )
    conn.execute(
        "INSERT INTO vetoes (event_id, at, namespace, question, candidate, similarity, guard) "
        "SELECT id, at, namespace, 'Is Python faster than Java?', 'Is Java faster than Python?', 0.99, "
        "'word-order' FROM events WHERE tier = 'miss' AND id % 40 = 0"
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def built(home: Path, n_entries: int, n_events: int) -> Path:
    """The cache file in `home`, built (and said so) unless it is there already."""
    path = home / "cache.db"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(path, n_entries, n_events)
        print(
            f"built {path}: {n_entries:,} entries, {n_events:,} events "
            f"in {time.perf_counter() - started:.1f} s"
        )
    return path


def thrift() -> list[str]:
    script = Path(sys.executable).parent / "thrift"
    return [str(script)] if script.exists() else [sys.executable, "-m", "thrift_cli"]


def timed(args: list[str], home: Path, runs: int) -> list[float]:
    env = {**os.environ, "THRIFT_HOME": str(home)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*thrift(), "stats", *args], env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, help="reuse (or build) the cache here; default: a temporary one")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="thrift-bench-stats-"))
    built(home, args.entries, args.events)
    print(f"| what | median of {args.runs} | range |")
    print("|---|---|---|")
    for label, extra in [
        ("`thrift stats --json`, all time", ["--json"]),
        ("`thrift stats`, text, all time", []),
        ("`thrift stats --json --since 1d`", ["--json", "--since", "1d"]),
        ("`thrift stats --json --namespace 'llm -m model-3 {}'`", ["--json", "--namespace", NAMESPACES[3]]),
    ]:
        times = timed(extra, home, args.runs)
        print(f"| {label} | {statistics.median(times):.2f} s | {min(times):.2f}-{max(times):.2f} s |")


if __name__ == "__main__":
    main()
