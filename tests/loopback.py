"""What the tests' real servers share (redis_servers.py, pg_servers.py): ports on 127.0.0.1,
and a launcher that makes a server die with the test process that started it.

Nothing here imports a server's client library, so either servers module stays cheap to
import for a run that needs only the other."""

from __future__ import annotations

import os
import socket
import sys

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel's pick, so runs don't collide)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# Bound but never listening: a connect is refused, and no other process can take the port
# for as long as this process lives. Closed at exit with the interpreter.
_held: list[socket.socket] = []


def closed_port() -> int:
    """A port where a connect is refused at once (the server down), and stays refused."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    _held.append(sock)
    return sock.getsockname()[1]


# The server dies with the process that started it, even one killed outright (SIGKILL, or
# the SIGTERM of `timeout`, which skips every teardown and atexit handler): a trampoline sets
# PR_SET_PDEATHSIG and execs the server. A preexec_fn could too, but is unsafe while other
# threads run (the fault servers' do).
#
# With a uid, the trampoline (root) first becomes that user: PostgreSQL refuses to run as
# root. It must switch before the prctl, because a change of uid or gid clears the
# parent-death signal; and it cannot run as that user from the start (Popen's `user=`),
# because the interpreter may live where only root may read (pyenv's, under /root).
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "parent, uid, gid = map(int, sys.argv[1:4])\n"
    "if uid >= 0:\n"
    "    os.setgroups([])\n"
    "    os.setgid(gid)\n"
    "    os.setuid(uid)\n"
    "if sys.platform == 'linux':\n"
    "    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "if os.getppid() != parent:\n"
    "    sys.exit('the test process died before its server started')\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)


def die_with_parent(argv: list[str], *, uid: int = -1, gid: int = -1) -> list[str]:
    """`argv` run so that it dies with this process (on Linux), as user `uid` if given.

    Start it from the main thread: the parent-death signal comes when the thread that
    started the process ends."""
    if sys.platform != "linux" and uid < 0:
        return argv  # no prctl: a killed test run may leave its servers behind
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), str(uid), str(gid), *argv]
