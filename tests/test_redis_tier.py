"""The Redis tier against a real server: shared exact hits, tenants, TTLs, write-back, and
every way Redis can fail (stopped, closed port, silent port, garbage, out of memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis_servers import RedisServer, closed_port, garbage_server, silent_port

from thrift_cli import keys
from thrift_cli.tiers.redis import RedisTier
from thrift_cli.tiers.resp import Connection, RedisError, ReplyError

QUESTION, PARAPHRASE = "How do I learn to code quickly?", "How can I learn to code fast?"
HEAVY = ["numpy", "thrift_cli.minilm", "onnxruntime", "tokenizers"]


def tenant_env(url: str, home: Path, tenant: str | None = None) -> dict[str, str]:
    return {"REDIS_URL": url, "THRIFT_HOME": str(home), "THRIFT_TENANT": tenant or uuid.uuid4().hex[:12]}


def ask(thrift, env, question, fake_llm, *extra):
    return thrift("ask", "--json", *extra, question, "--", *fake_llm.command(), env=env)


def test_an_answer_from_machine_a_is_an_exact_hit_on_b_without_the_model(
    thrift, fake_llm, redis_server, tmp_path
):
    env_a = tenant_env(redis_server.url, tmp_path / "a", tenant="team")
    env_b = {**env_a, "THRIFT_HOME": str(tmp_path / "b")}
    first = ask(thrift, env_a, QUESTION, fake_llm)
    assert first.code == 0 and first.report["stored"] is True
    # B: a fresh home, the question answered from Redis, the command not run, no model.
    code = (
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {HEAVY!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "ask", "--json", QUESTION, "--", *fake_llm.command()],
        capture_output=True,
        env={**_base_env(), **env_b},
    )
    lines = proc.stderr.decode().strip().splitlines()
    report = json.loads(lines[-2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == first.stdout  # byte for byte, CRLF and all
    assert (report["tier"], report["source"]) == ("exact", "redis")
    assert lines[-1] == "[]"  # no numpy, no model
    assert len(fake_llm.calls) == 1
    # The hit is counted where it was served, and recorded in B's events.
    tier = RedisTier(redis_server.url, tenant="team")
    assert tier.hit_count(keys.exact_key(report["namespace"], QUESTION)) == 1


def test_a_paraphrase_is_not_served_from_redis(thrift, fake_llm, redis_server, tmp_path):
    env_a = tenant_env(redis_server.url, tmp_path / "a", tenant="team-p")
    env_b = {**env_a, "THRIFT_HOME": str(tmp_path / "b")}
    assert ask(thrift, env_a, QUESTION, fake_llm).code == 0
    # On A the paraphrase is a local semantic hit...
    on_a = ask(thrift, env_a, PARAPHRASE, fake_llm)
    assert (on_a.report["tier"], on_a.report["source"]) == ("semantic", "local")
    # ...which is not copied into Redis under the paraphrase's key:
    client = redis_server.client()
    namespace = on_a.report["namespace"]
    assert (
        client.exists(RedisTier(redis_server.url, tenant="team-p").key(keys.exact_key(namespace, PARAPHRASE)))
        == 0
    )
    # B has no vectors for it: Redis cannot serve a paraphrase, so the command runs.
    on_b = ask(thrift, env_b, PARAPHRASE, fake_llm)
    assert on_b.report["tier"] == "miss" and len(fake_llm.calls) == 2


def test_two_tenants_on_one_redis_each_get_their_own_answer(thrift, fake_llm, redis_server, tmp_path):
    env_1 = tenant_env(redis_server.url, tmp_path / "one", tenant="acme")
    env_2 = tenant_env(redis_server.url, tmp_path / "two", tenant="globex")
    llm_1 = [*fake_llm.command("--model", "acme-llm")]
    llm_2 = [*fake_llm.command("--model", "globex-llm")]
    # The same question in the same namespace, answered differently by each tenant.
    first_1 = thrift("ask", "--json", "-n", "shared", QUESTION, "--", *llm_1, env=env_1)
    first_2 = thrift("ask", "--json", "-n", "shared", QUESTION, "--", *llm_2, env=env_2)
    assert first_1.stdout != first_2.stdout and len(fake_llm.calls) == 2
    # Each tenant's second machine gets its own tenant's answer from Redis.
    for env, llm, first in ((env_1, llm_1, first_1), (env_2, llm_2, first_2)):
        other_machine = {**env, "THRIFT_HOME": str(tmp_path / (env["THRIFT_TENANT"] + "-b"))}
        again = thrift("ask", "--json", "-n", "shared", QUESTION, "--", *llm, env=other_machine)
        assert (again.report["source"], again.stdout) == ("redis", first.stdout)
    assert len(fake_llm.calls) == 2


def test_ttls_in_redis_follow_the_entry(thrift, fake_llm, redis_server, tmp_path):
    env = tenant_env(redis_server.url, tmp_path / "h")
    client = redis_server.client()
    tier = RedisTier(redis_server.url, tenant=env["THRIFT_TENANT"])
    lasting = ask(thrift, env, "a question that never expires", fake_llm)
    short = ask(thrift, env, "a question for an hour", fake_llm, "--ttl", "1h")
    forever_ms = client.pttl(
        tier.key(keys.exact_key(lasting.report["namespace"], "a question that never expires"))
    )
    hour_ms = client.pttl(tier.key(keys.exact_key(short.report["namespace"], "a question for an hour")))
    assert 29 * 86400_000 < forever_ms <= 30 * 86400_000  # redis_ttl's default: 30 days
    assert 3500_000 < hour_ms <= 3600_000
    # redis_ttl from the environment (or config.toml) caps entries that never expire.
    capped = ask(thrift, {**env, "THRIFT_REDIS_TTL": "2h"}, "capped at two hours", fake_llm)
    capped_ms = client.pttl(tier.key(keys.exact_key(capped.report["namespace"], "capped at two hours")))
    assert 7100_000 < capped_ms <= 7200_000


def test_a_local_hit_is_written_back_to_redis_and_refresh_replaces_it(
    thrift, fake_llm, redis_server, tmp_path
):
    env = {**tenant_env(redis_server.url, tmp_path / "h"), "THRIFT_NAMESPACE": "one-namespace"}
    tier = RedisTier(redis_server.url, tenant=env["THRIFT_TENANT"])
    first = ask(thrift, env, QUESTION, fake_llm)
    key = tier.key(keys.exact_key(first.report["namespace"], QUESTION))
    client = redis_server.client()
    client.delete(key)  # evicted, or stored while Redis was down
    local = ask(thrift, env, QUESTION, fake_llm)
    assert (local.report["tier"], local.report["source"]) == ("exact", "local")
    assert json.loads(client.get(key))["id"] == first.report["entry_id"]  # written back
    served = ask(thrift, env, QUESTION, fake_llm)
    assert served.report["source"] == "redis" and len(fake_llm.calls) == 1
    # --refresh calls again and replaces the Redis copy with the new entry.
    refreshed = thrift(
        "ask", "--json", "--refresh", QUESTION, "--", *fake_llm.command("--model", "newer"), env=env
    )
    assert refreshed.code == 0 and len(fake_llm.calls) == 2
    stored = json.loads(client.get(key))
    assert stored["id"] == refreshed.report["entry_id"] and stored["answer"].startswith("[newer]")


def test_redis_holding_garbage_under_a_key_is_a_miss_with_one_warning(
    thrift, fake_llm, redis_server, tmp_path
):
    env = tenant_env(redis_server.url, tmp_path / "h")
    tier = RedisTier(redis_server.url, tenant=env["THRIFT_TENANT"])
    namespace = keys.command_namespace(fake_llm.command())
    key = tier.key(keys.exact_key(namespace, QUESTION))
    client = redis_server.client()
    for value in (b"not json", json.dumps({"answer": "forged", "question_hash": "v1:00"}).encode()):
        client.set(key, value)
        ran = ask(thrift, env, QUESTION, fake_llm, "--no-store")
        assert ran.code == 0 and ran.report["tier"] == "miss"
        assert b"forged" not in ran.stdout
        warnings = [line for line in ran.stderr.splitlines() if line.startswith("thrift: warning")]
        assert len(warnings) == 1 and "does not hold a thrift entry" in warnings[0]


# -- Redis failing: the answer and exit code as without Redis, one warning, nothing lost


def _faulty_ask(thrift, fake_llm, url: str, home: Path, *extra: str):
    env = tenant_env(url, home)
    started = time.perf_counter()
    ran = thrift("ask", "--json", *extra, QUESTION, "--", *fake_llm.command(), env=env)
    return ran, time.perf_counter() - started, env


def _assert_served_as_without_redis(thrift, fake_llm, ran, env, calls_before: int):
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith(b"[fake-1] Answer to")
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("thrift: warning")]
    assert len(warnings) == 1 and "Redis at" in warnings[0] and "using the local cache only" in warnings[0]
    assert len([line for line in ran.stderr.splitlines() if line.startswith("thrift:")]) == 1
    assert "Traceback" not in ran.stderr
    # Nothing lost locally: the same question is now an exact hit from the local file.
    again = thrift("ask", "--json", QUESTION, "--", *fake_llm.command(), env=env)
    assert again.code == 0 and again.stdout == ran.stdout
    assert (again.report["tier"], again.report["source"]) == ("exact", "local")
    assert len(fake_llm.calls) == calls_before + 1


def test_redis_on_a_closed_port(thrift, fake_llm, tmp_path):
    ran, _, env = _faulty_ask(thrift, fake_llm, f"redis://127.0.0.1:{closed_port()}/0", tmp_path / "h")
    _assert_served_as_without_redis(thrift, fake_llm, ran, env, 0)


def test_redis_that_accepts_and_never_answers(thrift, fake_llm, tmp_path):
    with silent_port() as port:
        ran, seconds, env = _faulty_ask(thrift, fake_llm, f"redis://127.0.0.1:{port}/0", tmp_path / "h")
        _assert_served_as_without_redis(thrift, fake_llm, ran, env, 0)
    assert "timed out" in ran.stderr


def test_redis_answering_garbage(thrift, fake_llm, tmp_path):
    with garbage_server() as port:
        ran, _, env = _faulty_ask(thrift, fake_llm, f"redis://127.0.0.1:{port}/0", tmp_path / "h")
        _assert_served_as_without_redis(thrift, fake_llm, ran, env, 0)


def test_redis_out_of_memory(thrift, fake_llm, tmp_path):
    with RedisServer(maxmemory="1mb") as full:
        client = full.client()
        filler = b"x" * 100_000
        with pytest.raises(Exception, match="maxmemory"):
            for i in range(100):
                client.set(f"filler:{i}", filler)
        ran, _, env = _faulty_ask(thrift, fake_llm, full.url, tmp_path / "h")
        _assert_served_as_without_redis(thrift, fake_llm, ran, env, 0)
        assert "OOM" in ran.stderr


def test_redis_stopped_mid_run_then_back(thrift, fake_llm, own_redis, tmp_path):
    env = tenant_env(own_redis.url, tmp_path / "h")
    assert ask(thrift, env, QUESTION, fake_llm).code == 0
    own_redis.stop()
    second = ask(thrift, env, "a second question", fake_llm)
    assert second.code == 0 and second.report["stored"] is True
    assert len([line for line in second.stderr.splitlines() if "Redis at" in line]) == 1
    # The first answer is still served, from the local file.
    first_again = ask(thrift, env, QUESTION, fake_llm)
    assert (first_again.report["tier"], first_again.report["source"]) == ("exact", "local")
    own_redis.start()
    # Back: the next local hit is written back, and a second machine gets it from Redis.
    assert ask(thrift, env, "a second question", fake_llm).report["source"] == "local"
    other = ask(thrift, {**env, "THRIFT_HOME": str(tmp_path / "other")}, "a second question", fake_llm)
    assert other.report["source"] == "redis" and len(fake_llm.calls) == 2


def test_the_exit_code_of_a_failing_command_is_the_same_with_redis_down(thrift, fake_llm, tmp_path):
    env = tenant_env(f"redis://127.0.0.1:{closed_port()}/0", tmp_path / "h")
    ran = thrift("ask", QUESTION, "--", *fake_llm.command("--exit", "7"), env=env)
    without = thrift(
        "ask", QUESTION, "--", *fake_llm.command("--exit", "7"), env={"THRIFT_HOME": str(tmp_path / "x")}
    )
    assert ran.code == without.code == 7


# -- the client itself ---------------------------------------------------------------------


def test_the_client_round_trips_through_a_real_server(redis_server):
    conn = Connection(redis_server.url, connect_timeout=1.0, timeout=1.0)
    key = f"resp-test:{uuid.uuid4().hex}"
    value = "caf\u00e9 \r\n \x00 bytes".encode() * 1000  # binary-safe, larger than one recv
    assert conn.command("SET", key, value) == b"OK"
    assert conn.command("GET", key) == value
    assert redis_server.client().get(key) == value  # redis-py sees the same bytes
    assert conn.pipeline([("INCR", key + ":n"), ("INCR", key + ":n"), ("GET", "absent:" + key)]) == [
        1,
        2,
        None,
    ]
    with pytest.raises(ReplyError, match="WRONGTYPE|wrong kind"):
        conn.command("HGET", key, "field")
    assert conn.command("DEL", key, key + ":n") == 2
    conn.close()


def test_the_client_refuses_a_wrong_password(redis_server):
    conn = Connection(
        redis_server.url.replace("redis://", "redis://:wrong@"), connect_timeout=1.0, timeout=1.0
    )
    with pytest.raises(RedisError):
        conn.command("PING")


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def test_lookup_only_on_a_new_machine_asks_redis_and_creates_nothing(
    thrift, fake_llm, redis_server, tmp_path
):
    env_a = tenant_env(redis_server.url, tmp_path / "a", tenant="lookup")
    assert ask(thrift, env_a, QUESTION, fake_llm).code == 0
    env_b = {**env_a, "THRIFT_HOME": str(tmp_path / "b")}
    hit = thrift("ask", "--json", "--lookup-only", QUESTION, "--", *fake_llm.command(), env=env_b)
    assert hit.code == 0 and hit.report["source"] == "redis"
    miss = thrift("ask", "--lookup-only", "never asked anywhere", "--", *fake_llm.command(), env=env_b)
    assert miss.code == 3
    assert not (tmp_path / "b").exists() and len(fake_llm.calls) == 1


def test_redis_configured_in_the_config_file(thrift, fake_llm, redis_server, tmp_path):
    for home in ("a", "b"):
        env = {"THRIFT_HOME": str(tmp_path / home)}
        assert thrift("config", "set", "redis_url", redis_server.url, env=env).code == 0
        assert thrift("config", "set", "tenant", "from-the-file", env=env).code == 0
    first = thrift(
        "ask", "--json", QUESTION, "--", *fake_llm.command(), env={"THRIFT_HOME": str(tmp_path / "a")}
    )
    second = thrift(
        "ask", "--json", QUESTION, "--", *fake_llm.command(), env={"THRIFT_HOME": str(tmp_path / "b")}
    )
    assert first.report["stored"] and second.report["source"] == "redis" and len(fake_llm.calls) == 1
    key = RedisTier(redis_server.url, tenant="from-the-file").key(
        keys.exact_key(first.report["namespace"], QUESTION)
    )
    assert redis_server.client().exists(key) == 1


# -- the Python API's deletes through the chain ----------------------------------------


def _api_cache(redis_server, tenant: str, local=None):
    from thrift_cli import SemanticCache
    from thrift_cli.embed import HashEmbedder
    from thrift_cli.tiers.memory import MemoryTier

    shared = RedisTier(redis_server.url, tenant=tenant, connect_timeout=2, timeout=2)
    return SemanticCache(
        namespace="api", tier=local or MemoryTier(), shared=[shared], embedder=HashEmbedder()
    )


def test_a_delete_refused_locally_leaves_the_shared_copy(redis_server):
    from thrift_cli.errors import StoreError

    cache = _api_cache(redis_server, "api-ro")
    entry = cache.store(QUESTION, "Practice every day.")
    cache.tier.read_only = "the cache is read-only"
    with pytest.raises(StoreError, match="nothing deleted"):
        cache.forget(QUESTION)
    with pytest.raises(StoreError):
        cache.remove(entry)
    assert redis_server.client().exists(cache.tiers[0].key(entry.question_hash)) == 1


def test_forgetting_clears_the_redis_hit_count_and_delete_finds_a_redis_only_entry(redis_server):
    writer = _api_cache(redis_server, "api-hits")
    entry = writer.store(QUESTION, "Practice every day.")
    reader = _api_cache(redis_server, "api-hits")  # another machine: an empty local tier
    assert reader.lookup(QUESTION).source == "redis"
    redis_tier = reader.tiers[0]
    assert redis_tier.hit_count(entry.question_hash) == 1
    assert reader.delete(entry.id) is True  # found in Redis, not locally
    assert redis_tier.hit_count(entry.question_hash) == 0
    assert reader.lookup(QUESTION) is None
    assert writer.lookup(QUESTION).source == "memory"  # the other machine's copy stays (no tombstones yet)
