"""How much PII the scrubber catches, what it changes in PII-free answers, and how fast.

    python scripts/bench_pii.py [--show] [--entities PERSON,EMAIL_ADDRESS,...] [--min-score 0.5]

Reads tests/data/pii/: `pii.jsonl` and `clean.jsonl` (the tuning set: privacy.py's rules
were written looking at these), `heldout_pii.jsonl` and `heldout_clean.jsonl` (never
looked at while tuning: they show whether the rules generalise). Each line is
`{"text": ..., "pii": [{"type": "EMAIL_ADDRESS", "value": "..."}]}`; a value is located
by substring, every occurrence counts, and the clean files' lines have `"pii": []`.

Recall, per labelled type: the share of labelled occurrences that are caught. An
occurrence is caught when each of its letters and digits lies inside a span the scrubber
replaced with an acceptable type: the label's own type, or, for the identity and account
numbers (US_SSN, US_ITIN, US_PASSPORT, US_DRIVER_LICENSE, US_BANK_NUMBER, UK_NHS,
MEDICAL_LICENSE), any of those (the number is gone under a placeholder that says it was
an identifier). "removed" counts the occurrences with no letter or digit left, whatever
the type. Targets: 0.95 for the pattern types, 0.85 for PERSON.

False positives: every replaced span in a PII-free answer is one; the table gives the
answers changed and the spans (`--show` lists them and the missed values; `--show-heldout`
does the same for the held-out set).

The types left out of the defaults (DATE_TIME, LOCATION, NRP, ORGANIZATION, URL, UUID) get
a table of their own: what each would change in the PII-free answers if it were on.

Timings, in this process: importing Presidio and spaCy, building the engines, the first
scrub, then p50/p99 of one scrub of a 500-character answer (each corpus answer followed by
the next ones, cut at 500 characters; each scrubbed 3 times). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii"
ID_NUMBERS = frozenset(
    {"US_SSN", "US_ITIN", "US_PASSPORT", "US_DRIVER_LICENSE", "US_BANK_NUMBER", "UK_NHS", "MEDICAL_LICENSE"}
)
TARGETS = {"PERSON": 0.85}
REPEAT = 3
PATTERN_TARGET = 0.95


@dataclass
class Tally:
    labelled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    caught: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    missed: list[str] = field(default_factory=list)
    clean_answers: int = 0
    changed_answers: int = 0
    false_spans: list[str] = field(default_factory=list)


def load(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def acceptable(label: str, found: str) -> bool:
    return found == label or (label in ID_NUMBERS and found in ID_NUMBERS)


def occurrences(text: str, value: str) -> list[int]:
    starts, at = [], text.find(value)
    while at >= 0:
        starts.append(at)
        at = text.find(value, at + 1)
    return starts


def score(scrubber, pii_rows: list[dict], clean_rows: list[dict]) -> Tally:
    tally = Tally()
    for row in pii_rows:
        text, found = row["text"], scrubber.analyze(row["text"])
        for label in row["pii"]:
            kind, value = label["type"], label["value"]
            for start in occurrences(text, value):
                chars = [i for i in range(start, start + len(value)) if text[i].isalnum()]
                covered_by = [[f.entity_type for f in found if f.start <= i < f.end] for i in chars]
                tally.labelled[kind] += 1
                if all(any(acceptable(kind, t) for t in ts) for ts in covered_by):
                    tally.caught[kind] += 1
                else:
                    got = sorted({t for ts in covered_by for t in ts}) or ["nothing"]
                    tally.missed.append(f"{kind} {value!r} (found as {', '.join(got)})")
                if all(covered_by):
                    tally.removed[kind] += 1
    for row in clean_rows:
        found = scrubber.analyze(row["text"])
        tally.clean_answers += 1
        tally.changed_answers += bool(found)
        for f in found:
            tally.false_spans.append(f"{f.entity_type} {row['text'][f.start : f.end]!r} ({f.score:.2f})")
    return tally


def recall_table(tuning: Tally, heldout: Tally) -> list[str]:
    lines = [
        "| entity | labelled | recall | removed | target | held out: labelled | recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in sorted(set(tuning.labelled) | set(heldout.labelled)):
        n, h = tuning.labelled[kind], heldout.labelled[kind]
        target = TARGETS.get(kind, PATTERN_TARGET)
        lines.append(
            f"| {kind} | {n} | {_ratio(tuning.caught[kind], n)} | {_ratio(tuning.removed[kind], n)} "
            f"| {target:.2f} | {h} | {_ratio(heldout.caught[kind], h)} |"
        )
    for name, t in (("all", tuning), ("held out", heldout)):
        total = sum(t.labelled.values())
        lines.append(f"| **{name}** | {total} | {_ratio(sum(t.caught.values()), total)} | | | | |")
    return lines


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


def answers_of(chars: int, texts: list[str]) -> list[str]:
    """One text of about `chars` characters per corpus answer: it, then the next ones,
    cut at the last space before `chars`."""
    out = []
    for i in range(len(texts)):
        text, j = texts[i], i
        while len(text) < chars:
            j += 1
            text += "\n\n" + texts[j % len(texts)]
        out.append(text[: text.rfind(" ", 0, chars)])
    return out


def timings(texts: list[str]) -> dict[str, float]:
    from thrift_cli import privacy

    t0 = time.perf_counter()
    privacy._import_presidio()  # as the first scrub imports them (without torch)
    t1 = time.perf_counter()
    privacy._engines()
    t2 = time.perf_counter()
    scrubber = privacy.Scrubber()
    scrubber.scrub(texts[0])
    t3 = time.perf_counter()
    each = []
    for _ in range(REPEAT):
        for text in texts[1:]:
            start = time.perf_counter()
            scrubber.scrub(text)
            each.append(time.perf_counter() - start)
    each.sort()
    return {
        "import": t1 - t0,
        "build": t2 - t1,
        "first": t3 - t2,
        "p50": statistics.median(each),
        "p99": each[min(len(each) - 1, round(0.99 * (len(each) - 1)))],
        "chars": statistics.median(len(t) for t in texts),
        "n": len(each),
    }


def optional_false_positives(clean_rows: list[dict]) -> list[str]:
    """What each type left out of the defaults would change in the PII-free answers."""
    from thrift_cli.privacy import OPTIONAL_ENTITIES, Scrubber

    lines = [
        "| type (not scrubbed by default) | PII-free answers it would change | spans |",
        "|---|---:|---:|",
    ]
    for kind in OPTIONAL_ENTITIES:
        found = [Scrubber(entities=[kind]).analyze(row["text"]) for row in clean_rows]
        lines.append(f"| {kind} | {sum(map(bool, found))} of {len(found)} | {sum(map(len, found))} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--show", action="store_true", help="list the tuning set's misses and false positives"
    )
    parser.add_argument("--show-heldout", action="store_true", help="the same for the held-out set")
    parser.add_argument("--entities", help="comma-separated entity types (default: the scrubber's)")
    parser.add_argument("--min-score", type=float, default=0.5)
    args = parser.parse_args()

    pii, clean = load("pii.jsonl"), load("clean.jsonl")
    held_pii, held_clean = load("heldout_pii.jsonl"), load("heldout_clean.jsonl")
    times = timings(answers_of(500, [r["text"] for r in pii + clean]))  # first: it times the cold start

    from thrift_cli.privacy import Scrubber

    entities = args.entities.split(",") if args.entities else None
    scrubber = Scrubber(entities=entities, min_score=args.min_score)
    tuning, heldout = score(scrubber, pii, clean), score(scrubber, held_pii, held_clean)

    print(f"PII answers: {len(pii)} tuning + {len(held_pii)} held out;", end=" ")
    print(f"PII-free: {len(clean)} + {len(held_clean)}")
    print(f"entities: {','.join(scrubber.entities)}; min_score {scrubber.min_score}\n")
    print("\n".join(recall_table(tuning, heldout)))
    print("\n| false positives on PII-free answers | answers changed | spans |\n|---|---:|---:|")
    for name, t in (("tuning", tuning), ("held out", heldout)):
        print(f"| {name} | {t.changed_answers} of {t.clean_answers} | {len(t.false_spans)} |")
    print()
    print("\n".join(optional_false_positives(clean + held_clean)))
    print(
        "\n| import Presidio + spaCy | build engines | first scrub | scrub p50 | scrub p99 |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {times['import']:.2f} s | {times['build']:.2f} s | {times['first'] * 1000:.0f} ms "
        f"| {times['p50'] * 1000:.1f} ms | {times['p99'] * 1000:.1f} ms |"
    )
    print(
        f"\n(p50/p99 over {times['n']} scrubs of texts of median {times['chars']:.0f} characters; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores)"
    )
    for name, t, show in (("tuning", tuning, args.show), ("held out", heldout, args.show_heldout)):
        if show:
            print(f"\n{name} misses:", *t.missed or ["none"], sep="\n  ")
            print(f"{name} false positives:", *t.false_spans or ["none"], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
