"""The figures of `thrift stats` and `thrift top`: computed from the events table.

Pure functions over an open connection to the cache file that only read it, all inside one
read transaction (a WAL snapshot: consistent, and no writer waits for it). No model, no
numpy. A window is `since` (unix seconds, None: all time) and an optional namespace;
`figures()` returns a plain dict whose layout is the `--json` schema documented in the
README (`SCHEMA` is bumped on any incompatible change). `last_event_id` in it lets a
poller (the TUI) skip a refresh when no event was recorded since the last one. Beside it,
for the live views: `timeline()` (lookups and hits per minute, hour or day), `recent()`
(the latest lookups, with the question asked and the one matched) and `entry_detail()`.

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
# The latency histogram's bucket edges, in ms: [0, 1), [1, 2) ... [1000, inf).
HISTOGRAM_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# The timeline's bucket widths, in seconds: the narrowest that fits the window in its points.
TIMELINE_STEPS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
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


def histogram(values: list[float], edges: tuple[float, ...] = HISTOGRAM_EDGES_MS) -> list[int]:
    """How many of `values` fall in each bucket: below edges[0], [edges[i], edges[i+1]),
    and at or above the last edge (len(edges) + 1 counts). Counted on the sorted values
    (cheap when they already are: `_latencies` sorts them once for the percentiles too)."""
    import bisect

    ordered = sorted(values)
    below = [bisect.bisect_left(ordered, edge) for edge in edges]
    return [b - a for a, b in zip([0, *below], [*below, len(ordered)], strict=True)]


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


def _entries_figure(entries: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    live = {ns: counts[0] for ns, counts in sorted(entries.items())}
    return {"total": sum(live.values()), "expired": sum(c[1] for c in entries.values()), "by_namespace": live}


def entry_counts(conn: Any, window: Window, now: float | None = None) -> dict[str, Any]:
    """The `entries` figure alone (cheap: the entries table's namespace index)."""
    return _entries_figure(_entries(conn, window, time.time() if now is None else now))


def last_event_id(conn: Any) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])


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
    for values in found.values():
        values.sort()  # once, for both the percentiles and the histogram
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


def timeline(
    conn: Any,
    window: Window,
    *,
    now: float | None = None,
    points: int = 60,
    known: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Lookups and hits per bucket of time, oldest first, from the window's start (or the
    first event) to `now`: the narrowest of TIMELINE_STEPS that needs at most `points`
    buckets (buckets start at multiples of the step, in unix time). Each count is read from
    its covering index (events_hits, events_misses).

    `known`: an earlier timeline of the same window (the same `since`) and points. Its
    buckets but the last two are kept, and only the events from there on are read: a
    refresh reads the minutes that changed, not the month. (Two: an event is stamped when
    its lookup ends, and may commit a moment later, after a read, into the bucket before.)"""
    now = time.time() if now is None else now
    start = window.since
    if start is None:
        where, params = window.where()
        start = conn.execute(f"SELECT min(at) FROM events WHERE {where}", params).fetchone()[0]
        start = now if start is None else start
    span = max(now - start, 0.0)
    step = next((s for s in TIMELINE_STEPS if span / s < points), TIMELINE_STEPS[-1])
    last = math.floor(now / step)
    n = min(last - math.floor(start / step) + 1, points)
    first = (last - n + 1) * step
    lookups, hits = [0] * n, [0] * n
    read_from = max(first, start)
    if known is not None and known["step_seconds"] == step and known["lookups"]:
        reread = known["start"] + (len(known["lookups"]) - 2) * step
        if first <= reread:
            offset = int((first - known["start"]) // step)
            for i in range(n):
                j = i + offset
                if 0 <= j < len(known["lookups"]) - 2:
                    lookups[i], hits[i] = known["lookups"][j], known["hits"][j]
            read_from = max(read_from, reread)
    where, params = Window(since=read_from, namespace=window.namespace).where()
    for condition, into in ((_HIT, (lookups, hits)), ("tier = 'miss'", (lookups,))):
        rows = conn.execute(
            f"SELECT CAST((at - ?) / ? AS INTEGER), count(*) FROM events "
            f"WHERE {condition} AND {where} GROUP BY 1",
            (first, step, *params),
        )
        for bucket, count in rows:
            if 0 <= bucket < n:
                for counts in into:
                    counts[bucket] += count
    return {"step_seconds": step, "start": first, "lookups": lookups, "hits": hits}


def recent(conn: Any, window: Window, *, limit: int = 50, after_id: int = 0) -> list[dict[str, Any]]:
    """The window's latest lookups after event `after_id`, newest first: what was asked,
    how it was answered and, for a semantic hit, the stored question it matched."""
    where, params = window.where("e")
    rows = conn.execute(
        "SELECT e.id, e.at, e.namespace, e.tier, e.source, e.similarity, e.latency_ms, e.call_ms, "
        "e.outcome, e.entry_id, e.question, n.question FROM events e "
        f"LEFT JOIN entries n ON n.id = e.entry_id WHERE e.id > ? AND {where} ORDER BY e.id DESC LIMIT ?",
        (after_id, *params, limit),
    )
    feed = []
    for id_, at, ns, tier, source, sim, latency, call, outcome, entry_id, asked, held in rows:
        feed.append(
            {
                "id": id_,
                "at": at,
                "namespace": ns,
                "tier": tier,
                "source": source,
                "similarity": None if sim is None else round(sim, 4),
                "latency_ms": round(latency, 2),
                "call_ms": None if call is None else round(call, 1),
                "outcome": outcome,
                "entry_id": entry_id,
                # Exact hits and stored misses keep no question of their own: their entry's.
                "question": asked if asked is not None else held,
                "matched": held if tier == "semantic" else None,
            }
        )
    return feed


def entry_detail(conn: Any, entry_id: str, *, vetoes: int = RECENT_VETOES) -> dict[str, Any] | None:
    """One entry as stored (question, answer, hits...) and the latest lookups a guard
    refused it to; None when no entry has that id (forgotten, or never here)."""
    row = conn.execute(
        "SELECT id, namespace, question, answer, created_at, expires_at, hit_count, last_hit_at "
        "FROM entries WHERE id = ?",
        (entry_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("id", "namespace", "question", "answer", "created_at", "expires_at", "hits", "last_hit_at")
    detail = dict(zip(keys, row, strict=True))
    detail["vetoes"] = [
        {"at": at, "question": q, "similarity": round(sim, 4), "guard": guard}
        for at, q, sim, guard in conn.execute(
            "SELECT at, question, similarity, guard FROM vetoes WHERE namespace = ? AND candidate = ? "
            "ORDER BY id DESC LIMIT ?",
            (detail["namespace"], detail["question"], vetoes),
        )
    ]
    return detail


# -- the figures, from the rows ---------------------------------------------------------

_LATENCIES = ("exact", "semantic", "miss_overhead")


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
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "since": window.since,
        "namespace": window.namespace,
        "last_event_id": last_event_id,
        "entries": _entries_figure(entries),
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
        "latency_ms": {name: percentiles(list(latencies.get(name, []))) for name in _LATENCIES},
        "latency_histogram": {
            "edges_ms": list(HISTOGRAM_EDGES_MS),
            **{name: histogram(list(latencies.get(name, []))) for name in _LATENCIES},
        },
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
