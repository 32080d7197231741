"""HNSW graphs (usearch) over large namespaces: a disposable cache of the SQLite store.

An exact scan costs ~0.4 s per lookup at 1,000,000 entries in sqlite-vec and ~60 ms in
numpy; an HNSW graph answers in under a millisecond. Below `min_entries()` a namespace is
scanned exactly, which is both exact and fast enough.

The store stays the only truth. A graph file holds the namespace's vectors up to a
*watermark*, the highest entry rowid it contains (rowids only grow: AUTOINCREMENT). The
store names the one graph file it vouches for in its `meta` table (`graph:<digest>`),
so a copied or restored cache file never trusts a graph built from other rows: the file
it names is missing, and rebuilt. Files are written under a lock to a temporary name,
renamed into place, and only then named in `meta`, so a reader sees a whole file or
none, and a process killed while building leaves the previous graph in use.

A lookup maps the graph read-only (nothing is read in full at a cold start), scans the
rows added since its watermark exactly, drops candidates whose row was deleted or
expired, and re-scores the rest with the float32 vectors stored in SQLite: a graph only
proposes candidates, so a stale one can cost recall, never a wrong similarity. A damaged
file is caught by its recorded size, or by its checksum where that is read (see
`open_graph`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli import config
from thrift_cli.home import file_checksum, sweep_temporary, write_atomically

if TYPE_CHECKING:
    import numpy as np

# Rows added past a graph's watermark before the graph is brought up to date.
REFRESH_AT = 2000
# When more than this share of a graph's rows were deleted, it is rebuilt, not extended.
MAX_DEAD_SHARE = 0.2
# HNSW parameters, measured with scripts/bench_speed.py (recall@1 against exact search).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 512
DTYPE = "f16"  # candidates only: they are re-scored in float32
_ADD_BATCH = 20_000
_SEED = 2_000  # nodes added single-threaded before parallel inserts (see build)


def min_entries() -> int:
    """Namespaces with at least this many entries are searched through a graph
    (`THRIFT_HNSW_MIN_ENTRIES`, checked in config.py)."""
    return config.hnsw_min_entries()


def digest(namespace: str) -> str:
    return hashlib.blake2b(namespace.encode(), digest_size=10).hexdigest()


@dataclass
class Graph:
    """One namespace's graph as found on disk."""

    index: Any  # usearch.index.Index
    watermark: int
    path: Path
    record: str  # as kept in the store's meta table: file name, size and checksum

    def search(self, vector: np.ndarray, k: int) -> list[int]:
        if len(self.index) == 0:
            return []
        matches = self.index.search(vector, k)
        return [int(key) for key in matches.keys]


def meta_key(namespace: str) -> str:
    """The store's `meta` key naming this namespace's current graph file."""
    return "graph:" + digest(namespace)


def open_graph(
    directory: Path, record: str | None, *, view: bool = True, verify: bool = False
) -> Graph | None:
    """The graph file a store's `record` names, memory-mapped when `view`; None when there
    is none or it is not the file that was saved (it is then rebuilt).

    A file of another size is never opened. Its checksum is compared only when `verify`
    (by `thrift index` and before a graph is extended): it costs a read of the whole file,
    ~1 s at 1,000,000 entries, too much for every lookup.
    """
    try:
        saved = json.loads(record or "null")
        match = _NAME.match(saved["file"])
        path, size = directory / saved["file"], int(saved["size"])
    except (ValueError, TypeError, KeyError):
        return None
    if match is None:
        return None
    try:
        if path.stat().st_size != size or (verify and file_checksum(path) != saved["blake2b"]):
            return None
        from usearch.index import Index

        index = Index.restore(str(path), view=view, expansion_search=EXPANSION_SEARCH)
    except Exception:  # missing, unreadable, or written by an incompatible usearch
        return None
    if index is None or index.ndim == 0:
        return None
    return Graph(index, int(match.group(2)), path, record or "")


def _before_usearch() -> None:
    """Import onnxruntime before usearch in a process that builds graphs. usearch's
    extension carries its own copy of libstdc++'s locale facets, and an onnxruntime
    imported after it crashes the process (SIGSEGV in std::codecvt, seen with usearch
    2.x and onnxruntime 1.2x). Builds run in processes that may embed next (the Python
    API, `thrift import`); one-shot lookups, which only open graphs, never load
    onnxruntime and skip this ~40 ms. Once usearch is loaded it is too late (the import
    itself would crash): the warm embedder then falls back to numpy (embed.py)."""
    if "usearch.index" in sys.modules:
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass


_NAME = re.compile(r"^([0-9a-f]{20})\.(\d+)\.([0-9a-f]{8})\.usearch$")


RowReader = Callable[[str, int, int], list[tuple[int, bytes]]]


def build(
    directory: Path,
    namespace: str,
    current: Callable[[], str | None],
    rows: RowReader,
    live_count: Callable[[str, int], int],
    dim: int,
    publish: Callable[[str], None],
    *,
    wait: bool = False,
) -> Graph | None:
    """Bring `namespace`'s graph (the file named by `current()`) up to date with the
    store, save it and `publish` its name. When another process is building it, wait for
    that build if `wait`, else return None at once (it is doing the same work)."""
    import numpy as np

    _before_usearch()
    from usearch.index import Index

    from thrift_cli import vectors

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = digest(namespace)
    lock = _lock(directory / f"{stem}.lock", wait)
    if lock is None:
        return None
    try:
        sweep_temporary(directory)
        base = open_graph(directory, current(), verify=True)
        if base is not None:
            dead = len(base.index) - live_count(namespace, base.watermark)
            if dead > MAX_DEAD_SHARE * max(len(base.index), 1):
                base = None  # mostly deleted rows: start again
            elif not rows(namespace, base.watermark, 1):
                return base  # up to date
            else:
                base = open_graph(directory, base.record, view=False)  # a copy we can add to
        if base is None:
            index = Index(
                ndim=dim,
                metric="cos",
                dtype=DTYPE,
                connectivity=CONNECTIVITY,
                expansion_add=EXPANSION_ADD,
                expansion_search=EXPANSION_SEARCH,
            )
            watermark = 0
        else:
            index, watermark = base.index, base.watermark
        while batch := rows(namespace, watermark, _ADD_BATCH):
            keys = np.fromiter((r for r, _ in batch), dtype=np.uint64, count=len(batch))
            matrix = np.stack([vectors.decode(b) for _, b in batch])
            # Parallel inserts into a near-empty graph leave some nodes unreachable (measured:
            # ~2 in 300 with two threads, none with one), so the first ones go in one by one.
            seed = max(0, min(_SEED - len(index), len(keys)))
            if seed:
                index.add(keys[:seed], matrix[:seed], threads=1)
            if seed < len(keys):
                index.add(keys[seed:], matrix[seed:], threads=os.cpu_count() or 1)
            watermark = int(keys[-1])
        name = f"{stem}.{watermark}.{os.urandom(4).hex()}.usearch"
        path = write_atomically(directory, lambda tmp: index.save(str(tmp)), lambda _: name)
        record = json.dumps({"file": path.name, "size": path.stat().st_size, "blake2b": file_checksum(path)})
        publish(record)
        for old in directory.glob(f"{stem}.*.usearch"):
            if old != path:
                old.unlink(missing_ok=True)  # a reader that mapped it keeps its pages
        (directory / f"{stem}.failed").unlink(missing_ok=True)
        # Searched through a map of the file, like every other reader: the pages are shared
        # with the OS cache instead of held twice.
        return open_graph(directory, record) or Graph(index, watermark, path, record)
    finally:
        os.close(lock)


def _lock(path: Path, wait: bool) -> int | None:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


# A failed background build is not retried for this long (a full disk would otherwise
# start a doomed build at every lookup).
RETRY_AFTER_S = 600.0
# Nor is one started again by the same process within this long.
RESPAWN_AFTER_S = 60.0
_spawned: dict[tuple[str, str], float] = {}


def note_failure(directory: Path, namespace: str) -> None:
    try:
        (directory / f"{digest(namespace)}.failed").touch()
    except OSError:
        pass


def refresh_in_background(home: Path, namespaces: Iterable[str]) -> None:
    """Start `thrift index` for `namespaces`, detached: the lookup that noticed a missing
    or stale graph answers now, and the next ones find the graph up to date. Not when a
    build is running, has failed recently, or was started by this process in the last
    minute."""
    import time

    now, wanted = time.monotonic(), []
    for ns in namespaces:
        marker = home / "index" / f"{digest(ns)}.failed"
        try:
            if time.time() - marker.stat().st_mtime < RETRY_AFTER_S:
                continue
        except OSError:
            pass
        if now - _spawned.get((str(home), ns), -1e9) < RESPAWN_AFTER_S or _building(
            home / "index" / f"{digest(ns)}.lock"
        ):
            continue
        _spawned[str(home), ns] = now
        wanted.append(ns)
    if not wanted:
        return
    args = [sys.executable, "-m", "thrift_cli", "index", "--background"]
    for ns in wanted:
        args += ["--namespace", ns]
    try:
        subprocess.Popen(
            args,
            env={**os.environ, "THRIFT_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        pass  # the exact scan still answers; the next lookup tries again


def _building(lock_path: Path) -> bool:
    """Whether a build holds `lock_path` now."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
