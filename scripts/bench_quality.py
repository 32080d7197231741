"""How often is a semantic hit right? Hit rate and wrong-hit rate on labeled pairs.

    python scripts/bench_quality.py ../shared/data/qqp_dev_sample.tsv --limit 10000
    python scripts/bench_quality.py ../shared/data/*.tsv ../shared/data/gptcache_mock_data.jsonl --json

The protocol (issue 3), driven through the Python API on a throwaway THRIFT_HOME, so it
measures the lookup path `thrift ask` uses, guards included:

1. Every distinct first question (by normalized text) is stored, its answer naming it.
2. Every second question is looked up, in file order, without storing it; one whose
   normalized text is itself stored is skipped (an exact hit tests no similarity).
3. Duplicate clusters: union-find over the pairs labeled 1. A hit is correct when the
   entry it returns is in the query's cluster and that very pair is not labeled 0.
4. recall = correct hits on label-1 rows / label-1 rows; wrong-hit rate = wrong hits /
   queries; precision = correct / hits; F1; hit rate; p50 lookup latency (search and
   guards; the query's embedding is computed once, in batches, and timed separately).

Operating points: thrift's default, thrift's knobs swept, and the plain rule every peer
uses (cosine >= threshold, no guards) at 0.82 and 0.85 (ThriftLM's recommendation and
default) and beyond.

`--protocol pair` (issue 14) measures where the labels are complete: each labeled pair
alone, its first text stored in an empty cache (`tier=MemoryTier()`) and its second looked
up through the same API. A hit on a pair labeled 1 is right, on a pair labeled 0 wrong,
so precision has no ceiling below 1. Pairs whose texts are the same question (exact) are
skipped. Its rows are split for good (`Splits`): a fifth of the connected components of
pairs sharing a text is the validation split, never used to tune or train anything; the
rest is the tuning split.
Each is reported on its own. `--protocol both` runs the two protocols.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from thrift_cli import SemanticCache, guards
from thrift_cli.cache import DEFAULT_MIN_SIMILARITY, Query
from thrift_cli.keys import normalize
from thrift_cli.tiers.memory import MemoryTier

NAMESPACE = "bench"
NO_VERIFIER_MIN = 0.85  # the default before the verifier (issue 3's)


class TimedVerifier:
    """The shipped verifier, each (query, candidate) scored once and timed: every
    operating point asks the same pairs, and each reads the same score."""

    def __init__(self) -> None:
        from thrift_cli.verifier import Verifier

        self.inner = Verifier()
        self.threshold = self.inner.threshold
        self.known: dict[tuple[str, str], float] = {}
        self.ms: list[float] = []

    def score(self, query: str, candidate: str) -> float:
        pair = (query, candidate)
        if pair not in self.known:
            started = time.perf_counter()
            self.known[pair] = self.inner.score(query, candidate)
            self.ms.append((time.perf_counter() - started) * 1000)
        return self.known[pair]

    def summary(self) -> str:
        if not self.ms:
            return "the verifier read no candidate"
        p50, p99 = np.percentile(self.ms, [50, 99])
        return f"verifier p50 {p50:.1f} ms, p99 {p99:.1f} ms per candidate ({len(self.ms)} candidates)"


_VERIFIER: TimedVerifier | None = None


def verifier() -> TimedVerifier:
    global _VERIFIER
    if _VERIFIER is None:
        _VERIFIER = TimedVerifier()
    return _VERIFIER


@dataclass(frozen=True)
class Point:
    name: str
    min_similarity: float
    guards: bool
    verify: bool = False  # the verifier reads the candidate that passed the guards
    # Not an operating point: a guard that knows the file's labels and vetoes exactly the
    # pairs labeled 0. On QQP, where every wrong hit it leaves is a pair nobody labeled,
    # it bounds what a guard could reach.
    label_oracle: bool = False


def operating_points() -> list[Point]:
    points = [
        Point("thrift default", DEFAULT_MIN_SIMILARITY, True, True),
        Point(f"thrift --no-verify, min {NO_VERIFIER_MIN:.2f}", NO_VERIFIER_MIN, True),
    ]
    sweep = [t for t in (0.75, 0.80, 0.82, 0.85, 0.90) if t != DEFAULT_MIN_SIMILARITY]
    points += [Point(f"thrift, min {t:.2f}", t, True, True) for t in sweep]
    points += [Point(f"plain cosine >= {t:.2f}", t, False) for t in (0.82, 0.85, 0.90, 0.95)]
    points += [
        Point(f"label oracle: cosine >= {t:.2f}, pairs labeled 0 vetoed", t, True, label_oracle=True)
        for t in (0.85, 0.90)
    ]
    return points


def load_pairs(path: Path, limit: int | None) -> list[tuple[str, str, int]]:
    """(first, second, label) rows of a QQP/PAWS TSV or a GPTCache JSONL (all positives)."""
    rows: list[tuple[str, str, int]] = []
    with path.open(encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            for line in f:
                record = json.loads(line)
                rows.append((record["origin"], record["similar"], 1))
        else:
            header = f.readline().rstrip("\n").split("\t")
            if "first" in header:  # tests/data/swaps.tsv: first, second, label, kind
                a, b, label = header.index("first"), header.index("second"), header.index("label")
            elif "question1" in header:
                a, b, label = (
                    header.index("question1"),
                    header.index("question2"),
                    header.index("is_duplicate"),
                )
            else:
                a, b, label = header.index("sentence1"), header.index("sentence2"), header.index("label")
            for line in f:
                cols = line.rstrip("\n").split("\t")
                rows.append((cols[a], cols[b], int(cols[label])))
        return rows[:limit] if limit else rows


class Clusters:
    """Union-find over normalized questions joined by label-1 pairs."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class Result:
    file: str
    rows: int
    point: str
    min_similarity: float
    guards: bool
    queries: int
    skipped_exact: int
    positives: int
    hits: int
    correct: int
    wrong: int
    recall: float
    wrong_hit_rate: float
    precision: float
    f1: float
    hit_rate: float
    p50_lookup_ms: float
    p50_embed_ms: float
    p50_guards_us: float


def evaluate(path: Path, limit: int | None, points: list[Point], dump: Path | None) -> list[Result]:
    rows = load_pairs(path, limit)
    clusters, negatives = Clusters(), set()
    for a, b, label in rows:
        na, nb = normalize(a), normalize(b)
        if label == 1:
            clusters.union(na, nb)
        else:
            negatives.add(frozenset((na, nb)))

    stored: dict[str, str] = {}  # normalized -> question as stored
    for a, _, _ in rows:
        stored.setdefault(normalize(a), a.strip())
    queries = [(b, label) for _, b, label in rows if normalize(b) not in stored and b.strip()]
    skipped = len(rows) - len(queries)

    with tempfile.TemporaryDirectory(prefix="thrift-bench-") as home:
        loader = SemanticCache(home=home, namespace=NAMESPACE, verify=False)
        loader.store_many([(q, f"entry {i}") for i, q in enumerate(stored.values())])
        prepared = loader.queries([q for q, _ in queries])
        embed_ms = _embed_p50(loader, [q for q, _ in queries[:200]])
        guard_us = _guard_p50(loader, prepared[:2000])
        for query in prepared[:200]:  # warm-up, so the first operating point is not penalised
            loader.explain(query)
        results, records = [], []
        for point in points:

            def oracle(query: str, candidate: str) -> str | None:
                pair = frozenset((normalize(query), normalize(candidate)))
                return "labeled negative" if pair in negatives else None

            cache = SemanticCache(
                home=home,
                namespace=NAMESPACE,
                min_similarity=point.min_similarity,
                guards=oracle if point.label_oracle else point.guards,
                verify=verifier() if point.verify else False,  # type: ignore[arg-type]
            )
            hits = correct = wrong = correct_pos = 0
            latencies = []
            for query, (text, label) in zip(prepared, queries, strict=True):
                started = time.perf_counter()
                look = cache.explain(query)
                latencies.append((time.perf_counter() - started) * 1000)
                if look.hit is None:
                    continue
                hits += 1
                nq, nm = normalize(text), normalize(look.hit.question)
                ok = clusters.find(nq) == clusters.find(nm) and frozenset((nq, nm)) not in negatives
                correct += ok
                wrong += not ok
                correct_pos += ok and label == 1
                if dump is not None:
                    records.append(
                        {
                            "point": point.name,
                            "query": text,
                            "matched": look.hit.question,
                            "similarity": look.hit.similarity,
                            "label": label,
                            "correct": ok,
                        }
                    )
            positives = sum(label for _, label in queries)
            precision, recall, f1 = scores(correct, correct_pos, hits, positives)
            results.append(
                Result(
                    path.name,
                    len(rows),
                    point.name,
                    point.min_similarity,
                    point.guards,
                    len(queries),
                    skipped,
                    positives,
                    hits,
                    correct,
                    wrong,
                    recall,
                    wrong / len(queries),
                    precision,
                    f1,
                    hits / len(queries),
                    statistics.median(latencies),
                    embed_ms,
                    guard_us,
                )
            )
            cache.close()
        loader.close()
    if dump is not None:
        with dump.open("a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps({"file": path.name, **record}) + "\n")
    return results


def scores(right: int, found: int, hits: int, positives: int) -> tuple[float, float, float]:
    """(precision, recall, F1): `right` of `hits` hits right, `found` of `positives`
    labeled duplicates found."""
    precision = right / hits if hits else 0.0
    recall = found / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _guard_p50(cache: SemanticCache, queries: list[Query]) -> float:
    """p50 cost of the guards on a query and its nearest stored question, in microseconds,
    with the guards' word cache cleared first (each lookup brings a new question)."""
    timings = []
    for query in queries:
        best = cache.explain(query).best
        if best is None:
            continue
        guards.words.cache_clear()
        started = time.perf_counter()
        guards.veto(query.question, best.entry.question)
        timings.append((time.perf_counter() - started) * 1e6)
    return statistics.median(timings) if timings else 0.0


def _embed_p50(cache: SemanticCache, texts: list[str]) -> float:
    timings = []
    for text in texts:
        started = time.perf_counter()
        cache.embedder.embed([text])
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings) if timings else 0.0


# -- the pair protocol ------------------------------------------------------------------


SPLITS = ("tune", "validation")


class Splits:
    """Each pair's split, for good: a fifth of the file's connected components (pairs
    joined by a shared normalized text, whatever their labels) is the validation split,
    chosen by a hash of each component's least text. No text is in both splits, as in the
    held-out data: PAWS builds several pairs from one sentence, and a split by pair would
    let a model learn a validation sentence from its siblings."""

    def __init__(self, rows: list[tuple[str, str, int]]) -> None:
        self._clusters = Clusters()
        for a, b, _ in rows:
            self._clusters.union(normalize(a), normalize(b))
        self._least: dict[str, str] = {}
        for a, b, _ in rows:
            for text in (normalize(a), normalize(b)):
                root = self._clusters.find(text)
                self._least[root] = min(self._least.get(root, text), text)

    def of(self, first: str, second: str) -> str:
        least = self._least[self._clusters.find(normalize(first))]
        digest = hashlib.blake2b(least.encode(), digest_size=8).digest()
        return "validation" if int.from_bytes(digest, "big") % 5 == 0 else "tune"


class Known:
    """An embedder of a fixed set of texts, each embedded once, in batches, by `inner`."""

    def __init__(self, inner: object, texts: list[str]) -> None:
        self.name, self.dim = inner.name, inner.dim  # type: ignore[attr-defined]
        unique = list(dict.fromkeys(texts))
        started = time.perf_counter()
        vectors = inner.embed(unique)  # type: ignore[attr-defined]
        self.ms_per_text = (time.perf_counter() - started) * 1000 / max(len(unique), 1)
        self._vectors = dict(zip(unique, vectors, strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


@dataclass
class PairResult:
    file: str
    split: str
    pairs: int
    skipped_exact: int
    positives: int
    point: str
    min_similarity: float
    guards: bool
    hits: int
    right: int
    wrong: int
    precision: float
    recall: float
    f1: float
    p50_lookup_ms: float


def pair_points() -> list[Point]:
    """The cache protocol's points but the label oracle (pair labels are complete)."""
    return [p for p in operating_points() if not p.label_oracle]


def evaluate_pairs(
    path: Path, limit: int | None, points: list[Point], *, split: bool = True
) -> list[PairResult]:
    from thrift_cli.embed import default_embedder

    rows = load_pairs(path, limit)
    kept = [
        (a.strip(), b.strip(), y)
        for a, b, y in rows
        if a.strip() and b.strip() and normalize(a) != normalize(b)
    ]
    known = Known(default_embedder(warm=True), [t for a, b, _ in kept for t in (a, b)])
    splits = Splits(rows)
    results = []
    for part in SPLITS if split else ("all",):

        def within(a: str, b: str, part: str = part) -> bool:
            return part == "all" or splits.of(a, b) == part

        pairs = [(a, b, y) for a, b, y in kept if within(a, b)]
        skipped = sum(1 for a, b, _ in rows if within(a.strip(), b.strip())) - len(pairs)
        positives = sum(y for _, _, y in pairs)
        for point in points:
            hits = right = 0
            latencies = []
            for first, second, label in pairs:
                cache = SemanticCache(
                    point.min_similarity,
                    NAMESPACE,
                    tier=MemoryTier(),
                    shared=(),
                    embedder=known,  # type: ignore[arg-type]
                    guards=point.guards,
                    scrub=False,
                    verify=verifier() if point.verify else False,  # type: ignore[arg-type]
                )
                cache.store(first, "the answer")
                started = time.perf_counter()
                look = cache.explain(second)
                latencies.append((time.perf_counter() - started) * 1000)
                if look.hit is not None:
                    hits += 1
                    right += label
            wrong = hits - right
            precision, recall, f1 = scores(right, right, hits, positives)
            results.append(
                PairResult(
                    path.name,
                    part,
                    len(pairs),
                    skipped,
                    positives,
                    point.name,
                    point.min_similarity,
                    point.guards,
                    hits,
                    right,
                    wrong,
                    precision,
                    recall,
                    f1,
                    statistics.median(latencies) if latencies else 0.0,
                )
            )
    return results


def print_pair_table(results: list[PairResult]) -> None:
    print("| data | split | pairs (label 1) | operating point | precision | recall | F1 | wrong hits |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.file} | {r.split} | {r.pairs} ({r.positives}) | {r.point} | {r.precision:.3f} "
            f"| {r.recall:.3f} | {r.f1:.3f} | {r.wrong} |"
        )


def print_table(results: list[Result]) -> None:
    columns = ["data", "rows", "operating point", "recall", "wrong-hit rate", "precision", "F1", "hit rate"]
    print("| " + " | ".join([*columns, "p50 lookup ms"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.file} | {r.rows} | {r.point} | {r.recall:.3f} | {r.wrong_hit_rate:.3f} "
            f"| {r.precision:.3f} | {r.f1:.3f} | {r.hit_rate:.3f} | {r.p50_lookup_ms:.2f} |"
        )
    for file in dict.fromkeys(r.file for r in results):
        r = next(r for r in results if r.file == file)
        print(
            f"\n{file}: {r.queries} queries ({r.positives} labeled duplicates), {r.skipped_exact} skipped "
            f"as exact repeats of a stored question; p50 embedding {r.p50_embed_ms:.1f} ms per query; "
            f"p50 guards {r.p50_guards_us:.0f} µs per lookup"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, help="use the first N rows of each file")
    parser.add_argument("--json", action="store_true", help="one JSON object per result line")
    parser.add_argument("--dump", type=Path, help="append every hit (query, match, verdict) to this JSONL")
    parser.add_argument(
        "--protocol", choices=("cache", "pair", "both"), default="cache", help="see above (default: cache)"
    )
    parser.add_argument(
        "--no-split", action="store_true", help="pair protocol: one table of all pairs (a file of your own)"
    )
    args = parser.parse_args()
    results: list[Result] = []
    pair_results: list[PairResult] = []
    for path in args.files:
        started = time.time()
        if args.protocol in ("cache", "both"):
            results += evaluate(path, args.limit, operating_points(), args.dump)
        if args.protocol in ("pair", "both"):
            pair_results += evaluate_pairs(path, args.limit, pair_points(), split=not args.no_split)
        print(f"# {path.name}: {time.time() - started:.0f} s", file=sys.stderr)
    if _VERIFIER is not None:
        print(f"# {_VERIFIER.summary()}", file=sys.stderr)
    if args.json:
        for r in results:
            print(json.dumps({"protocol": "cache", **asdict(r)}))
        for p in pair_results:
            print(json.dumps({"protocol": "pair", **asdict(p)}))
        return 0
    if results:
        print_table(results)
    if pair_results:
        if results:
            print()
        print_pair_table(pair_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
