"""The figures of `thrift stats` (and, later, `thrift top`): computed from the events table.

Pure functions over an open connection to the cache file that only read it, all inside one
read transaction (a WAL snapshot: consistent, and no writer waits for it). No model, no
numpy. A window is `since` (unix seconds, None: all time) and an optional namespace;
`figures()` returns a plain dict whose layout is the `--json` schema documented in the
README (`SCHEMA` is bumped on any incompatible change). `last_event_id` in it lets a
poller (the TUI) skip a refresh when no event was recorded since the last one.

Estimates, stated where they are made:
- tokens: a text of B UTF-8 bytes counts ceil(B / 4) tokens (`TOKEN_BYTES`), the
  question and the answer each; no tokenizer is loaded (none may be downloaded, and each
  model has its own).
- time saved by a hit: the call time of the miss that stored the entry served, minus the
  hit's lookup latency. A hit on an entry no local miss stored (imported, pulled, served
  from Redis) is estimated at its namespace's median call time (else all namespaces').
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = 1
TOKEN_BYTES = 4  # UTF-8 bytes per token: OpenAI's rule of thumb (~4 characters of English)
TOP_QUESTIONS = 10
RECENT_VETOES = 10
_HIT = "tier IN ('exact', 'semantic')"
_STORED_MISS = "tier = 'miss' AND outcome = 'stored'"  # the partial index events_stored_entry


@dataclass(frozen=True)
class Window:
    """Which events count: from `since` (unix seconds; None: all), of `namespace` (None: all)."""

    since: float | None = None
    namespace: str | None = None

    def where(self, alias: str = "") -> tuple[str, tuple[Any, ...]]:
        """SQL conditions (to AND with others) and their parameters."""
        prefix = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append(f"{prefix}at >= ?")
            params.append(self.since)
        if self.namespace is not None:
            clauses.append(f"{prefix}namespace = ?")
            params.append(self.namespace)
        return " AND ".join(clauses) or "1", tuple(params)


def price_for(namespace: str, prices: Mapping[str, float], default: float) -> tuple[float, str]:
    """The price per 1,000 tokens of `namespace`, and which rule gave it: the `[price]` key
    equal to the namespace, else the longest glob pattern (fnmatch: `*`, `?`, `[...]`)
    that matches the whole namespace, else `default`."""
    if namespace in prices:
        return prices[namespace], namespace
    matching = [p for p in prices if fnmatch.fnmatchcase(namespace, p)]
    if matching:
        best = max(matching, key=len)
        return prices[best], best
    return default, "default"


def tokens(byte_count: int | None) -> int:
    """The tokens a text of `byte_count` UTF-8 bytes is estimated to hold."""
    return -(-(byte_count or 0) // TOKEN_BYTES)


def percentiles(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, p99 of `values` (nearest rank: the smallest value with at least p% of
    the values at or below it); None for each percentile when there are none."""
    ordered = sorted(values)

    def rank(p: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)], 2)

    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99)}


def empty(window: Window, default_price: float, now: float | None = None) -> dict[str, Any]:
    """The figures of a cache that does not exist yet: zeros."""
    return _assemble(window, now, 0, {}, [], {}, [], {}, {}, [], 0, [], {}, default_price)


def figures(
    conn: Any,
    window: Window,
    *,
    prices: Mapping[str, float] | None = None,
    default_price: float = 0.002,
    now: float | None = None,
    top: int = TOP_QUESTIONS,
    recent_vetoes: int = RECENT_VETOES,
) -> dict[str, Any]:
    """Every figure of `window`, read from `conn` in one snapshot (see the module's doc)."""
    now = time.time() if now is None else now
    conn.execute("BEGIN")
    try:
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        counts = _miss_counts(conn, window)
        hit_groups = _hit_groups(conn, window)
        for _entry, _ns, n, exact, redis, remote, *_rest in hit_groups:
            for key, count in (
                (("exact", "local"), exact),
                (("semantic", "local"), n - exact),
                (("source", "redis"), redis),
                (("source", "remote"), remote),
            ):
                counts[(*key, None)] = counts.get((*key, None), 0) + count
        saved = _saved(hit_groups, _calls(conn, {g[0] for g in hit_groups}))
        medians = _medians(conn, {row[0] for row in saved if row[4]})
        vetoed_misses = _vetoed_misses(conn, window)
        entries = _entries(conn, window, now)
        latencies = _latencies(conn, window)
        top_rows = _top(conn, hit_groups, top)
        veto_total, veto_rows = _vetoes(conn, window, recent_vetoes)
    finally:
        conn.execute("ROLLBACK")
    return _assemble(
        window,
        now,
        last,
        counts,
        saved,
        medians,
        top_rows,
        entries,
        latencies,
        veto_rows,
        veto_total,
        [vetoed_misses],
        dict(prices or {}),
        default_price,
    )


# -- the queries --------------------------------------------------------------------------


def _miss_counts(conn: Any, window: Window) -> dict[tuple[str, str, str | None], int]:
    where, params = window.where()
    rows = conn.execute(
        f"SELECT outcome, count(*) FROM events WHERE tier = 'miss' AND {where} GROUP BY outcome", params
    )
    return {("miss", "local", outcome): n for outcome, n in rows}


def _hit_groups(conn: Any, window: Window) -> list[tuple[Any, ...]]:
    """One row per entry served in the window: (entry_id, namespace, hits, exact ones,
    from redis, from remote, sum of latency_ms, tokens, last hit)."""
    where, params = window.where()
    per_text = f"(coalesce({{}}, 0) + {TOKEN_BYTES - 1}) / {TOKEN_BYTES}"
    return list(
        conn.execute(
            "SELECT entry_id, min(namespace), count(*), sum(tier = 'exact'), sum(source = 'redis'), "
            "sum(source = 'remote'), sum(latency_ms), "
            f"sum({per_text.format('answer_bytes')} + {per_text.format('question_bytes')}), max(at) "
            f"FROM events WHERE {_HIT} AND {where} GROUP BY entry_id",
            params,
        )
    )


def _calls(conn: Any, entry_ids: set[str]) -> dict[str, float]:
    """The call time of the miss that stored each of `entry_ids` (the first one, should a
    race have recorded two), through the partial index events_stored_entry."""
    calls: dict[str, float] = {}
    ids = sorted(i for i in entry_ids if i is not None)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"SELECT entry_id, call_ms FROM events WHERE {_STORED_MISS} AND call_ms IS NOT NULL "
            f"AND entry_id IN ({','.join('?' * len(chunk))}) ORDER BY id DESC",
            chunk,
        )
        calls.update(rows)  # the oldest last: it wins
    return calls


def _saved(hit_groups: list[tuple[Any, ...]], calls: Mapping[str, float]) -> list[tuple[Any, ...]]:
    """Per namespace: (namespace, hits, hits with a known call, ms saved by those, hits
    without one, their lookup ms, tokens)."""
    per: dict[str, list[Any]] = {}
    for entry_id, ns, n, _exact, _redis, _remote, latency, tokens_, _last in hit_groups:
        row = per.setdefault(ns, [ns, 0, 0, 0.0, 0, 0.0, 0])
        row[1] += n
        row[6] += tokens_ or 0
        call = calls.get(entry_id)
        if call is not None:
            row[2] += n
            row[3] += n * call - (latency or 0.0)
        else:
            row[4] += n
            row[5] += latency or 0.0
    return [tuple(row) for row in per.values()]


def _vetoed_misses(conn: Any, window: Window) -> int:
    where, params = window.where("v")
    return int(
        conn.execute(
            f"SELECT count(DISTINCT v.event_id) FROM vetoes v JOIN events e ON e.id = v.event_id "
            f"WHERE e.tier = 'miss' AND {where}",
            params,
        ).fetchone()[0]
    )


def _entries(conn: Any, window: Window, now: float) -> dict[str, tuple[int, int]]:
    """namespace -> (live entries, expired ones not yet purged). Entries are what is
    cached now: `since` does not apply."""
    where, params = Window(namespace=window.namespace).where()
    rows = conn.execute(
        "SELECT namespace, sum(expires_at IS NULL OR expires_at > ?), "
        f"sum(expires_at IS NOT NULL AND expires_at <= ?) FROM entries WHERE {where} GROUP BY namespace",
        (now, now, *params),
    )
    return {ns: (int(live), int(expired)) for ns, live, expired in rows}


def _medians(conn: Any, namespaces: set[str]) -> dict[str | None, float]:
    """The median call time of each of `namespaces` (of all stored misses ever; key None:
    of every namespace), for the hits whose own call is not known."""
    if not namespaces:
        return {}
    medians: dict[str | None, float] = {}
    for ns in [*sorted(namespaces), None]:
        where = "namespace = ?" if ns is not None else "1"
        calls = [
            r[0]
            for r in conn.execute(
                f"SELECT call_ms FROM events WHERE {_STORED_MISS} AND call_ms IS NOT NULL AND {where}",
                (ns,) if ns is not None else (),
            )
        ]
        if calls:
            calls.sort()
            middle = len(calls) // 2
            medians[ns] = calls[middle] if len(calls) % 2 else (calls[middle - 1] + calls[middle]) / 2
    return medians


def _latencies(conn: Any, window: Window) -> dict[str, list[float]]:
    """The latency_ms of the window's hits by tier, and of its misses that ran a call
    (each query read from its covering index: events_hits, events_misses)."""
    where, params = window.where()
    found: dict[str, list[float]] = {"exact": [], "semantic": [], "miss_overhead": []}
    for tier, latency in conn.execute(
        f"SELECT tier, latency_ms FROM events WHERE {_HIT} AND {where}", params
    ):
        found[tier].append(latency)
    found["miss_overhead"] = [
        r[0]
        for r in conn.execute(
            f"SELECT latency_ms FROM events WHERE tier = 'miss' AND call_ms IS NOT NULL AND {where}", params
        )
    ]
    return found


def _top(conn: Any, hit_groups: list[tuple[Any, ...]], limit: int) -> list[tuple[Any, ...]]:
    """(entry_id, namespace, question, hits, last hit) of the most served entries."""
    per: dict[str, list[Any]] = {}
    for entry_id, ns, n, _exact, _redis, _remote, _latency, _tokens, last in hit_groups:
        row = per.setdefault(entry_id, [entry_id, ns, None, 0, last])
        row[3] += n
        row[4] = max(row[4], last)
    best = sorted(per.values(), key=lambda r: (-r[3], -r[4]))[:limit]
    for row in best:
        found = conn.execute("SELECT question FROM entries WHERE id = ?", (row[0],)).fetchone()
        row[2] = found[0] if found else None
    return [tuple(row) for row in best]


def _vetoes(conn: Any, window: Window, limit: int) -> tuple[int, list[tuple[Any, ...]]]:
    where, params = window.where()
    total = conn.execute(f"SELECT count(*) FROM vetoes WHERE {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT at, namespace, question, candidate, similarity, guard FROM vetoes WHERE {where} "
        "ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return int(total), list(rows)


# -- the figures, from the rows ---------------------------------------------------------


def _outcome(outcome: str | None) -> str:
    """A miss's outcome (ask.py) as the category stats reports."""
    if outcome == "stored":
        return "stored"
    if outcome in ("lookup-only", "lookup"):
        return "lookup_only"
    if outcome == "timed out":
        return "timed_out"
    if outcome is not None and "failed" in outcome:  # command failed (exit N), another ask's call failed
        return "failed"
    return "not_stored"


def _assemble(
    window: Window,
    now: float | None,
    last_event_id: int,
    counts: Mapping[tuple[str, str, str | None], int],
    saved: list[tuple[Any, ...]],
    medians: Mapping[str | None, float],
    top_rows: list[tuple[Any, ...]],
    entries: Mapping[str, tuple[int, int]],
    latencies: Mapping[str, list[float]],
    veto_rows: list[tuple[Any, ...]],
    veto_total: int,
    vetoed_misses: list[int],
    prices: Mapping[str, float],
    default_price: float,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    hits_by_tier = {"exact": 0, "semantic": 0}
    hits_by_source: dict[str, int] = {"local": 0, "redis": 0, "remote": 0}
    misses = {"total": 0, "stored": 0, "failed": 0, "timed_out": 0, "lookup_only": 0, "not_stored": 0}
    for (tier, source, outcome), n in counts.items():
        if tier == "source":  # hits served by a shared tier: counted under local below too
            hits_by_source[source] += n
            hits_by_source["local"] -= n
        elif tier in hits_by_tier:
            hits_by_tier[tier] += n
            hits_by_source["local"] += n
        else:
            misses["total"] += n
            misses[_outcome(outcome)] += n
    misses["vetoed"] = sum(vetoed_misses)
    hits = sum(hits_by_tier.values())
    lookups = hits + misses["total"]

    measured_ms = estimated_ms = 0.0
    measured = estimated = unknown = 0
    all_tokens = 0
    money: dict[str, dict[str, Any]] = {}
    for ns, _n, known, saved_ms, without, their_latency, ns_tokens in saved:
        measured += known
        measured_ms += saved_ms or 0.0
        median = medians.get(ns, medians.get(None))
        if without and median is not None:
            estimated += without
            estimated_ms += without * median - (their_latency or 0.0)
        else:
            unknown += without
        all_tokens += ns_tokens or 0
        price, rule = price_for(ns, prices, default_price)
        money[ns] = {
            "tokens": ns_tokens or 0,
            "price_per_1k": price,
            "price_from": rule,
            "usd": round((ns_tokens or 0) / 1000 * price, 6),
        }
    live = {ns: counts_[0] for ns, counts_ in sorted(entries.items())}
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "since": window.since,
        "namespace": window.namespace,
        "last_event_id": last_event_id,
        "entries": {
            "total": sum(live.values()),
            "expired": sum(c[1] for c in entries.values()),
            "by_namespace": live,
        },
        "lookups": lookups,
        "hits": hits,
        "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
        "hits_by_tier": hits_by_tier,
        "hits_by_source": hits_by_source,
        "misses": misses,
        "time_saved": {
            "seconds": round((measured_ms + estimated_ms) / 1000, 3),
            "measured_seconds": round(measured_ms / 1000, 3),
            "measured_hits": measured,
            "estimated_seconds": round(estimated_ms / 1000, 3),
            "estimated_hits": estimated,
            "unknown_hits": unknown,
        },
        "tokens_saved": all_tokens,
        "money_saved": {
            "usd": round(sum(m["usd"] for m in money.values()), 6),
            "by_namespace": dict(sorted(money.items())),
        },
        "latency_ms": {name: percentiles(list(values)) for name, values in latencies.items()}
        or {name: percentiles([]) for name in ("exact", "semantic", "miss_overhead")},
        "top_questions": [
            {"question": q, "namespace": ns, "entry_id": entry_id, "hits": n, "last_hit_at": last}
            for entry_id, ns, q, n, last in top_rows
        ],
        "vetoes": {
            "total": veto_total,
            "recent": [
                {
                    "at": at,
                    "namespace": ns,
                    "question": q,
                    "candidate": c,
                    "similarity": round(sim, 4),
                    "guard": guard,
                }
                for at, ns, q, c, sim, guard in veto_rows
            ],
        },
    }
