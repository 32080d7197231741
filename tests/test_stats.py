"""`thrift stats`: the figures agree with a hand count over real `thrift ask` runs.

Every number the test expects is counted from the asks' own `--json` reports (the call
and lookup times are what the events record), never from the wall clock.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import statistics
import time
from pathlib import Path

import pytest

from thrift_cli.stats import percentiles, price_for, tokens

NS = "main"


def tok(text_or_bytes: str | int) -> int:
    n = len(text_or_bytes.encode()) if isinstance(text_or_bytes, str) else text_or_bytes
    return math.ceil(n / 4)


def stats_json(thrift, *args: str) -> dict:
    ran = thrift("stats", "--json", *args)
    assert ran.code == 0, ran.stderr
    return json.loads(ran.stdout)


@pytest.fixture
def scripted(thrift, fake_llm, isolated_env, tmp_path):
    """The scripted sequence; returns the --json reports of every ask, by name."""
    slow = fake_llm.command("--sleep", "0.3")  # every call takes at least 0.3 s

    def ask(*args: str, command: list[str] = slow, code: int = 0) -> dict:
        ran = thrift("ask", "--json", "-n", NS, *args, "--", *command)
        assert ran.code == code, ran.stderr
        return ran.report

    r = {}
    r["q1_miss"] = ask("What is semantic caching?")
    r["q1_exact"] = ask("What is semantic caching?")
    r["q1_semantic"] = ask("What does semantic caching mean?")
    r["java_miss"] = ask("Is Java faster than Python?")
    r["vetoed_miss"] = ask("Is Python faster than Java?")
    r["failed"] = ask("Will this fail?", command=fake_llm.command("--exit", "5"), code=5)
    r["timed_out"] = ask(
        "Will this time out?", "--timeout", "0.2", command=fake_llm.command("--sleep", "30"), code=124
    )
    r["ttl_miss"] = ask("How long is a piece of string?", "--ttl", "1h")
    # The entry expires (written as another process's clock would have it), and is asked again.
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute(
            "UPDATE entries SET expires_at = ? WHERE id = ?", (time.time() - 1, r["ttl_miss"]["entry_id"])
        )
    r["expired_miss"] = ask("How long is a piece of string?")
    r["lookup_only"] = ask("Never asked before?", "--lookup-only", code=3)
    # An imported answer: no local call made it, so its hit's time saved is estimated.
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"question": "What is an imported answer?", "answer": "One from a file."}) + "\n"
    )
    assert thrift("import", str(pairs), "-n", NS).code == 0
    r["imported_hit"] = ask("What is an imported answer?")
    # Another namespace, for --namespace.
    r["other_miss"] = thrift("ask", "--json", "-n", "other", "Something else?", "--", *slow).report
    return r


def test_stats_agree_with_a_hand_count(thrift, scripted, fake_llm):
    r = scripted
    (Path(os.environ["THRIFT_HOME"]) / "config.toml").write_text('[price]\n"main" = 0.01\n"oth*" = 0.5\n')
    f = stats_json(thrift)

    hits = [r["q1_exact"], r["q1_semantic"], r["imported_hit"]]
    misses = [v for k, v in r.items() if v not in hits]
    assert [h["tier"] for h in hits] == ["exact", "semantic", "exact"]
    assert all(m["tier"] == "miss" for m in misses)
    assert f["lookups"] == len(hits) + len(misses) == 12
    assert f["hits"] == 3 and f["hit_rate"] == 0.25
    assert f["hits_by_tier"] == {"exact": 2, "semantic": 1}
    assert f["hits_by_source"] == {"local": 3, "redis": 0, "remote": 0}
    assert f["misses"] == {
        "total": 9,
        "stored": 6,  # q1, java, the vetoed question, string, string again, other
        "failed": 1,
        "timed_out": 1,
        "lookup_only": 1,
        "not_stored": 0,
        "vetoed": 1,  # also counted as stored
    }

    # Entries now: q1, java, the vetoed question, string (stored again), the import; other.
    assert f["entries"]["by_namespace"] == {"main": 5, "other": 1} and f["entries"]["total"] == 6
    assert f["entries"]["expired"] == 0  # the expired one was purged by the next store

    # Time saved: each measured hit saves its entry's call minus its own lookup.
    stored_by = {m["entry_id"]: m["call_ms"] for m in misses if m["stored"]}
    measured = [stored_by[h["entry_id"]] - h["lookup_ms"] for h in hits[:2]]
    assert all(stored_by[h["entry_id"]] >= 300 for h in hits[:2])  # the fake's sleep
    median = statistics.median([m["call_ms"] for m in misses if m["stored"] and m["namespace"] == NS])
    estimated = median - r["imported_hit"]["lookup_ms"]
    saved = f["time_saved"]
    assert saved["measured_hits"] == 2 and saved["estimated_hits"] == 1 and saved["unknown_hits"] == 0
    # JSON rounds each recorded time to 0.01 ms, and the figures to 1 ms.
    assert saved["measured_seconds"] == pytest.approx(sum(measured) / 1000, abs=0.002)
    assert saved["estimated_seconds"] == pytest.approx(estimated / 1000, abs=0.002)
    assert saved["seconds"] == pytest.approx((sum(measured) + estimated) / 1000, abs=0.003)

    # Tokens: ceil(bytes / 4) of the question asked plus of the answer served.
    asked = ["What is semantic caching?", "What does semantic caching mean?", "What is an imported answer?"]
    expected_tokens = sum(tok(q) + tok(h["answer_bytes"]) for q, h in zip(asked, hits, strict=True))
    assert f["tokens_saved"] == expected_tokens
    money = f["money_saved"]["by_namespace"]["main"]
    assert money["price_per_1k"] == 0.01 and money["price_from"] == "main"
    assert money["usd"] == pytest.approx(expected_tokens / 1000 * 0.01)

    # Latency percentiles of hits by tier, and thrift's lookup time on misses that called.
    assert f["latency_ms"]["exact"]["n"] == 2
    assert f["latency_ms"]["exact"]["p99"] == pytest.approx(
        max(r["q1_exact"]["lookup_ms"], r["imported_hit"]["lookup_ms"]), abs=0.01
    )
    assert f["latency_ms"]["semantic"] == {
        "n": 1,
        **dict.fromkeys(("p50", "p95", "p99"), pytest.approx(r["q1_semantic"]["lookup_ms"], abs=0.01)),
    }
    called = [m for m in misses if m["call_ms"] is not None]
    assert f["latency_ms"]["miss_overhead"]["n"] == len(called) == 8

    # Top questions: q1's entry served twice, the imported one once.
    top = f["top_questions"]
    assert [(t["question"], t["hits"]) for t in top] == [
        ("What is semantic caching?", 2),
        ("What is an imported answer?", 1),
    ]
    assert top[0]["entry_id"] == r["q1_miss"]["entry_id"] and top[0]["last_hit_at"] > 0

    # The veto, with its pair.
    (veto,) = f["vetoes"]["recent"]
    assert f["vetoes"]["total"] == 1
    assert (veto["question"], veto["candidate"], veto["guard"]) == (
        "Is Python faster than Java?",
        "Is Java faster than Python?",
        "word-order",
    )
    assert veto["similarity"] == r["vetoed_miss"]["vetoed"][0]["similarity"]

    # The text form says the same, in 80 columns.
    ran = thrift("stats")
    text = ran.stdout.decode()
    assert ran.code == 0
    assert "lookups      12: 3 hits (25.0%), 9 misses" in text
    assert "word-order" in text and "What is semantic caching?" in text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert f["last_event_id"] == 12


def test_namespace_and_since_filter(thrift, scripted):
    other = stats_json(thrift, "--namespace", "other")
    assert other["lookups"] == 1 and other["misses"]["stored"] == 1 and other["hits"] == 0
    assert other["entries"]["by_namespace"] == {"other": 1}
    assert other["namespace"] == "other"

    assert stats_json(thrift, "--since", "1h")["lookups"] == 12
    future = stats_json(thrift, "--since", "2999-01-01")
    assert future["lookups"] == 0 and future["time_saved"]["seconds"] == 0
    assert future["entries"]["total"] == 6  # entries are what is cached now
    # A window that starts at the last miss: only it and the events after it.
    last = scripted["other_miss"]
    with sqlite3.connect(Path(os.environ["THRIFT_HOME"]) / "cache.db") as conn:
        (at,) = conn.execute("SELECT at FROM events ORDER BY id DESC LIMIT 1").fetchone()
    assert last["tier"] == "miss"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(math.floor(at)))
    window = stats_json(thrift, "--since", iso)
    assert window["lookups"] >= 1 and window["misses"]["stored"] >= 1


@pytest.mark.parametrize("since", ["yesterday", "-1h", "1x", "2026-13-01", "1h\n"])
def test_a_bad_since_is_one_line_and_exit_2(thrift, since):
    ran = thrift("stats", "--since", since)
    assert ran.code == 2 and ran.stdout == b""
    assert len(ran.stderr.strip().splitlines()) == 1 and ran.stderr.startswith("thrift: ")
    assert "--since" in ran.stderr and "Traceback" not in ran.stderr


def test_no_cache_prints_zeros_and_creates_nothing(thrift, isolated_env):
    ran = thrift("stats", "--json")
    assert ran.code == 0
    f = json.loads(ran.stdout)
    assert f["lookups"] == 0 and f["hits"] == 0 and f["entries"]["total"] == 0
    assert f["time_saved"]["seconds"] == 0 and f["top_questions"] == [] and f["schema"] == 1
    text = thrift("stats")
    assert text.code == 0 and "no cache yet" in text.stderr and b"lookups      0" in text.stdout
    assert not isolated_env.exists()


def test_a_bad_price_table_is_one_line_and_exit_2(thrift, isolated_env):
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text('[price]\n"llm -m gpt-4o*" = "cheap"\n')
    ran = thrift("stats")
    assert ran.code == 2 and len(ran.stderr.strip().splitlines()) == 1
    assert "price" in ran.stderr and "Traceback" not in ran.stderr
    (isolated_env / "config.toml").write_text('price."llm -m gpt-4o*" = 0.0006\nprice_per_1k = 0.001\n')
    assert thrift("stats").code == 0
    assert thrift("doctor").code in (0, 1) and "Traceback" not in thrift("doctor").stderr


def test_price_rules():
    prices = {"llm -m gpt-4o*": 0.0006, "llm -m gpt-4o-mini*": 0.0003, "docs": 0.01}
    assert price_for("llm -m gpt-4o-mini {}", prices, 0.002) == (0.0003, "llm -m gpt-4o-mini*")  # longest
    assert price_for("llm -m gpt-4o {}", prices, 0.002) == (0.0006, "llm -m gpt-4o*")
    assert price_for("docs", prices, 0.002) == (0.01, "docs")
    assert price_for("docs2", prices, 0.002) == (0.002, "default")
    assert price_for("ollama run llama3 {}", {}, 0.002) == (0.002, "default")


def test_token_estimate_and_percentiles():
    assert [tokens(n) for n in (None, 0, 1, 4, 5)] == [0, 0, 1, 1, 2]
    assert percentiles([]) == {"n": 0, "p50": None, "p95": None, "p99": None}
    assert percentiles([float(i) for i in range(1, 101)]) == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([3.0, 1.0, 2.0]) == {"n": 3, "p50": 2.0, "p95": 3.0, "p99": 3.0}


def test_a_hit_from_redis_on_another_machine_is_counted_as_unknown_time(
    thrift, fake_llm, redis_server, tmp_path
):
    """Machine B is served machine A's answer from Redis: a redis hit on B, and B has no
    call of its own to measure or estimate it by."""
    import uuid

    env_a = {
        "REDIS_URL": redis_server.url,
        "THRIFT_HOME": str(tmp_path / "a"),
        "THRIFT_TENANT": uuid.uuid4().hex[:12],
    }
    env_b = {**env_a, "THRIFT_HOME": str(tmp_path / "b")}
    ask = ["ask", "--json", "-n", NS, "What is RAG?", "--", *fake_llm.command("--sleep", "0.3")]
    assert thrift(*ask, env=env_a).report["stored"] is True
    hit = thrift(*ask, env=env_b).report
    assert (hit["tier"], hit["source"]) == ("exact", "redis")
    ran = thrift("stats", "--json", env=env_b)
    f = json.loads(ran.stdout)
    assert f["hits_by_source"] == {"local": 0, "redis": 1, "remote": 0}
    assert f["time_saved"] == {
        "seconds": 0.0,
        "measured_seconds": 0.0,
        "measured_hits": 0,
        "estimated_seconds": 0.0,
        "estimated_hits": 0,
        "unknown_hits": 1,
    }
    # On A, the same entry's call is known: a local hit there is measured.
    local = thrift(*ask, env=env_a).report
    assert (local["tier"], local["source"]) == ("exact", "redis")  # Redis comes first in the chain
    f_a = json.loads(thrift("stats", "--json", env=env_a).stdout)
    assert f_a["hits_by_source"]["redis"] == 1 and f_a["time_saved"]["measured_hits"] == 1
