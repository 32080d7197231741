"""How big and how fast `thrift export` is, and `thrift import` of what it wrote.

    python scripts/bench_export.py --entries 100000 [--answer-bytes 500]

Fills a cache with N entries (distinct QQP questions, an answer of --answer-bytes ASCII
characters, unit vectors: the store does not care where they came from), then times each
as one cold `thrift` process: export to a file with and without --vectors, and import of
the --vectors export into an empty home (no model: the vectors are the file's). Prints one
Markdown table. Nothing here needs the model or the network.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from thrift_cli import keys
from thrift_cli.embed import DEFAULT_MODEL
from thrift_cli.models import CacheEntry
from thrift_cli.store import SQLiteStore


def _data() -> Path:
    """../shared/data beside the repository (or a worktree's /work/shared/data), or $THRIFT_DATA."""
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    candidates = [Path(os.environ["THRIFT_DATA"])] if os.environ.get("THRIFT_DATA") else []
    return next((p for p in [*candidates, here, Path("/work/shared/data")] if p.is_dir()), here)


QQP = _data() / "qqp_dev_sample.tsv"
NAMESPACE = "llm -m gpt-4o-mini {}"


def questions(n: int) -> list[str]:
    texts: dict[str, None] = {}
    with open(QQP, encoding="utf-8") as f:
        next(f)
        for line in f:
            for text in line.rstrip("\n").split("\t")[:2]:
                texts.setdefault(text)
    base = list(texts)
    return [base[i % len(base)] + ("" if i < len(base) else f" ({i // len(base)})") for i in range(n)]


def fill(home: Path, n: int, answer_bytes: int) -> None:
    rng = np.random.default_rng(0)
    now = time.time()
    with SQLiteStore(home / "cache.db") as store:
        store.claim_meta("embedding_model", DEFAULT_MODEL)
        batch = []
        for i, q in enumerate(questions(n)):
            answer = (f"answer {i}: " + "lorem ipsum dolor sit amet " * (answer_bytes // 27 + 1))[
                :answer_bytes
            ]
            entry = CacheEntry(NAMESPACE, q, keys.exact_key(NAMESPACE, q), answer, created_at=now - n + i)
            v = rng.standard_normal(384).astype(np.float32)
            batch.append((entry, v / np.linalg.norm(v)))
            if len(batch) == 5000:
                store.store_many(batch)
                batch = []
        store.store_many(batch)


def timed(argv: list[str], home: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "thrift_cli", *argv],
        env={**os.environ, "THRIFT_HOME": str(home)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--answer-bytes", type=int, default=500)
    args = parser.parse_args()
    n = args.entries
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        fill(home, n, args.answer_bytes)
        plain, full = Path(tmp) / "plain.jsonl", Path(tmp) / "vectors.jsonl"
        t_plain = timed(["export", str(plain)], home)
        t_full = timed(["export", "--vectors", str(full)], home)
        t_import = timed(["import", str(full)], Path(tmp) / "fresh")
        print(f"{n:,} entries, answers of {args.answer_bytes} bytes\n")
        print("| what | time | size | per entry |")
        print("|---|---|---|---|")
        for what, seconds, path in (
            ("`thrift export FILE`", t_plain, plain),
            ("`thrift export --vectors FILE`", t_full, full),
        ):
            size = path.stat().st_size
            print(f"| {what} | {seconds:.2f} s | {size / 2**20:.1f} MiB | {size / n:,.0f} bytes |")
        print(f"| `thrift import` of the --vectors file, empty home (no model) | {t_import:.2f} s "
              f"({n / t_import:,.0f} entries/s) | | |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
