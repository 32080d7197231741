"""Running the LLM command: its life tied to thrift's, its stdout, its start-up errors, long timeouts.

Every test runs the real `thrift ask` in a subprocess against the real store; deadlines in
here are hang guards only, never the thing asserted.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import thrift_executable
from test_helper import start_helper

from thrift_cli import locks

HANG_GUARD_S = 20.0  # far beyond anything these tests need on a busy machine


def process_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever inherited it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until_gone(pid: int) -> bool:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"the command never wrote its pid to {path}")


@pytest.fixture
def leftovers() -> Iterator[list[Path]]:
    """Pid files of processes a test started outside thrift's reach: whatever is still
    alive after the test (a failing one included) is killed."""
    pidfiles: list[Path] = []
    yield pidfiles
    for path in pidfiles:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n") and not process_gone(int(text)):
            os.kill(int(text), signal.SIGKILL)


def popen_ask(*args: str, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*thrift_executable(), "ask", *args], **kwargs)


def integrity(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "cache.db") as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


# -- 1. thrift killed with SIGKILL takes its command with it --------------------------


def test_sigkill_of_thrift_ends_the_command(tmp_path, leftovers):
    pidfile = tmp_path / "pid"
    leftovers.append(pidfile)
    # `exec`: the sleep is the command itself (thrift's child), not a grandchild.
    # Not pipes: the orphaned command would hold them open.
    proc = popen_ask(
        "Killed ask",
        "--",
        *("sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    command = read_pid(pidfile)
    assert not process_gone(command)
    proc.kill()
    proc.wait(timeout=HANG_GUARD_S)
    assert wait_until_gone(command), "the command outlived a SIGKILLed thrift"


RACE = """
import os, sys, time
from thrift_cli import runner

set_up = runner._child_setup(None)  # made in the parent, as run_command makes Popen's preexec_fn
parent = os.getpid()
if os.fork() == 0:
    while os.getppid() == parent:
        time.sleep(0.01)  # until the parent is dead: the race that prctl alone loses
    set_up()
    os.write(int(sys.argv[1]), b"survived")  # reached only if set_up let the orphan go on
os._exit(0)
"""


def test_a_command_whose_thrift_died_before_it_was_tied_exits():
    # The child runs its set-up (prctl, then the parent check) after its parent has died,
    # when PDEATHSIG can no longer fire: the check must end it before exec.
    read_end, write_end = os.pipe()
    try:
        subprocess.run(
            [sys.executable, "-c", RACE, str(write_end)],
            pass_fds=[write_end],
            check=True,
            timeout=HANG_GUARD_S,
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        verdict = pipe.read()  # EOF once the orphan, the last writer, has exited
    assert verdict == b""


def test_timeout_kills_what_the_command_started_even_if_it_ignores_sigterm(thrift, tmp_path, leftovers):
    pidfile = tmp_path / "pid"
    leftovers.append(pidfile)
    script = tmp_path / "spawner.py"
    script.write_text(
        textwrap.dedent(f"""
        import subprocess, time
        # A grandchild that ignores SIGTERM, as a careless tool might.
        child = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 300"])
        open({str(pidfile)!r}, "w").write(f"{{child.pid}}\\n")
        time.sleep(300)
        """)
    )
    ran = thrift("ask", "--timeout", "2", "Spawn and hang", "--", sys.executable, str(script))
    grandchild = read_pid(pidfile)
    assert ran.code == 124, ran.stderr
    assert wait_until_gone(grandchild), "a grandchild that ignored SIGTERM outlived the timeout"


# -- 2. a background child holding stdout does not hold thrift ------------------------


def test_background_child_holding_stdout_does_not_hold_thrift(thrift, tmp_path, leftovers):
    pidfile = tmp_path / "bg"
    leftovers.append(pidfile)
    # The background sleep keeps the command's stdout (thrift's pipe) open for 300 s.
    command = ["sh", "-c", f'echo "answer to $0"; sleep 300 2>/dev/null & echo $! > {pidfile}']
    ran = thrift("ask", "--json", "Background question", "--", *command, timeout=HANG_GUARD_S)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"answer to Background question\n"
    assert ran.report["stored"] is True
    again = thrift("ask", "--json", "Background question", "--", *command, timeout=HANG_GUARD_S)
    assert again.report["tier"] == "exact" and again.stdout == ran.stdout


def test_a_large_answer_is_read_whole_before_thrift_stops_at_the_exit(thrift, tmp_path, leftovers):
    # 3 MB cannot sit in a pipe: the command blocks until thrift reads it, and whatever
    # is left in the pipe when it exits must still be read, background child or not.
    pidfile = tmp_path / "bg"
    leftovers.append(pidfile)
    script = f"head -c 3000000 /dev/zero | tr '\\0' x; sleep 300 2>/dev/null & echo $! > {pidfile}"
    ran = thrift("ask", "--json", "Big answer", "--", "sh", "-c", script, timeout=HANG_GUARD_S * 3)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"x" * 3_000_000
    assert ran.report["stored"] is True


def test_a_failing_command_with_a_background_child_passes_its_code(thrift, tmp_path, leftovers):
    pidfile = tmp_path / "bg"
    leftovers.append(pidfile)
    command = ["sh", "-c", f"echo partial; sleep 300 2>/dev/null & echo $! > {pidfile}; exit 5"]
    ran = thrift("ask", "--json", "Failing background", "--", *command, timeout=HANG_GUARD_S)
    assert ran.code == 5 and ran.stdout == b"partial\n"
    assert ran.report["stored"] is False


# -- 3. closed standard descriptors ----------------------------------------------------


def close_fd_1() -> None:
    os.close(1)


BAD_FD_LINE = "thrift: cannot write the answer to stdout: Bad file descriptor"


@pytest.fixture(params=["no helper", "helper"])
def maybe_helper(request, isolated_env) -> Iterator[None]:
    if request.param == "no helper":
        yield
        return
    proc = start_helper(isolated_env)
    yield
    proc.terminate()
    proc.wait(timeout=30)


def test_closed_stdout_on_a_miss_is_an_error_and_the_answer_is_stored(
    maybe_helper, thrift, fake_llm, isolated_env
):
    proc = popen_ask("Closed miss", "--", *fake_llm.command(), stdout=None, preexec_fn=close_fd_1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.decode().strip().splitlines() == [BAD_FD_LINE]
    assert integrity(isolated_env) == [("ok",)]
    again = thrift("ask", "--json", "Closed miss", "--", *fake_llm.command())
    assert again.report["tier"] == "exact", again.stderr
    assert again.stdout.startswith("[fake-1] Answer to «Closed miss»".encode())
    assert fake_llm.calls == ["Closed miss"]


def test_closed_stdout_on_a_hit_is_an_error_and_the_cache_is_intact(thrift, fake_llm, isolated_env):
    first = thrift("ask", "Closed hit", "--", *fake_llm.command())
    assert first.code == 0
    proc = popen_ask("--json", "Closed hit", "--", *fake_llm.command(), stdout=None, preexec_fn=close_fd_1)
    _, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and lines[0] == BAD_FD_LINE, err
    assert json.loads(lines[-1])["tier"] == "exact"
    assert integrity(isolated_env) == [("ok",)]
    again = thrift("ask", "Closed hit", "--", *fake_llm.command())
    assert again.code == 0 and again.stdout == first.stdout
    assert fake_llm.calls == ["Closed hit"]


def test_closed_stdout_through_a_shell(fake_llm, isolated_env):
    shell = " ".join([*thrift_executable(), "ask", "'Shell closed'", "--", *fake_llm.command()]) + " >&-"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip().splitlines() == [BAD_FD_LINE]


def test_closed_stderr_keeps_thrifts_messages_off_stdout(fake_llm, isolated_env):
    # With fd 2 closed, Python's print(file=sys.stderr) falls back to stdout: the -v line
    # would land in the answer.
    for _ in range(2):  # a miss, then a hit
        proc = popen_ask(
            "-v", "Closed stderr", "--", *fake_llm.command(), stderr=None, preexec_fn=lambda: os.close(2)
        )
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.startswith("[fake-1] Answer to «Closed stderr»".encode()) and b"thrift:" not in out
    assert integrity(isolated_env) == [("ok",)]


def test_closed_stdin_with_the_question_as_an_argument(thrift, fake_llm, isolated_env):
    proc = popen_ask("Closed stdin", "--", *fake_llm.command(), stdin=None, preexec_fn=lambda: os.close(0))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("[fake-1] Answer to «Closed stdin»".encode())
    assert integrity(isolated_env) == [("ok",)]
    assert thrift("ask", "--json", "Closed stdin", "--", *fake_llm.command()).report["tier"] == "exact"


# -- 4. a script whose interpreter is missing -------------------------------------------


def script(path: Path, shebang: str) -> Path:
    path.write_text(f"#!{shebang}\nprint('hello')\n")
    path.chmod(0o755)
    return path


def one_line(ran) -> str:
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    return lines[0]


def test_missing_interpreter_is_named_for_a_path(thrift, tmp_path):
    ask_sh = script(tmp_path / "ask.sh", "/no/such/python -u")
    ran = thrift("ask", "Who runs me?", "--", str(ask_sh))
    assert ran.code == 127  # as bash 5.2 and dash
    assert one_line(ran) == f"thrift: cannot run {ask_sh}: its interpreter /no/such/python is not found"


def test_missing_interpreter_is_named_for_a_command_on_path(thrift, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "ask-llm", "/no/such/python")
    ran = thrift("ask", "Who runs me?", "--", "ask-llm", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert ran.code == 127
    assert one_line(ran) == "thrift: cannot run ask-llm: its interpreter /no/such/python is not found"


def test_interpreter_that_is_not_executable_is_named(thrift, tmp_path):
    not_exe = tmp_path / "not-a-program"
    not_exe.write_text("nothing\n")
    not_exe.chmod(0o644)
    ask_sh = script(tmp_path / "ask.sh", str(not_exe))
    ran = thrift("ask", "Who runs me?", "--", str(ask_sh))
    assert ran.code == 126  # as bash and dash
    assert one_line(ran) == f"thrift: cannot run {ask_sh}: its interpreter {not_exe} is not executable"


def test_a_command_that_does_not_exist_is_still_not_found(thrift, tmp_path):
    ran = thrift("ask", "Who runs me?", "--", str(tmp_path / "nowhere.sh"))
    assert ran.code == 127
    assert one_line(ran) == f"thrift: command not found: {tmp_path / 'nowhere.sh'}"


# -- 5. any finite timeout ---------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["25d", "30d", "365d", "100000d"])
def test_long_timeouts_run_the_command(thrift, fake_llm, timeout):
    ran = thrift("ask", "--json", "--timeout", timeout, f"Patient {timeout}", "--", *fake_llm.command())
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith(f"[fake-1] Answer to «Patient {timeout}»".encode())
    assert ran.report["stored"] is True


def test_a_short_timeout_still_kills_at_the_deadline(thrift, tmp_path, leftovers):
    pidfile = tmp_path / "pid"
    leftovers.append(pidfile)
    ran = thrift(
        "ask", "--timeout", "1", "Too slow", "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"
    )
    command = read_pid(pidfile)
    assert ran.code == 124
    assert wait_until_gone(command)


@pytest.mark.parametrize("lock_dir", ["in-process", "flock"])
def test_single_flight_takes_any_finite_timeout(tmp_path, lock_dir):
    directory = None if lock_dir == "in-process" else tmp_path / "locks"
    for timeout in (25 * 86400.0, 100000 * 86400.0, 1e12, float("inf")):
        with locks.single_flight(directory, "v1:" + "ab" * 16, timeout) as got:
            assert got
