"""`thrift sync --push --background`: the push `thrift ask` starts after a stored miss when
push_on_store is true (thrift_cli/push_on_store.py). Its stderr is `$THRIFT_HOME/push.log`:
one line per push that ran, what it pushed or why it failed; nothing else is printed.

**At most one push waits behind the sync that runs.** A burst of misses starts one
process each. Each takes the queue lock (`sync.queue.lock`, an flock) without waiting,
then waits for the sync lock (`sync.lock`, engine._SyncLock), and lets the queue lock go
the moment it holds the sync lock, before it reads anything. One that finds the queue
lock taken exits at once. So however many misses, there is one push running, one
waiting, and the rest live only as long as it takes them to start and see the lock.
The queue lock is taken before the remote is reached (sync() connects first), so a
remote that takes its whole connect timeout to fail cannot gather waiters either.

**No entry is left unpushed.** Ask A commits its entry E to the cache file, and only then
starts its push P. Either P takes the queue lock, and then P itself reads the file after
E's commit; or another push W holds it. W holds it only until it has the sync lock, and
reads the file only after that, so W's reads come after P found the lock taken, hence
after E's commit. A push reads every row not yet pushed, from the first, until none is
left (engine._push), so the one that reads after E's commit sends E. Either way E goes
with a push that starts after E was stored. When that push fails (the remote down, the
key refused), E stays marked unpushed in the file (`sync_dirty`), the log says why, and
the next push, a later miss's or `thrift sync`, sends it. A flock is dropped by the
kernel when its holder dies, so a killed waiter blocks nobody.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from thrift_cli import config, push_on_store
from thrift_cli.errors import ThriftError, UsageError
from thrift_sync.command import summary
from thrift_sync.engine import sync

QUEUE_LOCK = "sync.queue.lock"


class _QueueLock:
    """The one place in the queue behind the running sync."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def take(cls, home: Path) -> _QueueLock | None:
        """The queue lock, or None when another push already holds it."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(home / QUEUE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run(home: Path) -> int:
    """Push `home`'s unpushed entries unless another push is already waiting (then that
    one sends them); the outcome goes to stderr, the log, as one line."""
    try:
        queued = _QueueLock.take(home)
    except OSError as exc:
        _log(f"cannot take {home / QUEUE_LOCK}: {exc.strerror or exc}", failed=True)
        return 1
    if queued is None:
        return 0  # the push waiting now reads the file after our entry's commit
    try:
        config.check_environment()
        where = config.remote()
        if where is None:
            raise UsageError(
                "no remote: set SUPABASE_DB_URL or DATABASE_URL, or SUPABASE_URL and SUPABASE_KEY "
                "(push_on_store needs one)"
            )
        from thrift_cli.home import db_path

        url, rest_key = where
        result = sync(
            db_path(), url, config.value("api_key"), pull=False, rest_key=rest_key, locked=queued.release
        )
    except ThriftError as exc:
        _log(f"{exc}", failed=True)
        return 1
    finally:
        queued.release()
    _log(summary(result), failed=False)
    return 0


def _log(text: str, *, failed: bool) -> None:
    print(push_on_store.log_line(text, failed=failed), end="", file=sys.stderr, flush=True)
