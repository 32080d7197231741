"""`thrift ask --remote` against a real Postgres + pgvector: a hit on an entry only the
remote holds (exact and through the HNSW RPC), written into the local mirror, guards on
remote candidates, and a remote that is down or silent."""

from __future__ import annotations

import time

import pytest
from conftest import thrift_client_role
from redis_servers import closed_port, silent_port

from thrift_cli import keys, remote_db

QUESTION, PARAPHRASE = "How do I learn to code quickly?", "How can I learn to code fast?"


@pytest.fixture
def team(pg_database, pg_server, thrift):
    """An initialised remote, a client role, and a key: the env a machine of the team has."""
    assert thrift("remote", "init").code == 0
    client = thrift_client_role(pg_server, pg_database)
    key = thrift("remote", "key", "create", "team@example.com").stdout.decode().strip()
    return {"DATABASE_URL": client, "THRIFT_API_KEY": key}


def put_remote(env: dict, namespace: str, question: str, answer: str) -> None:
    """An entry made on another machine and pushed: only the remote holds it."""
    from thrift_cli.embed import default_embedder

    vector = default_embedder().embed([question])[0]
    with remote_db.connect(env["DATABASE_URL"], env["THRIFT_API_KEY"]) as conn:
        conn.execute(
            "INSERT INTO cache_entries (api_key, query, response, embedding, namespace, question_hash) "
            "VALUES (thrift_tenant(), %s, %s, %s, %s, %s)",
            (question, answer, vector, namespace, keys.exact_key(namespace, question)),
        )


def test_a_remote_only_entry_is_a_hit_and_then_local(thrift, fake_llm, team):
    namespace = keys.command_namespace(fake_llm.command())
    put_remote(team, namespace, QUESTION, "Practice every day.")
    hit = thrift("ask", "--json", "--remote", QUESTION, "--", *fake_llm.command(), env=team)
    assert hit.code == 0, hit.stderr
    assert hit.stdout == b"Practice every day."
    assert (hit.report["tier"], hit.report["source"]) == ("exact", "remote")
    # Written into the local mirror: the next ask is local, even without --remote.
    again = thrift("ask", "--json", QUESTION, "--", *fake_llm.command(), env=team)
    assert (again.report["tier"], again.report["source"]) == ("exact", "local")
    assert fake_llm.calls == []


def test_a_paraphrase_is_found_through_the_hnsw_rpc(thrift, fake_llm, team):
    namespace = keys.command_namespace(fake_llm.command())
    put_remote(team, namespace, QUESTION, "Practice every day.")
    hit = thrift("ask", "--json", "--remote", PARAPHRASE, "--", *fake_llm.command(), env=team)
    assert hit.code == 0, hit.stderr
    assert (hit.report["tier"], hit.report["source"]) == ("semantic", "remote")
    assert hit.report["matched_question"] == QUESTION and hit.stdout == b"Practice every day."
    # The served entry (its own question) is now local; the paraphrase's key holds nothing.
    local = thrift("ask", "--json", PARAPHRASE, "--", *fake_llm.command(), env=team)
    assert (local.report["tier"], local.report["source"]) == ("semantic", "local")
    assert fake_llm.calls == []


def test_the_guards_apply_to_remote_candidates(thrift, fake_llm, team):
    namespace = keys.command_namespace(fake_llm.command())
    put_remote(team, namespace, "Is Java faster than Python?", "usually")
    ran = thrift(
        "ask",
        "--json",
        "--remote",
        "Is Python faster than Java?",
        "--",
        *fake_llm.command(),
        env=team,
    )
    assert ran.code == 0 and ran.report["tier"] == "miss"
    assert [v["guard"] for v in ran.report["vetoed"]] == ["word-order"]
    assert len(fake_llm.calls) == 1


def test_remote_lookup_from_the_config_file(thrift, fake_llm, team):
    namespace = keys.command_namespace(fake_llm.command())
    put_remote(team, namespace, QUESTION, "Practice every day.")
    assert thrift("config", "set", "remote_lookup", "true").code == 0
    hit = thrift("ask", "--json", QUESTION, "--", *fake_llm.command(), env=team)
    assert hit.report["source"] == "remote"


def _assert_local_answer_with_one_warning(ran, fake_llm):
    assert ran.code == 0, ran.stderr
    assert ran.report["tier"] == "miss" and ran.report["stored"] is True
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("thrift: warning")]
    assert (
        len(warnings) == 1 and "the remote at" in warnings[0] and "using the local cache only" in warnings[0]
    )
    assert "Traceback" not in ran.stderr and len(fake_llm.calls) == 1


def test_a_remote_that_is_down_warns_once_and_answers_locally(thrift, fake_llm):
    env = {"DATABASE_URL": f"postgresql://x@127.0.0.1:{closed_port()}/db", "THRIFT_API_KEY": "sc_x"}
    ran = thrift("ask", "--json", "--remote", QUESTION, "--", *fake_llm.command(), env=env)
    _assert_local_answer_with_one_warning(ran, fake_llm)
    # Nothing local was lost: the answer is now a local exact hit.
    again = thrift("ask", "--json", "--remote", QUESTION, "--", *fake_llm.command(), env=env)
    assert again.report["source"] == "local" and len(fake_llm.calls) == 1


def test_a_silent_remote_costs_its_timeout_and_no_more(thrift, fake_llm):
    with silent_port() as port:
        env = {"DATABASE_URL": f"postgresql://x@127.0.0.1:{port}/db", "THRIFT_API_KEY": "sc_x"}
        started = time.monotonic()
        ran = thrift("ask", "--json", "--remote", QUESTION, "--", *fake_llm.command(), env=env)
        elapsed = time.monotonic() - started
    _assert_local_answer_with_one_warning(ran, fake_llm)
    assert "no answer within 300 ms" in ran.stderr
    assert ran.report["lookup_ms"] < elapsed * 1000  # (no timing assertion: the machine is shared)


def test_an_unknown_key_warns_once(thrift, fake_llm, team):
    ran = thrift(
        "ask",
        "--json",
        "--remote",
        QUESTION,
        "--",
        *fake_llm.command(),
        env={**team, "THRIFT_API_KEY": "sc_nope"},
    )
    _assert_local_answer_with_one_warning(ran, fake_llm)
    assert "does not know this API key" in ran.stderr


def test_remote_without_its_settings_is_a_usage_error(thrift, fake_llm):
    ran = thrift("ask", "--remote", QUESTION, "--", *fake_llm.command())
    assert ran.code == 2 and "needs database_url" in ran.stderr and fake_llm.calls == []
