"""`thrift stats`: parse the window, read the figures (stats.py), render them.

A shell module, as commands.py: no typer here, and the core never imports it.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

from thrift_cli import config
from thrift_cli.errors import UsageError
from thrift_cli.stats import Window, empty, figures


def parse_since(value: str, now: float) -> float:
    """`--since`: a duration back from now (90, 15m, 1h, 7d, 2w) or a date or time
    (2026-12-01, 2026-12-01T09:30, with an offset or Z; local time without one)."""
    value = config.checked_text(value, "--since")
    try:
        return now - config.duration(value, "--since")
    except UsageError:
        pass
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            "--since must be a duration such as 1h or 7d, or a date such as 2026-12-01, "
            f"got {config.shown(value)}"
        ) from None


def run(*, since: str | None, namespace: str | None, as_json: bool, top: int) -> int:
    from thrift_cli import db
    from thrift_cli.home import db_path

    config.check_environment()
    now = time.time()
    window = Window(
        since=None if since is None else parse_since(since, now),
        namespace=None if namespace is None else config.namespace(namespace, "--namespace"),
    )
    prices, default_price = config.prices(), float(config.value("price_per_1k"))
    path = db_path()
    if not path.is_file():  # nothing recorded yet: zeros, and nothing created
        result = empty(window, default_price, now)
        if not as_json:
            print(f"thrift: no cache yet at {path}", file=sys.stderr)
    else:
        conn = db.connect(path, read_only=db.read_only(path))
        try:
            result = figures(conn, window, prices=prices, default_price=default_price, now=now, top=top)
        finally:
            conn.close()
    print(json.dumps(result, ensure_ascii=False) if as_json else render(result))
    return 0


# -- the text form: fits 80 columns ------------------------------------------------------


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def duration(seconds: float) -> str:
    if abs(seconds) < 120:
        return f"{seconds:,.1f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def render(f: dict[str, Any]) -> str:
    window = "all time" if f["since"] is None else f"since {when(f['since'])}"
    if f["namespace"] is not None:
        window += f", namespace {clip(f['namespace'], 30)}"
    misses, saved, tiers = f["misses"], f["time_saved"], f["hits_by_tier"]
    sources = ", ".join(f"{n:,} {name}" for name, n in f["hits_by_source"].items() if n)
    unknown = f"; {saved['unknown_hits']:,} unknown" if saved["unknown_hits"] else ""
    lines = [
        f"thrift stats ({window})",
        "",
        f"entries      {f['entries']['total']:,} in {_plural(len(f['entries']['by_namespace']), 'namespace')}"
        + (f" ({f['entries']['expired']:,} expired)" if f["entries"]["expired"] else ""),
        f"lookups      {f['lookups']:,}: {f['hits']:,} hits ({f['hit_rate']:.1%}), "
        f"{misses['total']:,} misses",
        f"hits         {tiers['exact']:,} exact, {tiers['semantic']:,} semantic"
        + (f"; {sources}" if sources else ""),
        f"misses       {misses['stored']:,} stored, {misses['failed']:,} failed, "
        f"{misses['timed_out']:,} timed out, {misses['lookup_only']:,} lookup-only,",
        f"             {misses['not_stored']:,} not stored otherwise; "
        f"{misses['vetoed']:,} after a guard's veto",
        f"time saved   {duration(saved['seconds'])}: {duration(saved['measured_seconds'])} measured "
        f"over {saved['measured_hits']:,} hits,",
        f"             {duration(saved['estimated_seconds'])} estimated over {saved['estimated_hits']:,} "
        f"(no known call){unknown}",
        f"tokens saved ~{f['tokens_saved']:,} (UTF-8 bytes / 4), ~${f['money_saved']['usd']:,.4f}",
        "",
        f"{'latency ms':<16}{'n':>10}{'p50':>10}{'p95':>10}{'p99':>10}",
    ]
    for name, row in f["latency_ms"].items():
        label = "miss overhead" if name == "miss_overhead" else f"{name} hit"
        lines.append(
            f"{label:<16}{row['n']:>10,}{_ms(row['p50']):>10}{_ms(row['p95']):>10}{_ms(row['p99']):>10}"
        )
    if f["top_questions"]:
        lines += ["", f"{'top questions':<52}{'hits':>8}  last hit"]
        for q in f["top_questions"]:
            question = q["question"] if q["question"] is not None else f"(forgotten entry {q['entry_id']})"
            lines.append(f"{clip(question, 50):<52}{q['hits']:>8,}  {when(q['last_hit_at'])}")
    vetoes = f["vetoes"]
    if vetoes["total"]:
        lines += ["", f"guard vetoes: {vetoes['total']:,} (latest first)"]
        for v in vetoes["recent"]:
            lines.append(
                f"  {v['guard']:<11} {v['similarity']:.3f}  {clip(v['question'], 28):<28} "
                f"≠ {clip(v['candidate'], 26)}"
            )
    return "\n".join(lines)
