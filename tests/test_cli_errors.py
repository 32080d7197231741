"""Bad input: one clear line on stderr, the documented exit code, no traceback, no damage."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from conftest import thrift_executable


def assert_one_line(ran, code: int, *words: str) -> None:
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("thrift: ")
    for word in words:
        assert word in lines[0]
    assert ran.stdout == b""


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question(thrift, fake_llm, question):
    assert_one_line(thrift("ask", question, "--", *fake_llm.command()), 2, "empty")
    assert fake_llm.calls == []


def test_empty_question_on_stdin(thrift, fake_llm):
    assert_one_line(thrift("ask", "--", *fake_llm.command(), input=b"\n"), 2, "empty")


def test_missing_command(thrift):
    assert_one_line(thrift("ask", "What is semantic caching?"), 2, "command")
    assert_one_line(thrift("ask", "What is semantic caching?", "--"), 2, "command")


def test_command_not_found(thrift):
    ran = thrift("ask", "What is semantic caching?", "--", "no-such-llm-xyz", "-m", "x")
    assert_one_line(ran, 127, "command not found", "no-such-llm-xyz")


@pytest.mark.parametrize("value", ["1.5", "0", "-0.2", "nan", "high"])
def test_bad_min_similarity(thrift, fake_llm, value):
    ran = thrift("ask", "--min-similarity", value, "What?", "--", *fake_llm.command())
    assert_one_line(ran, 2, "min")
    assert fake_llm.calls == []


def test_bad_min_similarity_from_the_environment(thrift, fake_llm):
    ran = thrift("ask", "What?", "--", *fake_llm.command(), env={"THRIFT_MIN_SIMILARITY": "1.5"})
    assert_one_line(ran, 2, "THRIFT_MIN_SIMILARITY")


@pytest.mark.parametrize("option,value", [("--ttl", "soon"), ("--ttl", "0"), ("--timeout", "-1")])
def test_bad_durations(thrift, fake_llm, option, value):
    assert_one_line(thrift("ask", option, value, "What?", "--", *fake_llm.command()), 2, option)


def test_unknown_option(thrift, fake_llm):
    assert_one_line(thrift("ask", "--frobnicate", "What?", "--", *fake_llm.command()), 2, "frobnicate")


def test_refresh_with_lookup_only(thrift, fake_llm):
    assert_one_line(thrift("ask", "--refresh", "--lookup-only", "Q", "--", *fake_llm.command()), 2)


def _execute(path, statement: str) -> None:
    """Change a SQLite file behind thrift's back."""
    from thrift_cli import db as thrift_db

    conn = thrift_db.sqlite_module().connect(str(path))
    conn.execute(statement)
    conn.commit()
    conn.close()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupt_cache_file_is_reported_and_left_untouched(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    db = isolated_env / "cache.db"
    db.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    before = _digest(db)
    ran = thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    assert_one_line(ran, 1, "corrupt", str(db))
    assert _digest(db) == before
    assert fake_llm.calls == []


def test_damaged_real_cache_is_reported_and_left_untouched(thrift, fake_llm, isolated_env):
    assert thrift("ask", "What is semantic caching?", "--", *fake_llm.command()).code == 0
    db = isolated_env / "cache.db"
    data = bytearray(db.read_bytes())
    data[4096 : 4096 * 3] = b"\xa5" * (4096 * 2)  # wreck the pages after the header
    db.write_bytes(bytes(data))
    before = _digest(db)
    ran = thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    assert ran.code == 1 and "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert _digest(db) == before


def test_unreadable_cache_path(thrift, fake_llm, isolated_env):
    (isolated_env / "cache.db").mkdir(parents=True)  # a directory where the file should be
    ran = thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    assert_one_line(ran, 1, "cache.db")


def test_home_that_cannot_be_created(thrift, fake_llm, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    ran = thrift("ask", "Q?", "--", *fake_llm.command(), env={"THRIFT_HOME": str(blocker / "home")})
    assert_one_line(ran, 1, "THRIFT_HOME=", "cannot be created", "is not a directory")


def test_cache_from_a_newer_thrift_is_refused_untouched(thrift, fake_llm, isolated_env):
    assert thrift("ask", "Q one", "--", *fake_llm.command()).code == 0
    _execute(isolated_env / "cache.db", "INSERT INTO _migrations VALUES ('9999_from_the_future', 0)")
    before = _digest(isolated_env / "cache.db")
    ran = thrift("ask", "Q one", "--", *fake_llm.command())
    assert_one_line(ran, 1, "newer thrift")
    assert _digest(isolated_env / "cache.db") == before


def test_question_with_a_nul_byte(thrift, fake_llm):
    ran = thrift("ask", "--", *fake_llm.command(), input=b"What is\x00 this?")
    assert_one_line(ran, 2, "NUL", "--stdin")
    piped = thrift("ask", "--stdin", "--", *fake_llm.command("--stdin"), input=b"What is\x00 this?")
    assert piped.code == 0, piped.stderr


def test_question_too_long_for_an_argument(thrift, fake_llm):
    ran = thrift("ask", "--", *fake_llm.command(), input=("why " * 100_000).encode())
    assert_one_line(ran, 2, "--stdin")


def test_closed_stdout(fake_llm, isolated_env):
    # As `echo hi >&-`: the answer cannot be delivered (tests/test_runner.py has the rest).
    shell = " ".join([*thrift_executable(), "ask", "'Q closed'", "--", *fake_llm.command()]) + " >&-"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, timeout=60)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr


def test_full_disk_on_stdout_is_one_line_and_exit_1(fake_llm, isolated_env):
    shell = " ".join([*thrift_executable(), "ask", "'Q full'", "--", *fake_llm.command()]) + " > /dev/full"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["thrift: cannot write the answer to stdout: No space left on device"]


def test_foreign_sqlite_file_is_refused_untouched(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    _execute(isolated_env / "cache.db", "CREATE TABLE recipes (name TEXT)")
    before = _digest(isolated_env / "cache.db")
    ran = thrift("ask", "Q?", "--", *fake_llm.command())
    assert_one_line(ran, 1, "not a thrift cache")
    assert _digest(isolated_env / "cache.db") == before


def test_lock_directory_that_is_a_file(thrift, fake_llm, isolated_env):
    assert thrift("ask", "Q one", "--", *fake_llm.command()).code == 0
    (isolated_env / "locks").rename(isolated_env / "locks.old")
    (isolated_env / "locks").write_text("in the way")
    assert_one_line(thrift("ask", "Q two", "--", *fake_llm.command()), 1, "lock directory")
