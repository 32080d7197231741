"""`push_on_store = true` against a real PostgreSQL + pgvector: a miss's answer reaches the
remote without `thrift sync`, a burst of misses queues one push and loses no entry, and a
remote that cannot be reached changes nothing the user sees (the log and `thrift doctor`
say why)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import thrift_client_role
from pg_servers import closed_port, connect

from thrift_cli import push_on_store

T = TypeVar("T")
# How long a background push may take to show: a deadline to give up at, not a time that
# is asserted (a push takes well under a second here).
DEADLINE_S = 30.0


@pytest.fixture
def team(pg_database, pg_server, thrift):
    """An initialised remote, a client role and a key: the env a machine of the team has,
    and the superuser's DSN for the tests' own looks (it bypasses row-level security)."""
    assert thrift("remote", "init").code == 0
    client = thrift_client_role(pg_server, pg_database)
    key = thrift("remote", "key", "create", "team@example.com").stdout.decode().strip()
    return {"DATABASE_URL": client, "THRIFT_API_KEY": key}, pg_database


def eventually(what: Callable[[], T], describe: str) -> T:
    """`what()` once it is truthy; fails, saying `describe`, if it is not by the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S:g} s: {describe} (last: {found!r})")
        time.sleep(0.05)


def remote_questions(admin: str) -> set[str]:
    with connect(admin) as conn:
        return {row[0] for row in conn.execute("SELECT query FROM cache_entries WHERE deleted_at IS NULL")}


def pushers(home: Path) -> list[int]:
    """The background pushes (`thrift sync --push --background`) alive for `home`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        ours = f"THRIFT_HOME={home}".encode() in env
        if b"--background" in argv and b"sync" in argv and state != "Z" and ours:
            found.append(int(entry.name))
    return found


def log_lines(home: Path) -> list[str]:
    path = home / push_on_store.LOG_NAME
    return path.read_text().splitlines() if path.exists() else []


def no_pushers_left(home: Path) -> None:
    eventually(lambda: not pushers(home), f"every background push of {home} ended")


def test_a_miss_reaches_the_remote_without_thrift_sync(team, thrift, fake_llm, isolated_env):
    env, admin = team
    ran = thrift(
        "ask",
        "What is semantic caching?",
        "--",
        *fake_llm.command(),
        env={**env, "THRIFT_PUSH_ON_STORE": "1"},
    )
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    assert ran.stdout.startswith(b"[fake-1] Answer to \xc2\xabWhat is semantic caching?")
    eventually(lambda: remote_questions(admin) == {"What is semantic caching?"}, "the entry in the remote")
    no_pushers_left(isolated_env)
    (line,) = log_lines(isolated_env)
    assert "thrift sync: pushed 1, pulled 0" in line and "failed" not in line
    # Pushed, so clean here: the next sync has nothing to send.
    dry = thrift("sync", "--push", "--dry-run", "--json", env=env)
    assert json.loads(dry.stdout)["pushed"] == 0, dry.stderr
    # A hit starts nothing: only a stored answer is pushed.
    again = thrift(
        "ask",
        "What is semantic caching?",
        "--",
        *fake_llm.command(),
        env={**env, "THRIFT_PUSH_ON_STORE": "1"},
    )
    assert again.code == 0 and again.stdout == ran.stdout and len(fake_llm.calls) == 1
    assert not pushers(isolated_env) and len(log_lines(isolated_env)) == 1


@pytest.mark.parametrize("setting", ["", "false"])
def test_without_push_on_store_a_miss_waits_for_thrift_sync(team, thrift, fake_llm, isolated_env, setting):
    env, admin = team
    ran = thrift(
        "ask", "Who wrote Dune?", "--", *fake_llm.command(), env={**env, "THRIFT_PUSH_ON_STORE": setting}
    )
    assert ran.code == 0 and ran.stderr == ""
    # The log is opened before a push is started, by the ask itself: no log, no push.
    assert not (isolated_env / push_on_store.LOG_NAME).exists()
    assert remote_questions(admin) == set()
    dry = thrift("sync", "--push", "--dry-run", "--json", env=env)
    assert json.loads(dry.stdout)["pushed"] == 1  # still waiting for thrift sync
    assert thrift("sync", env=env).code == 0
    assert remote_questions(admin) == {"Who wrote Dune?"}


def test_push_on_store_without_a_remote_starts_nothing(thrift, fake_llm, isolated_env):
    ran = thrift("ask", "Who wrote Dune?", "--", *fake_llm.command(), env={"THRIFT_PUSH_ON_STORE": "yes"})
    assert ran.code == 0 and ran.stderr == "" and ran.stdout.startswith(b"[fake-1]")
    assert not (isolated_env / push_on_store.LOG_NAME).exists()
    report = json.loads(thrift("doctor", "--json", env={"THRIFT_PUSH_ON_STORE": "yes"}).stdout)
    (line,) = [c for c in report["checks"] if c["name"] == "push on store"]
    assert line["status"] == "warn" and "no remote is configured" in line["detail"]


def test_a_bad_push_on_store_is_one_line_and_exit_2(thrift, fake_llm):
    ran = thrift("ask", "Who wrote Dune?", "--", *fake_llm.command(), env={"THRIFT_PUSH_ON_STORE": "maybe"})
    assert ran.code == 2 and ran.stdout == b"" and fake_llm.calls == []
    assert ran.stderr == "thrift: THRIFT_PUSH_ON_STORE must be true or false, got 'maybe'\n"


def test_a_burst_of_misses_queues_one_push_and_every_entry_arrives(team, thrift, fake_llm, isolated_env):
    """With the sync lock held (a long sync running), each miss starts a push: the first
    waits, every later one sees the queue taken and exits. The asks return while the push
    they started still waits: the user waits for no push. Once the lock goes, that one
    push sends every entry."""
    env, admin = team
    env = {**env, "THRIFT_PUSH_ON_STORE": "true"}
    isolated_env.mkdir(mode=0o700)
    lock = os.open(isolated_env / "sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    questions = [f"question number {i}" for i in range(8)]
    try:
        for i, question in enumerate(questions):
            ran = thrift("ask", question, "--", *fake_llm.command(), env=env)
            assert ran.code == 0 and ran.stderr == "", ran.stderr
            if i == 0:  # the first push is in the queue before the next miss
                eventually(lambda: _queue_taken(isolated_env), "the first push holds the queue lock")
        eventually(lambda: len(pushers(isolated_env)) == 1, "one push left, the rest gone")
        assert remote_questions(admin) == set() and log_lines(isolated_env) == []
    finally:
        os.close(lock)
    eventually(lambda: remote_questions(admin) == set(questions), "all 8 entries in the remote")
    no_pushers_left(isolated_env)
    (line,) = log_lines(isolated_env)  # one push ran, and sent them all
    assert "thrift sync: pushed 8," in line


def _queue_taken(home: Path) -> bool:
    fd = os.open(home / "sync.queue.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_concurrent_misses_each_reach_the_remote_once(team, thrift, fake_llm, isolated_env):
    """Misses in parallel, their pushes racing the ones already running: every entry gets
    there, and the pushes that ran sent each exactly once between them."""
    env, admin = team
    env = {**env, "THRIFT_PUSH_ON_STORE": "on", "THRIFT_SYNC_BATCH": "2"}
    questions = [f"parallel question {i}" for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda q: thrift("ask", q, "--", *fake_llm.command(), env=env), questions))
    assert all(r.code == 0 and r.stderr == "" for r in runs), [r.stderr for r in runs]
    eventually(lambda: remote_questions(admin) == set(questions), "all 12 entries in the remote")
    no_pushers_left(isolated_env)
    lines = log_lines(isolated_env)
    assert lines and not [line for line in lines if "failed" in line], lines
    assert sum(int(line.split("pushed ")[1].split(",")[0]) for line in lines) == len(questions)


def test_an_unreachable_remote_changes_nothing_the_user_sees(thrift, fake_llm, tmp_path):
    """The same ask with and without push_on_store, on two fresh homes, the remote down:
    the same answer, the same (empty) stderr, the same exit code; the log and doctor say
    why nothing was pushed, and the entry waits for the next sync."""
    url = f"postgresql://thrift@127.0.0.1:{closed_port()}/thrift"
    base = {"DATABASE_URL": url, "THRIFT_API_KEY": "sc_unknown"}
    homes = {on: tmp_path / f"home-{on}" for on in ("true", "false")}
    runs = {
        on: thrift(
            "ask",
            "What is a vector index?",
            "--",
            *fake_llm.command(),
            env={**base, "THRIFT_HOME": str(home), "THRIFT_PUSH_ON_STORE": on},
        )
        for on, home in homes.items()
    }
    assert runs["true"] == runs["false"]  # code, stdout and stderr
    assert (
        runs["true"].code == 0 and runs["true"].stderr == "" and runs["true"].stdout.startswith(b"[fake-1]")
    )
    home = homes["true"]
    line = eventually(lambda: log_lines(home), "the push's line in the log")[-1]
    assert "failed: cannot reach the remote" in line and "127.0.0.1" in line, line
    no_pushers_left(home)
    from thrift_cli.home import db_path
    from thrift_sync.mirror import Mirror

    mirror = Mirror(db_path(home))
    assert mirror.count_unpushed(time.time()) == (1, 0)  # for the next sync
    mirror.close()
    doctor = thrift("doctor", "--json", env={**base, "THRIFT_HOME": str(home), "THRIFT_PUSH_ON_STORE": "1"})
    (check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "push on store"]
    assert check["status"] == "warn" and "the last background push" in check["detail"]
    assert "failed: cannot reach the remote" in check["detail"]
    assert str(home / push_on_store.LOG_NAME) in check["fix"]


def test_the_log_keeps_its_size(tmp_path):
    """A log past its cap is started afresh by the next push, whose line survives."""
    home = tmp_path / "h"
    home.mkdir()
    log = home / push_on_store.LOG_NAME
    log.write_text(push_on_store.log_line("old failure", failed=True) * 2000)
    assert log.stat().st_size > push_on_store.LOG_CAP
    push_on_store.start(home)
    line = eventually(lambda: log.read_text().splitlines(), "the push's line")
    assert log.stat().st_size < 1000 and len(line) == 1
    assert "failed: no remote" in line[0]
    last = push_on_store.last_outcome(home)
    assert last is not None and last.failed and last.text.startswith("no remote")
    no_pushers_left(home)
