"""PII scrubbing where answers are stored (issue 12): `thrift ask`, through a running
helper, `thrift import`, the Python API, and the settings that steer it.

Real Presidio in real processes. The user still sees the raw answer on the miss that
produced it; what is stored, and served on later hits, is scrubbed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import start_helper
from test_sync import remote  # noqa: F401 (the fixture)

from thrift_cli import db

pytestmark = pytest.mark.slow

EMAIL, PHONE = "ana.souza@example.org", "+1 415 555 0123"
QUESTION = f"Write to Ana Souza at {EMAIL} or call {PHONE} about the invoice"


@pytest.fixture
def scrubbing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THRIFT_SCRUB")  # the default: on


def settled(home: Path, timeout: float = 90) -> None:
    """Wait for the scrub worker to have stored every pending miss and let go."""
    from thrift_cli import scrub_queue

    deadline = time.monotonic() + timeout
    while scrub_queue.pending(home) or scrub_queue.running(home):
        assert time.monotonic() < deadline, "the scrub worker did not finish"
        time.sleep(0.1)


def answers(home: Path) -> list[str]:
    conn = db.connect(home / "cache.db")
    try:
        return [r[0] for r in conn.execute("SELECT answer FROM entries ORDER BY rowid")]
    finally:
        conn.close()


def test_ask_prints_the_raw_answer_and_stores_it_scrubbed(scrubbing, thrift, fake_llm, isolated_env):
    miss = thrift("ask", QUESTION, "--", *fake_llm.command())
    assert miss.code == 0, miss.stderr
    assert EMAIL.encode() in miss.stdout and PHONE.encode() in miss.stdout  # the user's own answer
    assert miss.stderr == ""  # Presidio's warnings stay out of the user's way
    settled(isolated_env)
    assert "thrift scrub worker" not in (isolated_env / "pending" / "worker.log").read_text()
    [stored] = answers(isolated_env)
    assert EMAIL not in stored and PHONE not in stored and "Souza" not in stored
    assert "<EMAIL_ADDRESS>" in stored and "<PHONE_NUMBER>" in stored and "<PERSON>" in stored
    assert "line two" in stored and "caf\u00e9" in stored  # the rest as it was
    hit = thrift("ask", QUESTION, "--", *fake_llm.command())
    assert hit.code == 0 and hit.stdout.decode() == stored  # later hits serve the scrubbed one
    assert len(fake_llm.calls) == 1
    conn = db.connect(isolated_env / "cache.db")
    question = conn.execute("SELECT question FROM entries").fetchone()[0]
    conn.close()
    assert question == QUESTION  # the question stays raw locally: its key and vector come from it


def test_no_scrub_and_the_setting_store_the_answer_as_it_is(scrubbing, thrift, fake_llm, isolated_env):
    assert thrift("ask", "--no-scrub", QUESTION, "--", *fake_llm.command()).code == 0
    off = thrift("ask", "-n", "off", QUESTION, "--", *fake_llm.command(), env={"THRIFT_SCRUB": "false"})
    assert off.code == 0
    assert not (isolated_env / "pending").exists()  # stored at once: nothing to scrub
    assert all(EMAIL in a and PHONE in a for a in answers(isolated_env))


def test_the_scrub_settings_choose_the_types_and_the_placeholder(scrubbing, thrift, fake_llm, isolated_env):
    env = {"THRIFT_SCRUB_ENTITIES": "EMAIL_ADDRESS", "THRIFT_SCRUB_PLACEHOLDER": "[{type} removed]"}
    assert thrift("ask", QUESTION, "--", *fake_llm.command(), env=env).code == 0
    settled(isolated_env)
    [stored] = answers(isolated_env)
    assert "[EMAIL_ADDRESS removed]" in stored and PHONE in stored and "Ana Souza" in stored
    for variable, value, message in (
        ("THRIFT_SCRUB_ENTITIES", "EMAIL,PASSWORD", "THRIFT_SCRUB_ENTITIES must be PII types"),
        ("THRIFT_SCRUB_PLACEHOLDER", "<{kind}>", "THRIFT_SCRUB_PLACEHOLDER may hold only {type}"),
        ("THRIFT_SCRUB", "maybe", "THRIFT_SCRUB must be true or false"),
    ):
        bad = thrift("ask", "another question", "--", *fake_llm.command(), env={variable: value})
        assert bad.code == 2, bad.stderr
        assert message in bad.stderr and "Traceback" not in bad.stderr
    assert len(answers(isolated_env)) == 1  # nothing half-written by a refused ask


def test_an_ask_of_a_question_still_being_scrubbed_waits_for_it(scrubbing, thrift, fake_llm, isolated_env):
    first = thrift("ask", "-v", QUESTION, "--", *fake_llm.command())
    assert first.code == 0 and "stored once scrubbed (in the background)" in first.stderr
    assert (isolated_env / "pending").exists()
    second = thrift("ask", "--json", QUESTION, "--", *fake_llm.command())  # before the worker is done
    assert second.code == 0, second.stderr
    assert json.loads(second.stderr.strip().splitlines()[-1])["tier"] == "exact"
    assert EMAIL.encode() not in second.stdout and b"<EMAIL_ADDRESS>" in second.stdout
    assert len(fake_llm.calls) == 1  # the command ran once
    settled(isolated_env)
    conn = db.connect(isolated_env / "cache.db")
    outcomes = [r[0] for r in conn.execute("SELECT outcome FROM events WHERE tier = 'miss'")]
    conn.close()
    assert outcomes == ["stored"]  # the worker recorded the miss's event as the ask would have


def test_a_paraphrase_asked_while_the_first_answer_is_scrubbed_is_a_hit(
    scrubbing, thrift, fake_llm, isolated_env
):
    """`make demo`'s sequence: a miss, then at once a paraphrase of it. The paraphrase
    waits for the queue, then finds the stored entry: one call, one hit."""
    assert thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command()).code == 0
    second = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command())
    assert second.code == 0, second.stderr
    assert json.loads(second.stderr.strip().splitlines()[-1])["tier"] == "semantic"
    assert len(fake_llm.calls) == 1


def test_a_pending_miss_left_by_a_dead_worker_is_stored_by_the_next(
    scrubbing, thrift, fake_llm, isolated_env
):
    import signal
    import subprocess

    from thrift_cli import scrub_queue

    assert thrift("ask", QUESTION, "--", *fake_llm.command()).code == 0
    # Kill the worker that first ask started, whatever it had done.
    for line in subprocess.run(
        ["pgrep", "-f", "thrift_cli.scrub_queue"], capture_output=True, text=True
    ).stdout.split():
        os.kill(int(line), signal.SIGKILL)
    time.sleep(0.2)
    left = len(scrub_queue.pending(isolated_env))
    assert left == 1  # killed while loading Presidio: its miss is still queued
    assert thrift("ask", "-n", "other", QUESTION, "--", *fake_llm.command()).code == 0
    settled(isolated_env)
    stored = answers(isolated_env)
    assert len(stored) == 2 and all(EMAIL not in a for a in stored), (left, stored)


def test_through_a_running_helper_the_helper_scrubs(scrubbing, thrift, fake_llm, isolated_env):
    helper = start_helper(isolated_env)
    try:
        first = thrift("ask", "--json", QUESTION, "--", *fake_llm.command())
        assert first.code == 0, first.stderr
        raw = thrift("ask", "--json", "--no-scrub", "-n", "raw", QUESTION, "--", *fake_llm.command())
        assert raw.code == 0
    finally:
        helper.terminate()
        helper.wait(timeout=30)
    scrubbed, kept = answers(isolated_env)
    assert EMAIL not in scrubbed and "<EMAIL_ADDRESS>" in scrubbed
    assert EMAIL in kept  # --no-scrub reaches the helper too


def test_import_scrubs_unless_told_not_to(scrubbing, thrift, tmp_path, isolated_env):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"question": "Who handles refunds?", "answer": f"Write to {EMAIL} or call {PHONE}."})
        + "\n"
        + json.dumps(
            {"question": "What is a B-tree?", "answer": "A balanced search tree; see `man 3 btree`."}
        )
        + "\n"
    )
    ran = thrift("import", "-n", "docs", str(pairs))
    assert ran.code == 0, ran.stderr
    refunds, btree = answers(isolated_env)
    assert refunds == "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>."
    assert btree == "A balanced search tree; see `man 3 btree`."
    again = thrift("import", "-n", "other", "--no-scrub", str(pairs))
    assert again.code == 0, again.stderr
    assert EMAIL in answers(isolated_env)[2]


def test_the_python_api_scrubs_what_it_stores(scrubbing, monkeypatch, isolated_env):
    from thrift_cli.cache import SemanticCache
    from thrift_cli.embed import HashEmbedder

    with SemanticCache(namespace="api", embedder=HashEmbedder()) as cache:
        entry = cache.store("Who is on call?", f"Call {PHONE} or mail {EMAIL}.")
        assert entry.answer == "Call <PHONE_NUMBER> or mail <EMAIL_ADDRESS>."
        hit = cache.lookup("Who is on call?")
        assert hit is not None and hit.answer == entry.answer
    monkeypatch.setenv("THRIFT_SCRUB", "false")
    with SemanticCache(namespace="api", embedder=HashEmbedder()) as cache:
        assert cache.store("Who is on call now?", f"Call {PHONE}.").answer == f"Call {PHONE}."
    with SemanticCache(namespace="api", embedder=HashEmbedder(), scrub=True) as cache:
        assert cache.store("Who is on call today?", f"Call {PHONE}.").answer == "Call <PHONE_NUMBER>."


def test_doctor_reports_the_scrubber_and_a_stuck_queue(scrubbing, thrift, isolated_env):
    ran = thrift("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(ran.stdout)["checks"]}
    assert checks["scrub"]["status"] == "ok" and "Presidio" in checks["scrub"]["detail"]
    assert "scrub queue" not in checks
    pending = isolated_env / "pending"
    pending.mkdir(parents=True)
    stuck = pending / "v1-0123.json"
    stuck.write_text("{}")
    old = time.time() - 3600
    os.utime(stuck, (old, old))
    checks = {c["name"]: c for c in json.loads(thrift("doctor", "--json").stdout)["checks"]}
    assert (
        checks["scrub queue"]["status"] == "warn"
        and "1 miss(es) waiting since 60 min" in checks["scrub queue"]["detail"]
    )
    off = thrift("doctor", "--json", env={"THRIFT_SCRUB": "false"})
    checks = {c["name"]: c for c in json.loads(off.stdout)["checks"]}
    assert checks["scrub"]["status"] == "off"


def test_nothing_private_reaches_redis_or_the_remote(
    scrubbing,
    thrift,
    fake_llm,
    tmp_path,
    redis_url,
    remote,  # noqa: F811 (the fixture imported above)
):
    """The answer and the question both go scrubbed to Redis and, with thrift sync, to the
    remote; another machine still gets an exact hit there, by the raw question's key."""
    import redis
    from psycopg import connect

    home_a, home_b = tmp_path / "a", tmp_path / "b"
    team = {"DATABASE_URL": remote.client, "THRIFT_API_KEY": remote.keys["team"]}
    ask = thrift("ask", QUESTION, "--", *fake_llm.command(), env={"THRIFT_HOME": str(home_a), **team})
    assert ask.code == 0 and EMAIL.encode() in ask.stdout
    settled(home_a)

    client = redis.Redis.from_url(redis_url)
    tenant = os.environ["THRIFT_TENANT"]
    values = [client.get(k) for k in client.scan_iter(f"thrift:v1:{tenant}:*") if client.type(k) == b"string"]
    assert values, "the miss reached Redis"
    for value in values:
        text = value.decode()
        assert EMAIL not in text and PHONE not in text and "Souza" not in text, text
        assert "<EMAIL_ADDRESS>" in text

    conn = db.connect(home_a / "cache.db")
    shared = conn.execute("SELECT shared_question FROM entries").fetchone()[0]
    conn.close()
    assert "<EMAIL_ADDRESS>" in shared  # scrubbed once, when stored: sync pushes it as it is
    synced = thrift("sync", env={"THRIFT_HOME": str(home_a), **team})
    assert synced.code == 0, synced.stderr
    with connect(remote.admin) as conn:
        rows = conn.execute("SELECT query, response FROM cache_entries WHERE api_key = 'team'").fetchall()
    assert len(rows) == 1
    for field in rows[0]:
        assert EMAIL not in field and PHONE not in field and "Souza" not in field, field
    assert "<EMAIL_ADDRESS>" in rows[0][0] and "<EMAIL_ADDRESS>" in rows[0][1]

    # Another machine, no Redis: the remote answers the raw question by its key.
    other = thrift(
        "ask",
        "--json",
        "--remote",
        QUESTION,
        "--",
        *fake_llm.command(),
        env={"THRIFT_HOME": str(home_b), "REDIS_URL": "", **team},
    )
    assert other.code == 0, other.stderr
    assert json.loads(other.stderr.strip().splitlines()[-1])["tier"] == "exact"
    assert b"<EMAIL_ADDRESS>" in other.stdout and EMAIL.encode() not in other.stdout
    assert len(fake_llm.calls) == 1
