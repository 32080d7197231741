"""What `thrift top` shows, read from the cache file without ever making a writer wait.

The file is in WAL mode: a reader works on a snapshot and takes no lock a writer waits
for. Each poll first asks `PRAGMA data_version`, a counter SQLite bumps when another
connection commits, read from the shared-memory index without touching the file: an idle
poll costs a few microseconds, and the figures (stats.py) are read again only when
something changed, or when the window slid by enough to matter.

No Textual here. The app calls it from worker threads; a lock keeps their calls to the
one connection apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrift_cli import stats
from thrift_cli.stats import Window

FEED_ROWS = 200
# A sliding window (--since 1h) changes with no event recorded: its figures are read
# again at least this often (a long one less often: app.Window.slide).
SLIDE_SECONDS = 30.0


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh of the screen shows."""

    figures: dict[str, Any]
    timeline: dict[str, Any]
    feed: list[dict[str, Any]]
    namespaces: list[str] = field(default_factory=list)
    exists: bool = True  # False: no cache file yet
    read_ms: float = 0.0  # how long reading it took
    partial: bool = False  # only the feed and the entries: the figures are being read

    @property
    def empty(self) -> bool:
        """Nothing was ever cached or looked up: the screen shows how to begin."""
        return not self.exists or (
            self.figures["last_event_id"] == 0 and self.figures["entries"]["total"] == 0
        )


class Source:
    """The cache file at `path`, opened lazily (it may not exist yet) and only read."""

    def __init__(
        self,
        path: Path,
        *,
        prices: Mapping[str, float] | None = None,
        default_price: float = 0.002,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.prices = dict(prices or {})
        self.default_price = default_price
        self.clock = clock
        self._conn: Any = None
        self._version: int | None = None
        self._lock = threading.Lock()
        self._timeline: tuple[tuple[float | None, str | None, int], dict[str, Any]] | None = None

    def changed(self) -> bool:
        """Whether anything was committed since the last call (True on the first, and
        when the file appears)."""
        with self._lock:
            conn = self._open()
            if conn is None:
                return False
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == self._version:
                return False
            self._version = version
            return True

    def snapshot(self, since: float | None, namespace: str | None, *, points: int = 60) -> Snapshot:
        """The figures of the window (from `since`, unix seconds; of `namespace`), its
        timeline in at most `points` buckets, and the latest lookups."""
        started = time.perf_counter()
        now = self.clock()
        window = Window(since=since, namespace=namespace)
        with self._lock:
            conn = self._open()
            if conn is None:
                return Snapshot(
                    figures=stats.empty(window, self.default_price, now),
                    timeline={"step_seconds": 60, "start": now, "lookups": [], "hits": []},
                    feed=[],
                    exists=False,
                )
            figures = stats.figures(
                conn, window, prices=self.prices, default_price=self.default_price, now=now
            )
            timeline = self._read_timeline(conn, window, now, points)
            feed = stats.recent(conn, window, limit=FEED_ROWS)
            namespaces = [r[0] for r in conn.execute("SELECT DISTINCT namespace FROM entries ORDER BY 1")]
        return Snapshot(figures, timeline, feed, namespaces, read_ms=(time.perf_counter() - started) * 1000)

    def quick(self, since: float | None, namespace: str | None) -> Snapshot:
        """What is cheap to read whatever the window (the latest lookups, the entries), to
        show while the figures are read: the figures in it are zeros, `partial` says so."""
        now = self.clock()
        window = Window(since=since, namespace=namespace)
        with self._lock:
            conn = self._open()
            figures = stats.empty(window, self.default_price, now)
            if conn is None:
                return Snapshot(
                    figures,
                    {"step_seconds": 60, "start": now, "lookups": [], "hits": []},
                    [],
                    exists=False,
                    partial=True,
                )
            figures["entries"] = stats.entry_counts(conn, window, now)
            figures["last_event_id"] = stats.last_event_id(conn)
            feed = stats.recent(conn, window, limit=FEED_ROWS)
            namespaces = [r[0] for r in conn.execute("SELECT DISTINCT namespace FROM entries ORDER BY 1")]
        return Snapshot(
            figures,
            {"step_seconds": 60, "start": now, "lookups": [], "hits": []},
            feed,
            namespaces,
            partial=True,
        )

    def _read_timeline(self, conn: Any, window: Window, now: float, points: int) -> dict[str, Any]:
        """The timeline, from the last one where the window's start and the points are the
        same (its past buckets do not change: see stats.timeline)."""
        key = (window.since, window.namespace, points)
        known = self._timeline[1] if self._timeline is not None and self._timeline[0] == key else None
        line = stats.timeline(conn, window, now=now, points=points, known=known)
        self._timeline = (key, line)
        return line

    def feed(self, since: float | None, namespace: str | None, after_id: int) -> list[dict[str, Any]]:
        """The lookups recorded after event `after_id`, newest first (cheap: by rowid)."""
        with self._lock:
            conn = self._open()
            if conn is None:
                return []
            return stats.recent(
                conn, Window(since=since, namespace=namespace), limit=FEED_ROWS, after_id=after_id
            )

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            conn = self._open()
            return None if conn is None else stats.entry_detail(conn, entry_id)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _open(self) -> Any:
        if self._conn is None and self.path.is_file():
            from thrift_cli import db

            self._conn = db.connect(self.path, read_only=db.read_only(self.path))
        return self._conn
