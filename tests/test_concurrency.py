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


# -- waiters: what they report, and what they do when the call they waited for fails ----


def _ask(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*thrift_executable(), "ask", "--json", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _waiting_on_a_lock(proc: subprocess.Popen, home) -> bool:
    """Whether `proc` has opened a single-flight lock file, i.e. it missed and now waits
    for the process that holds the lock (the leader, blocked in its call)."""
    assert proc.poll() is None, proc.communicate()
    try:
        fds = os.listdir(f"/proc/{proc.pid}/fd")
    except FileNotFoundError:
        return False
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(f"/proc/{proc.pid}/fd/{fd}"))
        except OSError:
            pass
    return any(link.startswith(str(home / "locks")) for link in links)


def _finish(proc: subprocess.Popen) -> tuple[int, bytes, str, dict]:
    out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text
    return proc.returncode, out, text, json.loads(text.strip().splitlines()[-1])


@pytest.fixture
def gate(tmp_path):
    """A file whose creation lets every `fake_llm --until` call finish."""
    return tmp_path / "gate"


def _leader_and_waiters(
    fake_llm, gate, isolated_env, question, cmd, waiters=3, leader_args=(), waiter_args=()
):
    leader = _ask(*leader_args, question, "--", *cmd)
    _wait_for(lambda: fake_llm.calls, "the leader's command to start")
    others = [_ask(*waiter_args, question, "--", *cmd) for _ in range(waiters)]
    _wait_for(lambda: all(_waiting_on_a_lock(p, isolated_env) for p in others), "the waiters")
    return leader, others


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see who waits")
def test_waiters_report_an_exact_hit_and_how_long_they_waited(fake_llm, gate, isolated_env):
    question = "What is the capital of Peru?"
    cmd = fake_llm.command("--until", str(gate))
    leader, others = _leader_and_waiters(fake_llm, gate, isolated_env, question, cmd, waiter_args=["-v"])
    time.sleep(0.5)  # every waiter now waits at least this long
    gate.touch()
    code, out, _, report = _finish(leader)
    assert code == 0 and report["tier"] == "miss" and report["stored"]
    for proc in others:
        code, out, err, report = _finish(proc)
        assert code == 0 and out == answer(question)
        assert "thrift: exact hit, similarity 1.000" in err and "s for another thrift ask's call" in err
        assert report["tier"] == "exact" and report["similarity"] == 1.0
        assert report["waited_ms"] >= 500
        # The lookups before and after the wait: the first loaded the model to search.
        assert report["lookup_ms"] > 1.0
        assert report["overhead_ms"] == report["total_ms"] >= report["waited_ms"] + report["lookup_ms"]
    assert fake_llm.calls == [question]


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


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see who waits")
def test_waiters_share_the_failure_of_the_call_they_waited_for(fake_llm, gate, isolated_env):
    question = "What is the capital of Peru?"
    cmd = fake_llm.command("--until", str(gate), "--exit", "4", "--stderr", "quota exceeded")
    leader, others = _leader_and_waiters(fake_llm, gate, isolated_env, question, cmd)
    gate.touch()
    code, _, err, report = _finish(leader)
    assert code == 4 and "quota exceeded" in err and report["call_ms"] is not None
    for proc in others:
        code, out, err, report = _finish(proc)
        assert code == 4 and out == b""
        line = "thrift: the same question's call by another thrift ask failed (exit 4); not retried here"
        assert err.strip().splitlines()[-2] == line
        assert report["tier"] == "miss" and report["exit_code"] == 4 and report["call_ms"] is None
        assert report["error"] == line.removeprefix("thrift: ") and report["waited_ms"] > 0
    assert fake_llm.calls == [question]  # the command ran once
    # The next ask after that is not a waiter: it runs the command again.
    code, _, _, report = _finish(_ask(question, "--", *cmd))
    assert code == 4 and report["call_ms"] is not None
    assert fake_llm.calls == [question, question]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see who waits")
def test_a_killed_leaders_waiters_run_the_command_themselves(fake_llm, gate, isolated_env):
    question = "What is the capital of Peru?"
    cmd = fake_llm.command("--until", str(gate), "--exit", "4")
    leader, others = _leader_and_waiters(fake_llm, gate, isolated_env, question, cmd)
    leader.kill()  # no outcome recorded: nothing to share
    leader.wait(timeout=30)
    gate.touch()
    results = [_finish(proc) for proc in others]
    assert [code for code, *_ in results] == [4] * len(others)
    ran = [report for *_, report in results if report["call_ms"] is not None]
    assert len(ran) == 1  # one waiter ran it; the others shared that waiter's failure
    assert len(fake_llm.calls) == 2


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see who waits")
def test_a_leader_that_timed_out_is_not_shared(fake_llm, gate, isolated_env):
    question = "What is the capital of Peru?"
    cmd = fake_llm.command("--until", str(gate))
    leader, others = _leader_and_waiters(
        fake_llm, gate, isolated_env, question, cmd, leader_args=("--timeout", "5")
    )
    code, *_ = _finish(leader)
    assert code == 124
    gate.touch()
    results = [_finish(proc) for proc in others]
    assert [code for code, *_ in results] == [0] * len(others)
    assert sorted(report["tier"] for *_, report in results) == ["exact"] * (len(others) - 1) + ["miss"]
    assert len(fake_llm.calls) == 2
