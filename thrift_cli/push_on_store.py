"""`push_on_store = true`: a miss's answer, once stored, goes to the remote at once.

`thrift ask` does not push it itself. Once the answer is on stdout and the report on
stderr, it starts `thrift sync --push --background` as a process of its own session and
exits without waiting for it. That process writes only to `$THRIFT_HOME/push.log`, so the
user never waits for the network, and a remote that is down or refuses the key never
reaches the terminal; `thrift doctor` reports the last push's outcome from the log.

The core starts the push as a command and never imports thrift_sync (the sync engine
drives the core, not the other way round). How many processes a burst of misses leaves,
and why none of its entries is left unpushed: sync/thrift_sync/background.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "push.log"
# Past this size the next push starts the log afresh: ~400 outcomes, one line each.
LOG_CAP = 64 * 1024
_FAILED = "failed: "


def wanted(home: Path) -> bool:
    """Whether a stored miss in `home` is pushed at once: push_on_store is true and a remote
    is configured (without one there is nowhere to push, and nothing is started)."""
    from thrift_cli import config

    return bool(config.value("push_on_store", home=home)) and remote_configured(home)


def remote_configured(home: Path) -> bool:
    """A Postgres URL, or the REST pair (supabase_url and supabase_key)."""
    from thrift_cli import config

    if config.value("database_url", home=home) is not None:
        return True
    rest = ("supabase_url", "supabase_key")
    return all(config.value(key, home=home) is not None for key in rest)


def start(home: Path) -> None:
    """Start the background push of `home`'s unpushed entries. Never waits for it, never
    raises, prints nothing: what goes wrong is written to the log."""
    try:
        log = os.open(home / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return  # no log, no push: the next `thrift sync` pushes the entry
    try:
        # Every writer appends (O_APPEND), so a push still writing when this truncates
        # writes at the new end: no hole of zeros, at worst its line lost.
        if os.fstat(log).st_size > LOG_CAP:
            os.ftruncate(log, 0)
        proc = subprocess.Popen(
            [sys.executable, "-m", "thrift_cli", "sync", "--push", "--background"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            # Its own session: no terminal, so neither a closed terminal (SIGHUP) nor ^C
            # in the shell ends it, and a `$(thrift ask ...)` does not wait for it.
            start_new_session=True,
            env={**os.environ, "THRIFT_HOME": str(home)},
        )
    except OSError as exc:
        try:
            os.write(log, log_line(f"cannot start thrift sync --push: {exc}", failed=True).encode())
        except OSError:
            pass
        return
    finally:
        os.close(log)
    # It outlives this process on purpose: not waiting for it is no leak, so Popen's
    # "still running" ResourceWarning is not ours to show. The object goes to subprocess's
    # list of children to reap, which a long-lived caller empties at its next Popen.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del proc


def log_line(outcome: str, *, failed: bool) -> str:
    """One line of the log: when, and what the push did or why it failed."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{stamp} {_FAILED if failed else ''}{' '.join(outcome.split())}\n"


@dataclass(frozen=True)
class Outcome:
    """The last line of the log, as `thrift doctor` reports it."""

    when: str
    text: str
    failed: bool


def last_outcome(home: Path) -> Outcome | None:
    """What the last background push of `home` wrote, if any pushed yet. A line not in the
    log's form (a crash's traceback) counts as a failure, timed by the file's mtime."""
    path = home / LOG_NAME
    try:
        with open(path, "rb") as f:
            f.seek(max(os.fstat(f.fileno()).st_size - 4096, 0))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
            mtime = os.fstat(f.fileno()).st_mtime
    except OSError:
        return None
    if not lines:
        return None
    stamp, _, text = lines[-1].partition(" ")
    if not (stamp[:4].isdigit() and "T" in stamp and text):
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(mtime))
        return Outcome(when, lines[-1].strip(), failed=True)
    return Outcome(stamp, text.removeprefix(_FAILED), failed=text.startswith(_FAILED))
