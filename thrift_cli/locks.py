"""Single flight: while one process calls the LLM for a question, others wait for its answer.

Without it, 16 scripts that ask the same new question at once would pay for 16 calls.
The lock is an advisory `flock` on one of 4096 striped files under `THRIFT_HOME/locks`;
the kernel drops it when its holder exits, so a crashed process never leaves it stuck.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thrift_cli.errors import StoreError

STRIPES = 4096
_POLL_S = 0.02
# No single wait gets more than this, however long the timeout: Lock.acquire refuses a
# timeout past threading.TIMEOUT_MAX (OverflowError), so longer ones are waited in slices.
_MAX_WAIT_S = 86400.0

try:
    import fcntl
except ImportError:  # Windows: fall back to a per-process lock
    fcntl = None  # type: ignore[assignment]

_local_locks = [threading.Lock() for _ in range(64)]


def _stripe(key: str) -> int:
    return int(key.rsplit(":", 1)[-1][:8], 16) % STRIPES


def _open_stripe(lock_dir: Path, key: str) -> int | None:
    """The stripe's lock file, or None where this process may not create one (a
    read-only home or mount): it then runs without single flight across processes, which
    costs at worst a second call, never an answer. Anything else in the way is an error."""
    try:
        lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(lock_dir / f"{_stripe(key):03x}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError:
        return None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return None
        raise StoreError(f"cannot use the lock directory {lock_dir}: {exc.strerror or exc}") from None


@contextmanager
def single_flight(lock_dir: Path | None, key: str, timeout: float | None = None) -> Iterator[bool]:
    """Hold the lock for `key` (an exact key, `v1:<hex>`); yields False if `timeout`
    seconds passed first, in which case the caller goes ahead unlocked."""
    fd = None if lock_dir is None or fcntl is None else _open_stripe(lock_dir, key)
    if fd is None:
        lock = _local_locks[_stripe(key) % len(_local_locks)]
        got = _acquire(lock, None if timeout is None else time.monotonic() + timeout)
        try:
            yield got
        finally:
            if got:
                lock.release()
        return
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        got = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_S)
        yield got
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(lock: threading.Lock, deadline: float | None) -> bool:
    """`lock.acquire` until `deadline` (None: forever), in bounded slices."""
    while True:
        left = _MAX_WAIT_S if deadline is None else min(deadline - time.monotonic(), _MAX_WAIT_S)
        if lock.acquire(timeout=max(left, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
