"""How fast `thrift top` starts on a large cache, and what it costs while it waits.

    python scripts/bench_top.py [--entries 100000] [--events 1000000] [--runs 5]
                                [--idle 30] [--home DIR]

The cache is bench_stats.py's (100,000 entries, 1,000,000 events over 30 days, built
with direct SQL). Each run starts the real `thrift top` in a pseudo-terminal of 120x40
and times, from the fork, until its screen first shows the dashboard (the status line,
drawn with the feed and the entries before the figures are read: "reading the
figures") and until it shows the figures (the timeline's title, drawn only then).
Then, with nothing writing to the cache, the process's CPU time (utime + stime from
/proc) over `--idle` seconds gives its idle CPU share; then a writer records one lookup
a second and the same is measured again (each one makes the app read its figures). Last,
in this process: the cost of one poll (PRAGMA data_version) and of one full read per
window (what each refresh after a change costs).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stats import built, thrift  # noqa: E402

from thrift_cli import db  # noqa: E402
from thrift_cli.tui.source import Source  # noqa: E402

FIRST = b"reading the figures"
MARKER = b"hit rate per"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Top:
    """`thrift top` running in a pty; its output is read (and dropped) by a thread."""

    def __init__(self, home: Path, since: str) -> None:
        env = {**os.environ, "THRIFT_HOME": str(home), "TERM": "xterm-256color"}
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.clear()
            os.environ.update(env)
            os.environ.update({"COLUMNS": "120", "LINES": "40"})
            os.execv(thrift()[0], [*thrift(), "top", "--since", since])
        self.shown: float | None = None
        self.first: float | None = None
        self._seen = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.5)
                if ready:
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        return
                    if self.shown is None:
                        self._seen = (self._seen + chunk)[-4096:]
                        if self.first is None and FIRST in self._seen:
                            self.first = time.perf_counter() - self.started
                        if MARKER in self._seen:
                            self.shown = time.perf_counter() - self.started
                            self.first = self.first or self.shown
            except OSError:
                return

    def wait_shown(self, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while self.shown is None:
            if time.monotonic() > deadline:
                raise SystemExit("thrift top showed no figures in time")
            time.sleep(0.01)
        return self.shown

    def quit(self) -> None:
        os.write(self.fd, b"q")
        for _ in range(100):
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def record_lookups(path: Path, stop: threading.Event) -> None:
    """One exact-hit event a second, as `thrift ask` records one."""
    conn = db.connect(path)
    while not stop.wait(1.0):
        conn.execute(
            "INSERT INTO events (at, namespace, tier, similarity, latency_ms, answer_bytes, entry_id, "
            "source) SELECT ?, namespace, 'exact', 1.0, 0.4, 200, id, 'local' FROM entries LIMIT 1",
            (time.time(),),
        )
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each CPU measurement")
    parser.add_argument("--home", type=Path, help="reuse (or build) the cache here; default: a temporary one")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="thrift-bench-top-"))
    path = built(home, args.entries, args.events)
    subprocess.run(
        [*thrift(), "stats", "--json"],
        env={**os.environ, "THRIFT_HOME": str(home)},
        check=True,
        stdout=subprocess.DEVNULL,
    )  # warm the file cache, as a second start would find it

    print(
        f"| `thrift top --since W`, 120x40 | to the first frame, median of {args.runs} (range) "
        f"| to the figures, median of {args.runs} (range) |"
    )
    print("|---|---|---|")
    for since in ("24h", "all"):
        firsts, times = [], []
        for _ in range(args.runs):
            top = Top(home, since)
            times.append(top.wait_shown())
            firsts.append(top.first or times[-1])
            top.quit()
        print(
            f"| {since} | {statistics.median(firsts):.2f} s ({min(firsts):.2f}-{max(firsts):.2f}) "
            f"| {statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f}) |"
        )

    print()
    print(f"| `thrift top --since W`, interval 1 s | CPU over {args.idle:g} s |")
    print("|---|---|")
    for since in ("24h", "all"):
        top = Top(home, since)
        top.wait_shown()
        time.sleep(3)
        before = cpu_seconds(top.pid)
        time.sleep(args.idle)
        idle = (cpu_seconds(top.pid) - before) / args.idle
        stop = threading.Event()
        writer = threading.Thread(target=record_lookups, args=(path, stop))
        writer.start()
        time.sleep(2)
        before = cpu_seconds(top.pid)
        time.sleep(args.idle)
        busy = (cpu_seconds(top.pid) - before) / args.idle
        stop.set()
        writer.join()
        top.quit()
        print(f"| {since}, nothing written | {idle:.1%} of a core |")
        print(f"| {since}, one lookup recorded a second | {busy:.1%} of a core |")

    source = Source(path)
    source.changed()
    polls = 10_000
    started = time.perf_counter()
    for _ in range(polls):
        source.changed()
    poll_us = (time.perf_counter() - started) / polls * 1e6
    print()
    print(f"one poll (PRAGMA data_version, nothing changed): {poll_us:.1f} µs")
    now = time.time()
    for since, seconds in (("24h", 86400), ("all", None)):
        reads = []
        for _ in range(3):
            started = time.perf_counter()
            source.snapshot(None if seconds is None else now - seconds, None, points=80)
            reads.append(time.perf_counter() - started)
        print(f"one full read, {since}: {statistics.median(reads):.2f} s (median of 3)")
    source.close()


if __name__ == "__main__":
    main()
