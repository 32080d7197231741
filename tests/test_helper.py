"""`thrift helper`: a warm process that cold `thrift ask` uses when it runs, and does
without when it does not (or dies)."""

from __future__ import annotations

import ast
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import start_helper

from thrift_cli.helper import SOCKET_NAME

# Runs `thrift ask` in this interpreter and reports which heavy modules it loaded.
ASK_AND_REPORT = (
    "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
    "sys.stderr.write(repr(sorted(m for m in ('numpy', 'thrift_cli.minilm', 'onnxruntime') "
    "if m in sys.modules)) + '\\n'); sys.exit(rc)"
)


@pytest.fixture
def helper(isolated_env: Path) -> Iterator[subprocess.Popen]:
    proc = start_helper(isolated_env)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def ask_in_process(*args: str) -> tuple[int, bytes, list[str]]:
    proc = subprocess.run([sys.executable, "-c", ASK_AND_REPORT, "ask", *args], capture_output=True)
    lines = proc.stderr.decode().strip().splitlines()
    return proc.returncode, proc.stdout, ast.literal_eval(lines[-1])


def test_a_cold_ask_uses_the_helper_and_loads_no_model(helper, fake_llm, isolated_env):
    code, first, loaded = ask_in_process("How do I learn to code quickly?", "--", *fake_llm.command())
    assert code == 0 and loaded == []  # a miss: the helper embedded and stored the answer
    code, hit, loaded = ask_in_process("How can I learn to code fast?", "--", *fake_llm.command())
    assert code == 0 and hit == first and loaded == []  # a semantic hit, served by the helper
    assert fake_llm.calls == ["How do I learn to code quickly?"]


def test_answers_are_the_same_without_the_helper(helper, thrift, fake_llm, isolated_env):
    stored = thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    helper.terminate()
    assert helper.wait(timeout=30) == 0
    assert not (isolated_env / SOCKET_NAME).exists()  # removed on the way out
    hit = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command())
    assert hit.code == 0 and hit.stdout == stored.stdout and hit.report["tier"] == "semantic"


def test_a_killed_helper_is_worked_around_then_replaced(thrift, fake_llm, isolated_env):
    proc = start_helper(isolated_env)
    thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (isolated_env / SOCKET_NAME).exists()  # a stale socket, nobody listening
    hit = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command())
    assert hit.code == 0 and hit.report["tier"] == "semantic" and len(fake_llm.calls) == 1
    replacement = start_helper(isolated_env)  # takes over the stale socket
    code, _, loaded = ask_in_process("How can I learn to code fast?", "--", *fake_llm.command())
    assert code == 0 and loaded == []
    replacement.terminate()
    replacement.wait(timeout=30)


def test_a_second_helper_refuses_to_start(helper, thrift):
    second = thrift("helper")
    assert second.code == 1
    assert second.stderr.strip().splitlines() == [
        f"thrift: a helper is already running on {Path(os.environ['THRIFT_HOME']) / SOCKET_NAME}"
    ]


def test_a_socket_path_too_long_is_one_line(thrift, tmp_path):
    home = tmp_path / ("h" * 120)
    ran = thrift("helper", env={"THRIFT_HOME": str(home)})
    assert ran.code == 1
    assert ran.stderr.strip().splitlines() == [
        f"thrift: cannot listen on {home / SOCKET_NAME}: AF_UNIX path too long"
    ]


def test_a_helper_follows_a_deleted_cache_file(helper, thrift, fake_llm, isolated_env):
    thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    for path in isolated_env.glob("cache.db*"):
        path.unlink()  # the user starts afresh while the helper runs
    miss = thrift("ask", "--lookup-only", "How can I learn to code fast?", "--", *fake_llm.command())
    assert miss.code == 3 and miss.stdout == b""  # nothing served from the deleted file
    assert thrift("ask", "What is RAG?", "--", *fake_llm.command()).code == 0
    rows = sqlite3.connect(isolated_env / "cache.db").execute("SELECT question FROM entries").fetchall()
    assert rows == [("What is RAG?",)]  # stored where everyone else looks
