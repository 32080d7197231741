"""scripts/bench_quality.py follows the protocol: a tiny labeled file with known answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_quality.py"

ROWS = [
    # stored first question, looked-up second question, label
    ("How do I learn to code quickly?", "How can I learn to code fast?", 1),  # a correct hit
    ("Is Java faster than Python?", "Is Python faster than Java?", 0),  # plain: a wrong hit
    ("What is the capital of France?", "what is the capital of france", 1),  # skipped: exact
    ("What is the boiling point of water?", "Who painted the Sistine Chapel ceiling?", 0),  # a miss
]


def run(tmp_path: Path) -> dict[str, dict]:
    data = tmp_path / "pairs.tsv"
    data.write_text("question1\tquestion2\tis_duplicate\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in ROWS))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(data), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return {r["point"]: r for r in map(json.loads, out.stdout.splitlines())}


def test_protocol_counts_and_metrics(tmp_path):
    results = run(tmp_path)
    plain, thrift = results["plain cosine >= 0.85"], results["thrift default"]
    for r in (plain, thrift):
        assert (r["rows"], r["queries"], r["skipped_exact"], r["positives"]) == (4, 3, 1, 1)
        assert r["recall"] == 1.0  # the one labeled duplicate is found
    # plain: two hits, the swapped question is a wrong one
    assert (plain["hits"], plain["correct"], plain["wrong"]) == (2, 1, 1)
    assert plain["precision"] == 0.5 and plain["wrong_hit_rate"] == 1 / 3
    # thrift: the word-order guard vetoes it
    assert (thrift["hits"], thrift["correct"], thrift["wrong"]) == (1, 1, 0)
    assert thrift["precision"] == 1.0 and thrift["f1"] == 1.0
    oracle = results["label oracle: cosine >= 0.85, pairs labeled 0 vetoed"]
    assert oracle["wrong"] == 0


def test_the_pair_protocol_judges_each_pair_alone(tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text("question1\tquestion2\tis_duplicate\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in ROWS))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(data), "--json", "--protocol", "pair"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["protocol"] for r in lines} == {"pair"} and {r["split"] for r in lines} == {
        "tune",
        "validation",
    }

    def total(point: str) -> dict[str, int]:
        rows = [r for r in lines if r["point"] == point]
        return {
            k: sum(r[k] for r in rows)
            for k in ("pairs", "skipped_exact", "positives", "hits", "right", "wrong")
        }

    # the exact pair is skipped; the swap is a wrong hit for the plain rule, vetoed by thrift
    assert total("plain cosine >= 0.85") == {
        "pairs": 3,
        "skipped_exact": 1,
        "positives": 1,
        "hits": 2,
        "right": 1,
        "wrong": 1,
    }
    assert total("thrift default") == {
        "pairs": 3,
        "skipped_exact": 1,
        "positives": 1,
        "hits": 1,
        "right": 1,
        "wrong": 0,
    }


def test_the_validation_split_is_a_fifth_of_the_pairs_and_shares_no_text():
    sys.path.insert(0, str(SCRIPT.parent))
    from bench_quality import Splits, load_pairs
    from conftest import shared_data

    from thrift_cli.keys import normalize

    for name in ("qqp_dev_sample.tsv", "paws_wiki_dev.tsv"):
        rows = load_pairs(shared_data() / name, None)
        splits = Splits(rows)
        parts = [splits.of(a, b) for a, b, _ in rows]
        assert 0.15 < parts.count("validation") / len(rows) < 0.25, name
        texts = {part: set() for part in ("tune", "validation")}
        for (a, b, _), part in zip(rows, parts, strict=True):
            texts[part].update((normalize(a), normalize(b)))
        assert not texts["tune"] & texts["validation"], name
        assert splits.of(*rows[0][:2]) == Splits(list(reversed(rows))).of(*rows[0][:2])  # not by order
    few = Splits([("What is X?", "Define X", 1), ("Define X", "X means?", 0), ("What is Y?", "Y?", 1)])
    assert few.of("what is  x", "Define X") == few.of("X means?", "Define X")  # one component


def test_the_operating_points_say_what_they_run():
    sys.path.insert(0, str(SCRIPT.parent))
    from bench_quality import operating_points, pair_points

    from thrift_cli.cache import DEFAULT_MIN_SIMILARITY, NO_VERIFIER_MIN_SIMILARITY

    points = {p.name: p for p in operating_points()}
    default = points["thrift default"]
    assert (default.min_similarity, default.guards, default.verify) == (DEFAULT_MIN_SIMILARITY, True, True)
    unverified = points[f"thrift --no-verify, min {NO_VERIFIER_MIN_SIMILARITY:.2f}"]
    assert not unverified.verify and unverified.guards
    assert all(not p.verify and not p.guards for n, p in points.items() if n.startswith("plain"))
    oracles = [p for n, p in points.items() if n.startswith("label oracle")]
    assert oracles and all(p.label_oracle and not p.verify for p in oracles)
    assert not any(p.label_oracle for p in pair_points())
