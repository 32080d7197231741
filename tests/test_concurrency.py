"""Many `thrift ask` processes on one cache, and processes that die mid-call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import thrift_executable
from test_cli_ask import answer

from thrift_cli import db

QUESTIONS = [
    "What is the capital of Australia?",
    "How do vaccines train the immune system?",
    "Why is the sky blue during the day?",
    "What does a Kubernetes operator do?",
    "How many bones are in the adult human body?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the boiling point of water at high altitude?",
    "How does public key cryptography work?",
]


def _open(home):
    sqlite = db.sqlite_module()
    conn = sqlite.connect(str(home / "cache.db"))
    conn.enable_load_extension(True)
    conn.load_extension(db.vec_extension_path())
    return conn


def test_sixteen_processes_at_once_pay_once_per_question(fake_llm, isolated_env):
    # The command sleeps so that both asks of a question overlap for real.
    cmd = fake_llm.command("--sleep", "1")
    procs = [
        (
            q,
            subprocess.Popen(
                [*thrift_executable(), "ask", q, "--", *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
        for q in QUESTIONS * 2
    ]
    for question, proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        assert b"locked" not in err and b"Traceback" not in err
        assert out == answer(question)
    assert sorted(fake_llm.calls) == sorted(QUESTIONS)  # single flight: one call a question
    conn = _open(isolated_env)
    stored = sorted(r[0] for r in conn.execute("SELECT question FROM entries"))
    assert stored == sorted(QUESTIONS)
    assert conn.execute("SELECT count(*) FROM entry_vectors").fetchone()[0] == 8
    tiers = sorted(r[0] for r in conn.execute("SELECT tier FROM events"))
    assert tiers.count("miss") == 8 and len(tiers) == 16
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_killed_mid_call_stores_nothing_and_frees_the_question(thrift, fake_llm, isolated_env):
    proc = subprocess.Popen(
        [
            *thrift_executable(),
            "ask",
            "What is the capital of Australia?",
            "--",
            *fake_llm.command("--sleep", "30"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not fake_llm.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_llm.calls, "the command never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The lock died with the process: the next ask does not wait 30 s for it.
    started = time.monotonic()
    ran = thrift("ask", "--json", "What is the capital of Australia?", "--", *fake_llm.command())
    assert ran.code == 0 and ran.report["tier"] == "miss" and ran.report["stored"]
    assert time.monotonic() - started < 20
    conn = _open(isolated_env)
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_ends_the_command_too(fake_llm, isolated_env, tmp_path, sig):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "sleeper.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    script.chmod(0o755)
    proc = subprocess.Popen(
        [*thrift_executable(), "ask", "Q?", "--", str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig and b"Traceback" not in err
    time.sleep(0.2)
    try:
        os.kill(child, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the LLM command outlived thrift"


def _ask(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*thrift_executable(), "ask", "--json", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, bytes, str, dict]:
    out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text
    return proc.returncode, out, text, json.loads(text.strip().splitlines()[-1])


def test_a_question_stored_during_the_lookup_is_an_exact_hit(fake_llm, tmp_path, isolated_env):
    # The race behind "semantic, similarity 1.0": an ask misses the exact tier, and while
    # it loads the model and searches, another process stores the same question. The
    # search then finds that very entry: it is the same question, so an exact hit.
    from thrift_cli.cache import SemanticCache
    from thrift_cli.embed import HashEmbedder

    cache = SemanticCache(namespace="ns", embedder=HashEmbedder())
    other = SemanticCache(namespace="ns", embedder=HashEmbedder())
    lookup = cache.tier.lookup

    def lookup_then_the_other_stores(key, now):
        found = lookup(key, now)
        other.store("What is the capital of Peru?", "Lima.")
        return found

    cache.tier.lookup = lookup_then_the_other_stores  # type: ignore[method-assign]
    look = cache.explain("what is the capital of peru")
    assert look.hit is not None and look.hit.answer == "Lima."
    assert (look.hit.tier, look.hit.similarity) == ("exact", 1.0)
    cache.close()
    other.close()


def test_a_race_of_one_question_never_reports_a_semantic_hit(fake_llm, isolated_env):
    # Real processes, started one after another while the first one's call runs: some
    # miss the exact tier before the answer is stored and search after (see above).
    question = "What is the capital of Peru?"
    cmd = fake_llm.command("--sleep", "1")
    procs = []
    for _ in range(8):
        procs.append(_ask(question, "--", *cmd))
        time.sleep(0.1)
    tiers = []
    for proc in procs:
        code, out, _, report = _finish(proc)
        assert code == 0 and out == answer(question)
        tiers.append(report["tier"])
    assert sorted(tiers) == ["exact"] * 7 + ["miss"]
    assert fake_llm.calls == [question]
