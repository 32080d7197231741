"""A helper that stops answering (SIGSTOP, a hang) costs one ask its timeout, not every
ask: the client that gave up marks the helper hung for all processes of the home, for a
minute. A dead helper (connection refused) is cheap, and its socket is cleaned up.

"Only the first ask waited" is shown without timing: a stopped helper cannot accept,
so the kernel queues each connection made to it, and `ss` reports that queue (Recv-Q of
the listening socket); a socket of the test's own that never answers counts the
connections it accepts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_helper import ask_in_process, start_helper

from thrift_cli.helper import HUNG_NAME, LOCK_NAME, SOCKET_NAME

Q = "How do I learn to code quickly?"
PARAPHRASE = "How can I learn to code fast?"
LOCAL = ["numpy", "thrift_cli.minilm"]  # what an ask that did the work itself loaded


def queued_connections(path: Path) -> int:
    """Connections waiting in the listening socket's backlog (Recv-Q), from `ss`."""
    ss = shutil.which("ss") or "/usr/sbin/ss"
    out = subprocess.run([ss, "-xlH", "src", str(path)], capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in out.splitlines() if str(path) in line]
    return int(line.split()[2])


@pytest.fixture
def stopped_helper(thrift, fake_llm, isolated_env) -> Iterator[subprocess.Popen]:
    proc = start_helper(isolated_env)
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0  # stored by the helper
    proc.send_signal(signal.SIGSTOP)
    yield proc
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=30)


def test_a_stopped_helper_costs_only_the_first_ask(stopped_helper, fake_llm, isolated_env):
    sock = isolated_env / SOCKET_NAME
    assert queued_connections(sock) == 0
    for _ in range(3):
        code, out, loaded = ask_in_process("--lookup-only", PARAPHRASE, "--", *fake_llm.command())
        assert code == 0 and f"\u00ab{Q}\u00bb".encode() in out  # the right answer, found here
        assert loaded == LOCAL
    assert queued_connections(sock) == 1  # only the first ask tried the helper
    assert (isolated_env / HUNG_NAME).exists()
    code, out, loaded = ask_in_process("What is RAG?", "--", *fake_llm.command())  # a miss
    assert code == 0 and loaded == LOCAL and b"What is RAG?" in out
    assert queued_connections(sock) == 1
    assert fake_llm.calls == [Q, "What is RAG?"]


def test_a_helper_that_starts_clears_the_mark(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    (isolated_env / HUNG_NAME).touch()
    proc = start_helper(isolated_env)
    try:
        assert not (isolated_env / HUNG_NAME).exists()
        code, _, loaded = ask_in_process(Q, "--", *fake_llm.command())
        assert code == 0 and loaded == []  # served by the helper at once
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class SilentSocket:
    """A listener at the helper's socket path that accepts and never answers."""

    def __init__(self, path: Path) -> None:
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


def test_after_a_minute_one_ask_tries_the_helper_again(thrift, fake_llm, isolated_env):
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0  # stored without a helper
    silent = SilentSocket(isolated_env / SOCKET_NAME)
    try:
        for expected in (1, 1):
            code, out, loaded = ask_in_process("--lookup-only", PARAPHRASE, "--", *fake_llm.command())
            assert (code, loaded) == (0, LOCAL) and Q.encode() in out
            assert silent.accepted == expected
        hung = isolated_env / HUNG_NAME
        old = time.time() - 61
        os.utime(hung, (old, old))  # the mark is a minute old
        for expected in (2, 2):
            code, out, loaded = ask_in_process("--lookup-only", PARAPHRASE, "--", *fake_llm.command())
            assert (code, loaded) == (0, LOCAL) and Q.encode() in out
            assert silent.accepted == expected  # one retry, which timed out and renewed the mark
        assert time.time() - hung.stat().st_mtime < 60
    finally:
        silent.close()


def test_a_dead_helpers_socket_is_removed_by_the_next_ask(thrift, fake_llm, isolated_env):
    proc = start_helper(isolated_env)
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (isolated_env / SOCKET_NAME).exists()
    code, _, loaded = ask_in_process("--lookup-only", PARAPHRASE, "--", *fake_llm.command())
    assert (code, loaded) == (0, LOCAL)
    assert not (isolated_env / SOCKET_NAME).exists()  # later asks do not even connect
    assert not (isolated_env / HUNG_NAME).exists()  # refused is not hung


def test_a_starting_helpers_lock_keeps_its_socket(thrift, fake_llm, isolated_env):
    import fcntl

    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(isolated_env / SOCKET_NAME))
    stale.close()  # a socket file nobody listens on
    lock = os.open(isolated_env / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as a helper holds it while it loads the model
    try:
        code, _, loaded = ask_in_process("--lookup-only", PARAPHRASE, "--", *fake_llm.command())
        assert (code, loaded) == (0, LOCAL)
        assert (isolated_env / SOCKET_NAME).exists()  # not ours to remove
    finally:
        os.close(lock)
