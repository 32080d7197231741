"""`thrift sync`'s progress bar: through a real pseudo-terminal against a real Postgres
(drawn, redrawn, erased before the summary), not at all when stderr is piped or with
--json; and the bar itself with a clock of the test's own (throttling, width, no total)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import termios

import pytest
from conftest import thrift_client_role, thrift_executable
from test_sync import entry, fill

from thrift_cli import remote_db
from thrift_sync.command import ProgressBar

ENTRIES = 600
ERASE = b"\r\x1b[K"


@pytest.fixture
def team_env(pg_database, pg_server, isolated_env) -> dict[str, str]:
    """A home of ENTRIES entries and the env of a machine of the team, batches of 50: a
    push and a pull of 12 steps each."""
    with remote_db.connect(pg_database) as conn:
        remote_db.migrate(conn)
        key = remote_db.create_key(conn, "team@example.com", tenant="team")
    fill(isolated_env, [entry(f"question {i}") for i in range(ENTRIES)])
    return {
        **os.environ,
        "DATABASE_URL": thrift_client_role(pg_server, pg_database),
        "THRIFT_API_KEY": key,
        "THRIFT_SYNC_BATCH": "50",
    }


def sync_on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    """`thrift sync ARGS` with stderr on a pty of 80 columns: (exit code, what the terminal
    got, stdout)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [*thrift_executable(), "sync", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    terminal = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the other side closed it
            break
        if not data:
            break
        terminal += data
    os.close(master)
    stdout = proc.stdout.read() if proc.stdout else b""
    return proc.wait(60), terminal, stdout


def test_a_sync_on_a_terminal_draws_a_bar_and_erases_it_before_the_summary(team_env):
    code, terminal, stdout = sync_on_a_terminal(team_env)
    assert code == 0 and stdout == b"", terminal
    text = terminal.decode()
    # Drawn in each phase (a new phase is drawn at once), with count, percent and rate.
    assert "thrift sync: push [" in text and "thrift sync: pull [" in text, text
    assert "█" in text and "░" in text
    draws = [d.removesuffix("\x1b[K") for d in text.split("\r") if d.startswith("thrift sync: p")]
    bars = [d for d in draws if "[" in d]
    assert len(bars) >= 2
    for bar in bars:
        assert re.fullmatch(
            r"thrift sync: (push|pull) \[[█░]{20}\] [0-9,]+/[0-9,]+ +[0-9]+%( +[0-9,]+ entries/s)?", bar
        ), bar
        assert len(bar) <= 79
    # Erased, then the summary alone on its line (the pty turns \n into \r\n).
    last_erase = terminal.rindex(ERASE)
    after = terminal[last_erase + len(ERASE) :].decode()
    assert re.fullmatch(r"thrift sync: pushed 600, pulled 0, merged 0, deleted 0 in .*\)\r\n", after), after


def test_no_bar_when_stderr_is_piped_or_with_json(team_env):
    piped = subprocess.run(
        [*thrift_executable(), "sync", "--push"], env=team_env, capture_output=True, stdin=subprocess.DEVNULL
    )
    assert piped.returncode == 0 and piped.stdout == b""
    assert b"\r" not in piped.stderr and "█".encode() not in piped.stderr and b"\x1b" not in piped.stderr
    assert piped.stderr.count(b"\n") == 1 and piped.stderr.startswith(b"thrift sync: pushed 600,")
    code, terminal, stdout = sync_on_a_terminal(team_env, "--json")
    assert code == 0 and terminal == b""  # the summary is on stdout, nothing on the terminal
    assert json.loads(stdout)["pushed"] == 0


# -- the bar, on a clock of the test's own --------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drawn(stream: io.StringIO) -> list[str]:
    return [d.removesuffix("\x1b[K") for d in stream.getvalue().split("\r") if d]


def test_redraws_at_most_ten_times_a_second_and_at_once_for_a_new_phase():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock)
    for done in range(1, 11):  # ten batches within 90 ms: one line
        clock.now += 0.009
        bar("push", done * 10, 1000)
    assert len(drawn(out)) == 1 and "10/1,000" in drawn(out)[0]
    clock.now += 0.1
    bar("push", 200, 1000)
    assert len(drawn(out)) == 2 and drawn(out)[-1].startswith("thrift sync: push [████░░")
    clock.now += 0.001
    bar("pull", 50, 500)  # a new phase: at once, timed from the push's last call
    assert drawn(out)[-1] == "thrift sync: pull [██░░░░░░░░░░░░░░░░░░] 50/500  10%  50,000 entries/s"
    bar.clear()
    assert out.getvalue().endswith("\r\x1b[K")


def test_an_unknown_total_shows_the_count_and_rate_without_a_bar():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock)
    clock.now += 2.0
    bar("pull", 3000, None)
    assert drawn(out) == ["thrift sync: pull 3,000 (1,500 entries/s)"]


def test_the_line_fits_80_columns_and_nothing_drawn_is_nothing_erased():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock)
    bar.clear()
    assert out.getvalue() == ""
    clock.now += 0.5
    bar("push", 999_999, 999_999)
    assert len(drawn(out)[0]) <= 79 and "100%" in drawn(out)[0]
    clock.now += 1
    bar("pull", 123_456_789_012, 987_654_321_098)  # cut, never wrapped
    assert len(drawn(out)[-1]) == 79


def test_a_terminal_that_cannot_show_the_blocks_gets_ascii():
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    clock = Clock()
    bar = ProgressBar(out, clock=clock)
    clock.now += 1
    bar("push", 5, 10)
    out.flush()
    assert out.buffer.getvalue().startswith(b"\rthrift sync: push [##########----------] 5/10  50%")  # type: ignore[attr-defined]
