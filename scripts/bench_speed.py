"""How fast is a hit? thrift against a ThriftLM-style baseline, medians over repeated runs.

    python scripts/bench_speed.py            # every row, ~10 minutes on 2 cores
    python scripts/bench_speed.py --quick    # fewer runs and smaller caches, for a smoke test

The baseline does what ThriftLM does: sentence-transformers (torch) in process, every
vector of the cache in one numpy matrix, `matrix @ query`. Caches are filled with real
questions where the content matters (the hit being measured) and with random unit
vectors elsewhere, which cost the same to store and to scan.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from thrift_cli import SemanticCache
from thrift_cli.cache import Query
from thrift_cli.keys import command_namespace, exact_key
from thrift_cli.models import CacheEntry

DIM = 384
QUESTION, PARAPHRASE = "How do I learn to code quickly?", "How can I learn to code fast?"
COMMAND = ["true"]  # answers nothing, instantly: what is measured is thrift itself
THRIFT = [str(Path(sys.executable).parent / "thrift")]

BASELINE = r"""
import json, sys, time, numpy as np
start = time.perf_counter()
from sentence_transformers import SentenceTransformer
from thrift_cli.minilm import model_dir
model = SentenceTransformer(str(model_dir()), device="cpu")
data = np.load(sys.argv[1])
matrix, answers = data["matrix"], json.loads(open(sys.argv[2]).read())
exact = {q: i for i, q in enumerate(answers)}
question = sys.argv[3]
i = exact.get(question)
if i is None:
    scores = matrix @ model.encode([question], normalize_embeddings=True)[0]
    i = int(scores.argmax())
print(answers[i])
"""


PEAK_RSS = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
print(usage.ru_maxrss)
"""


def random_units(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, DIM), dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def fill(home: Path, n: int) -> np.ndarray:
    """A cache of n entries in the namespace of COMMAND: one real question, n-1 random."""
    namespace = command_namespace(COMMAND)
    cache = SemanticCache(home=home, namespace=namespace)
    cache.store(QUESTION, "Practice every day.")
    vectors = random_units(n - 1)
    batch = []
    for i, v in enumerate(vectors):
        q = f"filler question {i}"
        batch.append((CacheEntry(namespace, q, exact_key(namespace, q), f"answer {i}"), v))
        if len(batch) == 5000:
            cache.tier.store_many(batch)
            batch = []
    cache.tier.store_many(batch)
    real = cache.embedder.embed([QUESTION])
    cache.close()
    return np.vstack([real, vectors])


def timed_runs(argv: list[str], runs: int, env: dict[str, str]) -> float:
    """Median wall time (ms) of `argv` as a fresh process."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(times)


def cold_rows(n: int, runs: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        matrix = fill(home, n)
        np.savez(home / "baseline.npz", matrix=matrix)
        (home / "answers.json").write_text(
            json.dumps([QUESTION] + [f"filler question {i}" for i in range(n - 1)])
        )
        (home / "baseline.py").write_text(BASELINE)
        env = {**os.environ, "THRIFT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        base = [
            sys.executable,
            str(home / "baseline.py"),
            str(home / "baseline.npz"),
            str(home / "answers.json"),
        ]
        for label, question in (("exact", QUESTION), ("semantic", PARAPHRASE)):
            ours = timed_runs([*THRIFT, "ask", question, "--", *COMMAND], runs, env)
            theirs = timed_runs([*base, question], max(3, runs // 4), env)
            rows.append(
                dict(
                    what=f"cold `thrift ask` {label} hit, {n:,} entries, start to exit",
                    thrift=ours,
                    baseline=theirs,
                    unit="ms",
                )
            )
        bare = timed_runs(COMMAND, runs, env)
        miss_times = []
        for i in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [*THRIFT, "ask", "--no-store", f"unseen question number {i} about volcanoes", "--", *COMMAND],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
            )
            miss_times.append((time.perf_counter() - started) * 1000)
        rows.append(
            dict(
                what="time thrift adds to a miss (beyond the command's own run)",
                thrift=statistics.median(miss_times) - bare,
                baseline=None,
                unit="ms",
            )
        )
    return rows


def memory_row(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fill(home, n)
        env = {**os.environ, "THRIFT_HOME": str(home)}
        # Measured from a small helper process: a child forked from this one (which holds
        # large test matrices) would report this process's pages as its own peak.
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, *THRIFT, "ask", PARAPHRASE, "--", *COMMAND],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        kb = int(proc.stdout.strip().splitlines()[-1])
    return dict(
        what=f"peak memory of a cold `thrift ask` semantic hit, {n:,} entries",
        thrift=kb / 1024,
        baseline=None,
        unit="MB",
    )


def warm_rows(n: int, runs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        matrix = fill(home, n)
        cache = SemanticCache(home=home, namespace=command_namespace(COMMAND))
        cache.explain(PARAPHRASE)  # loads the model and the memory index
        ours = []
        for i in range(runs):
            query = Query(cache, f"{PARAPHRASE} {i}")
            started = time.perf_counter()
            cache.explain(query)
            ours.append((time.perf_counter() - started) * 1000)
        from sentence_transformers import SentenceTransformer

        from thrift_cli.minilm import model_dir

        model = SentenceTransformer(str(model_dir()), device="cpu")
        model.encode(["warm up"])
        theirs = []
        for i in range(runs):
            started = time.perf_counter()
            int((matrix @ model.encode([f"{PARAPHRASE} {i}"], normalize_embeddings=True)[0]).argmax())
            theirs.append((time.perf_counter() - started) * 1000)
    return [
        dict(
            what=f"warm lookup through the Python API (embed + search), {n:,} entries",
            thrift=statistics.median(ours),
            baseline=statistics.median(theirs),
            unit="ms",
        )
    ]


def search_row(n: int, runs: int) -> dict:
    from thrift_cli.index import VectorIndex

    matrix = random_units(n, seed=1)
    index = VectorIndex(DIM)
    for i, v in enumerate(matrix):
        index.add(i, v)
    queries = random_units(runs, seed=2)
    index.search(queries[0], 1)
    ours = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, 1)
        ours.append((time.perf_counter() - started) * 1000)
    theirs = []
    for q in queries:
        started = time.perf_counter()
        int((matrix @ q).argmax())
        theirs.append((time.perf_counter() - started) * 1000)
    return dict(
        what=f"search alone, {n:,} entries (exact: recall@1 = 1.0)",
        thrift=statistics.median(ours),
        baseline=statistics.median(theirs),
        unit="ms",
    )


def import_row(n: int) -> dict:
    texts = [f"Question {i}: how would you explain topic number {i} to a beginner?" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = SemanticCache(home=tmp, namespace="import")
        cache.embedder.embed(["warm up"])
        started = time.perf_counter()
        cache.store_many([(t, f"answer {i}") for i, t in enumerate(texts)])
        ours = n / (time.perf_counter() - started)
    from sentence_transformers import SentenceTransformer

    from thrift_cli.minilm import model_dir

    model = SentenceTransformer(str(model_dir()), device="cpu")
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    theirs = n / (time.perf_counter() - started)
    return dict(
        what="storing question/answer pairs, embedding included (`store_many`)",
        thrift=ours,
        baseline=theirs,
        unit="entries/s",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = 5 if args.quick else 21
    small, medium, large = (1_000, 10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    rows = cold_rows(small, runs)
    rows += warm_rows(medium, runs * 5)
    rows.append(search_row(large, runs * 2))
    rows.append(import_row(500 if args.quick else 2_000))
    rows.append(memory_row(medium))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("| what | thrift | baseline (ThriftLM-style) | baseline / thrift |")
    print("|---|---|---|---|")
    for r in rows:
        base = "—" if r["baseline"] is None else f"{r['baseline']:.1f} {r['unit']}"
        if r["baseline"] is None:
            ratio = "—"
        elif r["unit"] == "entries/s":
            ratio = f"{r['thrift'] / r['baseline']:.2f}x (higher is better)"
        else:
            ratio = f"{r['baseline'] / r['thrift']:.1f}x"
        print(f"| {r['what']} | {r['thrift']:.1f} {r['unit']} | {base} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
