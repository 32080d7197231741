"""`thrift sync` as the shell runs it: settings in, progress and one summary line out."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from thrift_cli import config
from thrift_cli.errors import UsageError
from thrift_sync.engine import SyncResult, sync


def run(*, push_only: bool, pull_only: bool, dry_run: bool, as_json: bool, background: bool = False) -> int:
    """Sync (both ways, or --push / --pull only); print the summary; the exit code.
    `background`: the push a stored miss starts with push_on_store (background.py)."""
    from thrift_cli.home import db_path, thrift_home

    if background:
        if pull_only or dry_run or as_json:
            raise UsageError("--background pushes only: without --pull, --dry-run or --json")
        from thrift_sync import background as background_push

        return background_push.run(thrift_home())
    config.check_environment()
    if push_only and pull_only:
        raise UsageError("--push and --pull cannot be used together (without either, sync does both)")
    where = config.remote()
    if where is None:
        raise UsageError(
            "no remote: set SUPABASE_DB_URL or DATABASE_URL (or SUPABASE_URL and SUPABASE_KEY), "
            "or thrift config set database_url postgresql://..."
        )
    url, rest_key = where
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() and not as_json else None
    try:
        result = sync(
            db_path(),
            url,
            config.value("api_key"),
            push=not pull_only,
            pull=not push_only,
            dry_run=dry_run,
            progress=bar,
            rest_key=rest_key,
        )
    finally:
        if bar:  # an error's line, too, starts on a clean line
            bar.clear()
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        print(summary(result), file=sys.stderr)
    return 0


class ProgressBar:
    """The progress of a sync on a terminal, one line redrawn in place:

        thrift sync: push [██████████░░░░░░░░░░] 1,200/2,400  50%  1,480 entries/s

    (with an unknown total, the count and the rate alone). The engine calls it after each
    batch; it redraws at most every `interval` seconds, and at once when the phase changes,
    so fast batches cost no terminal writes and slow ones show each step. Fits 80 columns
    up to a million entries, and is cut to the terminal's width: a wrapped line cannot be
    redrawn with a carriage return."""

    WIDTH = 20  # cells of the bar

    def __init__(
        self, stream: TextIO, *, interval: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream, self.interval, self.clock = stream, interval, clock
        self.phase: str | None = None
        # The engine calls after a phase's first batch, so a phase is timed from the last
        # call of the one before (the first, from the start of the sync).
        self.started = self.last_call = clock()
        self.drawn_at: float | None = None
        self.full, self.empty = "█", "░"
        encoding = getattr(stream, "encoding", None)  # None: a stream of str (StringIO)
        try:
            (self.full + self.empty).encode(encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):  # LANG=C on an old Python: ASCII
            self.full, self.empty = "#", "-"

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = self.clock()
        new_phase = phase != self.phase
        if new_phase:
            self.phase, self.started = phase, self.last_call
        self.last_call = now
        if not new_phase and self.drawn_at is not None and now - self.drawn_at < self.interval:
            return
        self.drawn_at = now
        text = self.line(phase, done, total, now - self.started)
        self.stream.write(f"\r{text[: self._columns() - 1]}\033[K")
        self.stream.flush()

    def line(self, phase: str, done: int, total: int | None, seconds: float) -> str:
        """The line for `done` of `total` (None or 0: unknown) in `seconds` of the phase."""
        rate = f"{done / seconds:,.0f} entries/s" if seconds > 0 else ""
        if not total:
            return f"thrift sync: {phase} {done:,}" + (f" ({rate})" if rate else "")
        share = min(done / total, 1.0)
        cells = int(share * self.WIDTH)
        bar = self.full * cells + self.empty * (self.WIDTH - cells)
        return f"thrift sync: {phase} [{bar}] {done:,}/{total:,} {share:4.0%}  {rate}".rstrip()

    def clear(self) -> None:
        """Erase the line, so what follows (the summary, an error) starts clean."""
        if self.drawn_at is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn_at = None

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns if columns > 1 else 80  # a new pty reports 0 columns


def summary(result: SyncResult) -> str:
    """One line: what moved each way, how long it took."""
    would = "would push" if result.dry_run else "pushed"
    parts = [f"{would} {result.pushed:,}"]
    if result.forgotten:
        parts[0] += f" (+{result.forgotten:,} forgotten)"
    parts.append(f"{'would pull' if result.dry_run else 'pulled'} {result.pulled:,}")
    if not result.dry_run:
        parts += [f"merged {result.merged:,}", f"deleted {result.deleted:,}"]
    rate = f", {result.per_second:,.0f} entries/s" if result.moved and not result.dry_run else ""
    where = f"{result.remote} as {result.tenant}"
    return f"thrift sync: {', '.join(parts)} in {result.seconds:.2f} s{rate} ({where})"
