"""What `thrift ask` reports: the --json object on every exit path, honest timings, and a
lookup that creates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import Ran, thrift_executable


def json_error(ran, code: int, *words: str) -> dict:
    """The run failed with `code`: a `thrift:` line, then the --json object, last."""
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    report = json.loads(lines[-1])
    assert lines[-2].startswith("thrift: ")
    assert report["error"] == lines[-2].removeprefix("thrift: ")
    assert report["exit_code"] == code and report["tier"] == "error"
    assert report["stored"] is False and report["vetoed"] == [] and report["total_ms"] > 0
    for word in words:
        assert word in report["error"]
    return report


def test_command_not_found(thrift):
    ran = thrift("ask", "--json", "What is semantic caching?", "--", "no-such-llm-xyz", "-m", "x")
    report = json_error(ran, 127, "command not found", "no-such-llm-xyz")
    assert report["namespace"] == "no-such-llm-xyz -m x {}"
    assert report["lookup_ms"] > 0  # the lookup ran (and missed) before the command was tried


def test_command_not_executable(thrift, tmp_path):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    report = json_error(thrift("ask", "--json", "Q?", "--", str(script)), 126, "not executable")
    assert report["namespace"] == f"{script} {{}}"


@pytest.mark.parametrize(
    "args,input,words",
    [
        (["--json", "   ", "--", "llm"], None, ["empty"]),
        (["--json", "--", "llm"], b"What is\x00 this?", ["NUL"]),
        (["--json", "--refresh", "--lookup-only", "Q", "--", "llm"], None, ["--refresh"]),
        (["--json", "-s", "1.5", "Q", "--", "llm"], None, ["--min-similarity"]),
        (["--json", "--ttl", "soon", "Q", "--", "llm"], None, ["--ttl"]),
        (["--json", "Q", "--"], None, ["no command"]),
    ],
    ids=["empty question", "NUL byte", "refresh and lookup-only", "min-similarity", "ttl", "no command"],
)
def test_bad_usage(thrift, args, input, words):
    report = json_error(thrift("ask", *args, input=input), 2, *words)
    assert report["lookup_ms"] is None  # refused before any lookup
    if args[-1] == "llm":
        assert report["namespace"] == "llm {}"


def test_bad_usage_through_typer(thrift):
    # `-vn` is a cluster the fast parser hands to typer: the same report comes out.
    ran = thrift("ask", "--json", "-vn", "team", "", "--", "llm")
    assert json_error(ran, 2, "empty")["namespace"] == "team"


def test_question_too_long_for_an_argument(thrift, fake_llm):
    ran = thrift("ask", "--json", "--", *fake_llm.command(), input=("why " * 100_000).encode())
    assert json_error(ran, 2, "--stdin")["lookup_ms"] > 0


def test_corrupt_cache(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    (isolated_env / "cache.db").write_bytes(b"this is not a database\n" * 500)
    report = json_error(thrift("ask", "--json", "Q?", "--", *fake_llm.command()), 1, "corrupt")
    assert report["namespace"] is not None and report["lookup_ms"] is None
    assert fake_llm.calls == []


def _start_and_signal(fake_llm, sig: int) -> Ran:
    proc = subprocess.Popen(
        [*thrift_executable(), "ask", "--json", "Slow one", "--", *fake_llm.command("--sleep", "60")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not fake_llm.calls:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return Ran(proc.returncode, out, err.decode())


@pytest.mark.parametrize(
    "sig,code,words", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_interrupted_mid_call(fake_llm, sig, code, words):
    report = json_error(_start_and_signal(fake_llm, sig), code, words)
    assert report["lookup_ms"] > 0 and report["namespace"].endswith("--sleep 60 {}")


# -- timings -------------------------------------------------------------------------


def _timed(thrift, *args: str) -> tuple[dict, float]:
    started = time.monotonic()
    ran = thrift(*args)
    wall_ms = (time.monotonic() - started) * 1000
    assert ran.code == 0, ran.stderr
    return ran.report, wall_ms


def test_a_semantic_miss_reports_the_lookup_it_ran(thrift, fake_llm):
    thrift("ask", "How do I learn to code quickly?", "--", *fake_llm.command())
    # Another question in the same namespace: the model was loaded, the question embedded
    # and the namespace searched before the miss was decided.
    report, wall_ms = _timed(
        thrift, "ask", "--json", "What is the capital of Peru?", "--", *fake_llm.command()
    )
    assert report["tier"] == "miss" and report["similarity"] is not None
    assert report["lookup_ms"] > 1.0
    assert report["lookup_ms"] + report["call_ms"] <= report["total_ms"]
    assert report["overhead_ms"] == pytest.approx(report["total_ms"] - report["call_ms"], abs=0.02)
    # From the process's own start, at the kernel's clock-tick resolution (10 ms),
    # and 0.01 ms of rounding.
    assert report["total_ms"] <= wall_ms + 11


def test_a_hit_is_all_overhead(thrift, fake_llm):
    thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    report, wall_ms = _timed(thrift, "ask", "--json", "What is semantic caching?", "--", *fake_llm.command())
    assert report["tier"] == "exact" and report["call_ms"] is None
    assert report["waited_ms"] is None  # served at once: no lock, nobody waited for
    assert report["overhead_ms"] == report["total_ms"] >= report["lookup_ms"] > 0
    assert report["total_ms"] <= wall_ms + 11


def test_total_ms_counts_from_the_process_start():
    # The interpreter sleeps before it imports thrift at all: that time is thrift's too.
    code = "import time; time.sleep(0.5); from thrift_cli import cli; print(cli._process_age_ms())"
    age = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert age >= 500


# -- a lookup creates nothing ----------------------------------------------------------


def test_lookup_only_creates_no_home(thrift, fake_llm, tmp_path):
    home = tmp_path / "never-made"
    env = {"THRIFT_HOME": str(home)}
    ran = thrift("ask", "--json", "--lookup-only", "What is RAG?", "--", *fake_llm.command(), env=env)
    assert ran.code == 3 and ran.stdout == b""
    assert ran.report["tier"] == "miss" and ran.report["exit_code"] == 3 and ran.report["vetoed"] == []
    assert ran.report["namespace"].endswith(" {}")
    by_name = thrift("ask", "--json", "--lookup-only", "-n", "team", "What is RAG?", env=env)
    assert by_name.code == 3 and by_name.report["namespace"] == "team"
    assert not home.exists()
    assert fake_llm.calls == []


def test_lookup_only_in_an_empty_home_creates_no_file(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    ran = thrift("ask", "--lookup-only", "What is RAG?", "--", *fake_llm.command())
    assert ran.code == 3
    assert list(isolated_env.iterdir()) == []  # no cache.db, no locks/


def test_lookup_only_creates_no_default_data_directory(thrift, fake_llm, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "THRIFT_HOME"}
    env.update(HOME=str(tmp_path / "user"), XDG_DATA_HOME=str(tmp_path / "user" / "data"))
    proc = subprocess.run(
        [*thrift_executable(), "ask", "--lookup-only", "What is RAG?", "--", *fake_llm.command()],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert not (tmp_path / "user").exists()


def test_lookup_only_still_checks_the_question(thrift, tmp_path):
    env = {"THRIFT_HOME": str(tmp_path / "never-made")}
    ran = thrift("ask", "--json", "--lookup-only", "--", "llm", input=b"What\x00?", env=env)
    json_error(ran, 2, "NUL")
    assert not (tmp_path / "never-made").exists()
