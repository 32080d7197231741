"""A read-only cache (`chmod 500 $THRIFT_HOME`, `chmod 400 cache.db`, a read-only mount)
still serves what it holds: hits and semantic hits are served, misses run the command,
one warning line says nothing is cached, and nothing in the directory changes.

Run as a user who honours permission bits: root ignores them, so as root each `thrift`
runs without CAP_DAC_OVERRIDE (the setpriv wrapper).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Ran, thrift_executable

Q = "How do I learn to code quickly?"
PARAPHRASE = "How can I learn to code fast?"
WARNING = "thrift: warning: the cache {db} is read-only: answers are not cached, lookups not recorded"


def honouring_permissions(*argv: str) -> list[str]:
    wrapper = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    return [*wrapper, *argv]


def as_user(*args: str, input: bytes | None = None) -> Ran:
    """`thrift` as a process that permission bits apply to."""
    proc = subprocess.run(
        honouring_permissions(*thrift_executable(), *args),
        input=input,
        capture_output=True,
        timeout=120,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def snapshot(home: Path) -> dict[str, str]:
    """Every path under the home, with a digest of each file's bytes."""
    return {
        str(p.relative_to(home)): hashlib.blake2b(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(home.rglob("*"))
    }


@pytest.fixture
def read_only_home(thrift, fake_llm, isolated_env) -> Iterator[Path]:
    """A cache with one answer, then its directory made 500 and its file 400."""
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    before = snapshot(isolated_env)
    os.chmod(isolated_env / "cache.db", 0o400)
    os.chmod(isolated_env, 0o500)
    yield isolated_env
    os.chmod(isolated_env, 0o700)
    os.chmod(isolated_env / "cache.db", 0o600)
    assert snapshot(isolated_env) == before  # nothing created, nothing written
    assert sorted(p.name for p in isolated_env.glob("cache.db*")) == ["cache.db"]


def assert_one_warning(ran: Ran, home: Path) -> None:
    assert "Traceback" not in ran.stderr
    assert ran.stderr.splitlines() == [WARNING.format(db=home / "cache.db")], ran.stderr


def test_the_wrapper_honours_permission_bits(read_only_home):
    touch = subprocess.run(honouring_permissions("touch", str(read_only_home / "probe")), capture_output=True)
    assert touch.returncode != 0 and not (read_only_home / "probe").exists()


def test_an_exact_hit_is_served(read_only_home, fake_llm):
    ran = as_user("ask", Q, "--", *fake_llm.command())
    assert ran.code == 0 and Q.encode() in ran.stdout
    assert_one_warning(ran, read_only_home)
    assert fake_llm.calls == [Q]


def test_a_semantic_hit_is_served(read_only_home, fake_llm):
    ran = as_user("ask", "--json", PARAPHRASE, "--", *fake_llm.command())
    assert ran.code == 0 and Q.encode() in ran.stdout
    assert ran.report["tier"] == "semantic"
    assert_one_warning(Ran(ran.code, ran.stdout, "\n".join(ran.stderr.splitlines()[:-1])), read_only_home)
    assert fake_llm.calls == [Q]


def test_a_miss_runs_the_command_with_its_exit_code(read_only_home, fake_llm):
    ran = as_user("ask", "What is RAG?", "--", *fake_llm.command())
    assert ran.code == 0 and b"What is RAG?" in ran.stdout
    assert_one_warning(ran, read_only_home)
    failed = as_user("ask", "What is CAG?", "--", *fake_llm.command("--exit", "4"))
    assert failed.code == 4
    assert_one_warning(failed, read_only_home)
    assert fake_llm.calls == [Q, "What is RAG?", "What is CAG?"]
    again = as_user("ask", "--lookup-only", "What is RAG?", "--", *fake_llm.command())
    assert again.code == 3  # it was not cached


def test_a_lookup_only_miss_exits_3(read_only_home, fake_llm):
    ran = as_user("ask", "--lookup-only", "What is RAG?", "--", *fake_llm.command())
    assert ran.code == 3 and ran.stdout == b""
    assert_one_warning(ran, read_only_home)


def test_no_store(read_only_home, fake_llm):
    ran = as_user("ask", "--no-store", "What is RAG?", "--", *fake_llm.command())
    assert ran.code == 0 and b"What is RAG?" in ran.stdout
    assert_one_warning(ran, read_only_home)


def test_without_a_lock_directory_it_runs_without_single_flight(thrift, fake_llm, isolated_env):
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    for lock in (isolated_env / "locks").glob("*"):
        lock.unlink()
    (isolated_env / "locks").rmdir()
    before = snapshot(isolated_env)
    os.chmod(isolated_env / "cache.db", 0o400)
    os.chmod(isolated_env, 0o500)
    try:
        ran = as_user("ask", "What is RAG?", "--", *fake_llm.command())
        hit = as_user("ask", PARAPHRASE, "--", *fake_llm.command())
    finally:
        os.chmod(isolated_env, 0o700)
        os.chmod(isolated_env / "cache.db", 0o600)
    assert ran.code == 0 and b"What is RAG?" in ran.stdout
    assert_one_warning(ran, isolated_env)
    assert hit.code == 0 and Q.encode() in hit.stdout
    assert snapshot(isolated_env) == before


def test_a_read_only_file_in_a_writable_directory_warns_once(thrift, fake_llm, isolated_env):
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    os.chmod(isolated_env / "cache.db", 0o400)
    try:
        hit = as_user("ask", Q, "--", *fake_llm.command())
        miss = as_user("ask", "What is RAG?", "--", *fake_llm.command())
    finally:
        os.chmod(isolated_env / "cache.db", 0o600)
    assert hit.code == 0 and miss.code == 0 and b"What is RAG?" in miss.stdout
    assert_one_warning(hit, isolated_env)
    assert_one_warning(miss, isolated_env)
    # Nothing created beside it: a read-only -shm left there would break the next write.
    assert sorted(p.name for p in isolated_env.glob("cache.db*")) == ["cache.db"]
    stored = as_user("ask", "What is RAG?", "--", *fake_llm.command())  # writable again
    assert stored.code == 0 and stored.stderr == "", stored.stderr
    rows = sqlite3.connect(isolated_env / "cache.db").execute("SELECT question FROM entries").fetchall()
    assert rows == [(Q,), ("What is RAG?",)]


def test_a_read_only_cache_that_needs_a_migration_is_one_error(thrift, fake_llm, isolated_env):
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    conn = sqlite3.connect(isolated_env / "cache.db")
    conn.execute("DELETE FROM _migrations")  # as if written before this thrift's schema
    conn.commit()
    conn.close()
    before = snapshot(isolated_env)
    os.chmod(isolated_env / "cache.db", 0o400)
    os.chmod(isolated_env, 0o500)
    try:
        ran = as_user("ask", Q, "--", *fake_llm.command())
    finally:
        os.chmod(isolated_env, 0o700)
        os.chmod(isolated_env / "cache.db", 0o600)
    assert ran.code == 1 and ran.stdout == b"" and "Traceback" not in ran.stderr
    lines = ran.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("thrift: ") and "read-only" in lines[0], ran.stderr
    assert "0001_initial" in lines[0]
    assert fake_llm.calls == [Q]
    assert snapshot(isolated_env) == before


def test_a_lock_directory_the_user_cannot_write_costs_single_flight_only(thrift, fake_llm, isolated_env):
    assert thrift("ask", Q, "--", *fake_llm.command()).code == 0
    os.chmod(isolated_env / "locks", 0o500)
    try:
        ran = as_user("ask", "What is RAG?", "--", *fake_llm.command())
    finally:
        os.chmod(isolated_env / "locks", 0o700)
    assert ran.code == 0 and ran.stderr == "" and b"What is RAG?" in ran.stdout
    assert thrift("ask", "--lookup-only", "What is RAG?", "--", *fake_llm.command()).code == 0  # stored
