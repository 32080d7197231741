"""The local store: one SQLite file (WAL) holding entries, their vectors and events.

Exact lookups read `entries` by key. Semantic search asks sqlite-vec for the nearest
vectors within the namespace's partition. Every write is one short `BEGIN IMMEDIATE`
transaction, so many `thrift ask` processes can share the file: writers queue on the
busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli import db, hnsw, vectors
from thrift_cli.errors import StoreError
from thrift_cli.models import CacheEntry, Candidate, Event
from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:  # numpy is imported on first use: an exact hit needs none of it
    import numpy as np

    from thrift_cli.index import VectorIndex

# Extra candidates asked of an index, for those whose rows were deleted or expired since.
_SLACK = 16
# How often a memory index is counted against the file, to see rows deleted elsewhere.
COUNT_EVERY_S = 1.0

_ENTRY_COLUMNS = (
    "id, namespace, question, question_hash, answer, created_at, last_hit_at, hit_count, expires_at"
)


def _entry(row: tuple[Any, ...]) -> CacheEntry:
    return CacheEntry(
        id=row[0],
        namespace=row[1],
        question=row[2],
        question_hash=row[3],
        answer=row[4],
        created_at=row[5],
        last_hit_at=row[6],
        hit_count=row[7],
        expires_at=row[8],
    )


class SQLiteStore(Tier):
    name = "local"

    def __init__(self, path: Path, *, memory_index: bool = False) -> None:
        """`memory_index`: search a numpy copy of each namespace's vectors, kept in step
        with the file, instead of asking sqlite-vec (for processes that search often)."""
        self.path = path
        self._sqlite = db.sqlite_module()
        self._lock = threading.RLock()  # one connection, shared by an application's threads
        self._memory_index = memory_index
        self._indexes: dict[str, VectorIndex] = {}
        self._graphs: dict[str, hnsw.Graph | None] = {}
        self._seen_version: int | None = None  # PRAGMA data_version the indexes reflect
        self._fresh: set[str] = set()  # namespaces whose index is in step at that version
        self._counted: dict[str, float] = {}  # when each index was last counted (monotonic)
        self._file: tuple[int, int, int, str] | None = None  # what the indexes were read from
        self._conn: Any = None
        self.reopen()

    # -- the connection: kept open for the store's life, or per request (`thrift helper`)

    def reopen(self) -> None:
        """Open the file (again, after `close()`). The in-memory indexes are kept only
        while the file is provably the one they were read from: same device and inode
        (`mv` and `rm` change it), and its newest row at the last close still there with
        the same id. Row ids are never reused within a file, so that row catches what the
        inode does not: another cache or a restored backup copied over the file in place,
        even one that has since grown past the old row count (`sqlite_sequence` alone
        would not catch that). Anything else drops the indexes, which reload on use."""
        with self._lock:
            if self._conn is not None:
                return
            read_only = db.read_only(self.path)
            self.read_only = f"the cache {self.path} is read-only" if read_only else None
            self._conn = db.connect(self.path, read_only=read_only)
            self._seen_version, self._fresh = None, set()  # data_version is per connection
            self._counted = {}  # and what was deleted while it was closed is counted again
            if not self._same_file():
                self._indexes, self._graphs = {}, {}

    def _same_file(self) -> bool:
        if self._file is None:
            return False
        dev, ino, row_id, entry_id = self._file
        if any(index.max_id > row_id for index in self._indexes.values()):
            return False  # they hold a row deleted since, which the check below cannot vouch for
        try:
            st = os.stat(self.path)
            rows = self._read("SELECT id FROM entries WHERE rowid = ?", (row_id,)) if row_id else [("",)]
        except (OSError, StoreError):
            return False  # replaced again as we looked: start over
        return (st.st_dev, st.st_ino) == (dev, ino) and rows == [(entry_id,)]

    def close(self) -> None:
        """Close the connection; the last one to the file checkpoints it and removes its
        `-wal` and `-shm`, so nothing outside the file remains to be misapplied to a file
        moved or copied over it."""
        with self._lock:
            if self._conn is None:
                return
            self._file = None
            if self._memory_index:  # what the next `reopen` checks before reusing the indexes
                try:
                    st = os.stat(self.path)
                    newest = self._conn.execute("SELECT rowid, id FROM entries ORDER BY rowid DESC LIMIT 1")
                    row = newest.fetchone() or (0, "")
                    self._file = (st.st_dev, st.st_ino, row[0], row[1])
                except (OSError, self._sqlite.Error):
                    pass  # gone or unreadable: the indexes are not reused
            self._conn.close()
            self._conn = None

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            if self.read_only:
                raise StoreError(self.read_only)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except self._sqlite.Error as exc:
                raise StoreError(f"cannot write to {self.path}: {exc}") from None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:  # SQLite may already have rolled back (disk full)
                    try:
                        self._conn.execute("ROLLBACK")
                    except self._sqlite.Error:
                        pass
                if isinstance(exc, self._sqlite.Error):
                    raise StoreError(f"cannot write to {self.path}: {exc}") from None
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except self._sqlite.Error as exc:
                damaged = "; thrift doctor checks the file" if "malformed" in str(exc) else ""
                raise StoreError(f"cannot read {self.path}: {exc}{damaged}") from None

    # -- Tier ---------------------------------------------------------------------------

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE question_hash = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (question_hash, now),
        )
        return _entry(rows[0]) if rows else None

    def search(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        if self._memory_index:
            return self._search_memory(namespace, vector, k, now)
        with self._lock:
            graph = self._graph(namespace)
            if graph is not None:
                return self._search_graph(graph, namespace, vector, k, now)
        rows = self._read(
            "WITH knn AS (SELECT rowid, distance FROM entry_vectors "
            "  WHERE embedding MATCH ? AND k = ? AND namespace = ?) "
            f"SELECT {_ENTRY_COLUMNS}, knn.distance FROM knn JOIN entries ON entries.rowid = knn.rowid "
            "WHERE entries.expires_at IS NULL OR entries.expires_at > ? ORDER BY knn.distance",
            (vectors.encode(vector), k, namespace, now),
        )
        if self.count(namespace) >= hnsw.min_entries():
            self._refresh(namespace)  # next lookups use a graph
        return [Candidate(_entry(row[:9]), 1.0 - float(row[9])) for row in rows]

    # -- HNSW graphs for large namespaces (thrift_cli/hnsw.py) ---------------------------

    def _graph_dir(self) -> Path:
        return self.path.parent / "index"

    def _refresh(self, namespace: str) -> None:
        if not self.read_only:  # a read-only cache cannot record a graph: scan exactly
            hnsw.refresh_in_background(self.path.parent, [namespace])

    def count(self, namespace: str, up_to: int = 2**63 - 1) -> int:
        """Live and expired-but-not-yet-purged entries of `namespace` with rowid <= `up_to`."""
        sql = "SELECT count(*) FROM entries WHERE namespace = ? AND rowid <= ?"
        return int(self._read(sql, (namespace, up_to))[0][0])

    def _rows_after(self, namespace: str, after: int, limit: int = -1) -> list[tuple[int, bytes]]:
        return self._read(
            "SELECT rowid, embedding FROM entries WHERE namespace = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (namespace, after, limit),
        )

    def _graph(self, namespace: str) -> hnsw.Graph | None:
        """The graph file this store names for the namespace, mapped read-only, if any."""
        if namespace not in self._graphs:
            record = self.meta(hnsw.meta_key(namespace))
            self._graphs[namespace] = hnsw.open_graph(self._graph_dir(), record)
        return self._graphs[namespace]

    def build_index(self, namespace: str, *, wait: bool = False) -> hnsw.Graph | None:
        """Bring the namespace's graph up to date with the store (`thrift index`). When
        another process is building it, wait for it if `wait`, else return None."""
        with self._lock:
            try:
                graph = hnsw.build(
                    self._graph_dir(),
                    namespace,
                    lambda: self.meta(hnsw.meta_key(namespace)),
                    self._rows_after,
                    self.count,
                    self._dim(),
                    lambda record: self._set_meta(hnsw.meta_key(namespace), record),
                    wait=wait,
                )
            except (OSError, RuntimeError, ValueError) as exc:  # a full disk, a file in the way...
                hnsw.note_failure(self._graph_dir(), namespace)
                raise StoreError(
                    f"cannot build the index of {namespace!r} in {self._graph_dir()}: {exc}"
                ) from None
            if graph is not None:
                self._graphs[namespace] = graph
                self._indexes.pop(namespace, None)
            return graph

    def namespaces(self) -> list[str]:
        return [row[0] for row in self._read("SELECT DISTINCT namespace FROM entries ORDER BY namespace")]

    def _search_graph(
        self, graph: hnsw.Graph, namespace: str, vector: np.ndarray, k: int, now: float
    ) -> list[Candidate]:
        """Graph candidates plus an exact scan of the rows added since its watermark."""
        from thrift_cli.index import VectorIndex

        recent = VectorIndex(len(vector))
        for row_id, blob in self._rows_after(namespace, graph.watermark):
            recent.add(row_id, vectors.decode(blob))
        if len(recent) >= hnsw.REFRESH_AT:
            self._refresh(namespace)
        return self._merged(graph, recent, namespace, vector, k, now)

    def _merged(
        self,
        graph: hnsw.Graph | None,
        rest: VectorIndex,
        namespace: str,
        vector: np.ndarray,
        k: int,
        now: float,
    ) -> list[Candidate]:
        """The nearest live entries among the graph's candidates and those of the exact
        index of the rows the graph lacks."""
        row_ids = graph.search(vector, k + _SLACK) if graph is not None else []
        row_ids += [row_id for row_id, _ in rest.search(vector, k + _SLACK)]
        return self._rescored(namespace, vector, row_ids, k, now)

    def _rescored(
        self, namespace: str, vector: np.ndarray, row_ids: list[int], k: int, now: float
    ) -> list[Candidate]:
        """The live entries among `row_ids`, scored with their stored float32 vectors: an
        index only proposes candidates, the store decides their similarity."""
        if not row_ids:
            return []
        marks = ",".join("?" * len(row_ids))
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS}, embedding FROM entries WHERE rowid IN ({marks}) "
            "AND namespace = ? AND (expires_at IS NULL OR expires_at > ?)",
            (*row_ids, namespace, now),
        )
        scored = [Candidate(_entry(row[:9]), float(vectors.decode(row[9]) @ vector)) for row in rows]
        scored.sort(key=lambda c: -c.similarity)
        return scored[:k]

    def _search_memory(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        """The in-memory search. Only bringing the index up to date holds the connection's
        lock: the scan of the vectors (~0.6 ms for 10,000) runs outside it, on a snapshot,
        so an application's other threads (thrift serve's requests) look up meanwhile."""
        from thrift_cli.index import top_k

        with self._lock:
            index = self._synced_index(namespace)
            ids, matrix = index.snapshot()
            graph = self._graphs.get(namespace)
            row_ids = graph.search(vector, k + _SLACK) if graph is not None else []
        row_ids += [row_id for row_id, _ in top_k(ids, matrix, vector, k + _SLACK)]
        return self._rescored(namespace, vector, row_ids, k, now)

    def _synced_index(self, namespace: str) -> VectorIndex:
        """The namespace's rows that its graph does not hold, in memory, brought up to date.

        `PRAGMA data_version` changes when another connection commits (it means nothing
        across connections: a reopened store starts over); then each namespace's index
        is brought up to date on its next search: the graph the store names is re-read
        (another process may have published a newer one, whose rows then leave this
        index), rows past the index's highest id are appended (ids only grow:
        AUTOINCREMENT), and a count that still differs means rows were deleted, so the
        namespace is reloaded. The count reads every row id of the namespace (~1 ms at
        10,000), and a server's event writes change data_version all the time, so it runs
        at most every COUNT_EVERY_S (and at once after this store's own deletes): meanwhile
        a deleted row can only waste a candidate's place, as every candidate is read back
        from the file (_rescored) and a deleted one is not found. Once the rows outside any graph reach
        `hnsw.min_entries()` (or `hnsw.REFRESH_AT` past a graph), a background
        `thrift index` folds them in: a lookup never waits for a graph to be built.
        """
        version = self._read("PRAGMA data_version")[0][0]
        if version != self._seen_version:
            self._fresh.clear()  # another connection committed: any index may be behind
            self._seen_version = version
        index = self._indexes.get(namespace)
        if index is not None and namespace in self._fresh:
            return index
        record = self.meta(hnsw.meta_key(namespace))
        graph = self._graphs.get(namespace)
        if namespace not in self._graphs or (graph.record if graph else None) != record:
            # Verified: a long-lived process can afford reading the file once (~1 s at 1M
            # entries), and a file damaged in place could crash it (a one-shot lookup
            # checks only the size; `thrift index` repairs).
            graph = self._graphs[namespace] = hnsw.open_graph(self._graph_dir(), record, verify=True)
            index = None
        if index is None:
            from thrift_cli.index import VectorIndex

            index = self._indexes[namespace] = VectorIndex(self._dim())
            index.floor = graph.watermark if graph is not None else 0
        for row_id, blob in self._rows_after(namespace, max(index.max_id, index.floor)):
            index.add(row_id, vectors.decode(blob))
        now = time.monotonic()
        if graph is None and now - self._counted.get(namespace, -COUNT_EVERY_S) >= COUNT_EVERY_S:
            self._counted[namespace] = now
            if self.count(namespace) != len(index):
                del self._indexes[namespace]
                return self._synced_index(namespace)
        if len(index) >= (hnsw.REFRESH_AT if graph is not None else hnsw.min_entries()):
            self._refresh(namespace)
        self._fresh.add(namespace)
        return index

    def _dim(self) -> int:
        rows = self._read("SELECT length(embedding) FROM entries LIMIT 1")
        return rows[0][0] // 4 if rows else 384

    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        if vector is None:
            raise ValueError("the local store searches by vector: store needs one")
        return self.store_many([(entry, vector)], replace=replace)[0]

    def store_many(
        self, items: list[tuple[CacheEntry, np.ndarray]], *, replace: bool = False
    ) -> list[CacheEntry]:
        """Store entries in one transaction; return what is stored for each."""
        with self._write() as conn:
            self._purge_expired(conn, time.time())
            stored = [self._insert(conn, entry, vector, replace) for entry, vector in items]
        self._fresh.clear()  # our own writes: re-sync the memory indexes on next search
        return stored

    def mirror(self, entry: CacheEntry, vector: np.ndarray) -> CacheEntry:
        """Keep a copy of an entry the remote holds (a `thrift ask --remote` hit), written
        as in step with it, as `thrift sync` writes a pulled row: not dirty, its hit count
        the remote's (so the next push neither sends it back nor counts its hits again).
        An entry already stored under its key is kept."""
        with self._write() as conn:
            stored = self._insert(conn, entry, vector, False)
            if stored.id == entry.id:
                conn.execute(
                    "UPDATE entries SET sync_dirty = 0, hits_synced = hit_count WHERE id = ?", (entry.id,)
                )
        self._fresh.clear()
        return stored

    def _insert(self, conn: Any, entry: CacheEntry, vector: np.ndarray, replace: bool) -> CacheEntry:
        blob = vectors.encode(vector)
        old = conn.execute(
            f"SELECT rowid, {_ENTRY_COLUMNS} FROM entries WHERE question_hash = ?", (entry.question_hash,)
        ).fetchone()
        if old is not None and not replace:
            return _entry(old[1:])
        if old is not None:
            conn.execute("DELETE FROM entry_vectors WHERE rowid = ?", (old[0],))
            conn.execute("DELETE FROM entries WHERE rowid = ?", (old[0],))
        cur = conn.execute(
            f"INSERT INTO entries ({_ENTRY_COLUMNS}, embedding, shared_question) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.namespace,
                entry.question,
                entry.question_hash,
                entry.answer,
                entry.created_at,
                entry.last_hit_at,
                entry.hit_count,
                entry.expires_at,
                blob,
                entry.shared_question,
            ),
        )
        conn.execute(
            "INSERT INTO entry_vectors (rowid, namespace, embedding) VALUES (?, ?, ?)",
            (cur.lastrowid, entry.namespace, blob),
        )
        return entry

    def delete(self, entry_id: str) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT rowid FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                return False
            self._leave_tombstones(conn, "rowid = ?", (row[0],))
            conn.execute("DELETE FROM entry_vectors WHERE rowid = ?", (row[0],))
            conn.execute("DELETE FROM entries WHERE rowid = ?", (row[0],))
        self._fresh.clear()
        self._counted.clear()
        return True

    def delete_namespace(self, namespace: str) -> int:
        """Delete every entry of `namespace` with its vectors, in one transaction; how
        many there were. The namespace's HNSW graph goes too: the store stops naming it in
        the same transaction (a graph of deleted rows only proposes candidates that are
        then dropped, but it would be mapped and searched for nothing), and its file is
        removed after (best effort: a file left behind is named by no store, and a
        rebuild removes it)."""
        with self._lock, self._write() as conn:
            self._leave_tombstones(conn, "namespace = ?", (namespace,))
            conn.execute(
                "DELETE FROM entry_vectors WHERE rowid IN (SELECT rowid FROM entries WHERE namespace = ?)",
                (namespace,),
            )
            removed = int(conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,)).rowcount)
            conn.execute("DELETE FROM meta WHERE key = ?", (hnsw.meta_key(namespace),))
            self._fresh.clear()
            self._indexes.pop(namespace, None)
            self._graphs.pop(namespace, None)
        for path in self._graph_dir().glob(f"{hnsw.digest(namespace)}.*.usearch"):
            try:
                path.unlink()  # a process that mapped it keeps its pages
            except OSError:
                pass
        return removed

    @staticmethod
    def _leave_tombstones(conn: Any, where: str, params: tuple[Any, ...]) -> None:
        """Record the entries about to be deleted (`where` over `entries`) as forgotten, in
        the deleting transaction, so the next `thrift sync` deletes them on the remote and
        so on every mirror (sql/sqlite/0003_sync.sql)."""
        conn.execute(
            "INSERT OR REPLACE INTO sync_tombstones (question_hash, id, namespace, question, deleted_at) "
            f"SELECT question_hash, id, namespace, question, ? FROM entries WHERE {where}",
            (time.time(), *params),
        )

    def touch(self, entry: CacheEntry, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE entries SET hit_count = hit_count + 1, last_hit_at = ? WHERE id = ?", (now, entry.id)
            )

    def record(self, event: Event) -> None:
        if self.read_only:
            return  # events are metrics: a read-only cache keeps none (thrift ask says so)
        with self._write() as conn:
            self._insert_event(conn, event)

    def record_hit(self, entry: CacheEntry, event: Event) -> None:
        """Count a hit and record its event in one transaction (one fsync, not two). An
        entry served by another tier (Redis) that this file does not hold counts nothing
        here; its event is still recorded."""
        if self.read_only:
            return
        with self._write() as conn:
            conn.execute(
                "UPDATE entries SET hit_count = hit_count + 1, last_hit_at = ? WHERE id = ?",
                (event.at, entry.id),
            )
            self._insert_event(conn, event)

    def record_many(self, events: Sequence[tuple[CacheEntry | None, Event]]) -> None:
        """Record many lookups in one transaction: (the entry a hit served, or None for a
        miss; its event). What `thrift serve` writes every few milliseconds."""
        if self.read_only or not events:
            return
        with self._write() as conn:
            for entry, event in events:
                if entry is not None:
                    conn.execute(
                        "UPDATE entries SET hit_count = hit_count + 1, last_hit_at = ? WHERE id = ?",
                        (event.at, entry.id),
                    )
                self._insert_event(conn, event)

    def __enter__(self) -> SQLiteStore:
        return self

    # -- the rest of the store ---------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def claim_meta(self, key: str, value: str) -> str:
        """Set `key` unless it is already set; return the value now stored."""
        current = self.meta(key)
        if current is not None:
            return current  # the usual case: no write transaction
        if self.read_only:
            return value  # nothing is stored that could disagree with it
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def entry(self, entry_id: str) -> CacheEntry | None:
        rows = self._read(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,))
        return _entry(rows[0]) if rows else None

    def entries(self, namespace: str | None = None) -> list[CacheEntry]:
        if namespace is None:
            rows = self._read(f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY rowid")
        else:
            rows = self._read(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE namespace = ? ORDER BY rowid", (namespace,)
            )
        return [_entry(r) for r in rows]

    def scan(
        self,
        now: float,
        *,
        namespace: str | None = None,
        since: float | None = None,
        with_vectors: bool = False,
        batch: int = 1000,
    ) -> Generator[tuple[CacheEntry, bytes | None], None, None]:
        """The live entries (not expired at `now`) of `namespace` (default: all) created
        at or after `since`, in the order they were stored, each with its embedding blob
        if `with_vectors`: `thrift export`. Read in one read transaction, so the entries
        are one consistent snapshot, and streamed `batch` rows at a time, so memory stays
        bounded. In WAL mode a reader blocks no writer (nor they it): writes made
        meanwhile are simply not in the snapshot. Close the iterator to end the
        transaction early."""
        where, params = ["(expires_at IS NULL OR expires_at > ?)"], [now]
        if namespace is not None:
            where.append("namespace = ?")
            params.append(namespace)  # type: ignore[arg-type]
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        columns = _ENTRY_COLUMNS + (", embedding" if with_vectors else "")
        sql = f"SELECT {columns} FROM entries WHERE {' AND '.join(where)} ORDER BY rowid"
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    cursor = self._conn.execute(sql, params)
                    while rows := cursor.fetchmany(batch):
                        for row in rows:
                            yield _entry(row[:9]), row[9] if with_vectors else None
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("COMMIT")
            except self._sqlite.Error as exc:
                damaged = "; thrift doctor checks the file" if "malformed" in str(exc) else ""
                raise StoreError(f"cannot read {self.path}: {exc}{damaged}") from None

    def events(self) -> list[Event]:
        rows = self._read(
            "SELECT namespace, tier, latency_ms, similarity, answer_bytes, call_ms, outcome, entry_id, "
            "question_hash, at, source FROM events ORDER BY id"
        )
        return [Event(*r) for r in rows]

    def last_event_id(self) -> int | None:
        return int(self._read("SELECT coalesce(max(id), 0) FROM events")[0][0])

    def calls_since(self, question_hash: str, event_id: int) -> list[Event]:
        rows = self._read(
            "SELECT namespace, tier, latency_ms, similarity, answer_bytes, call_ms, outcome, entry_id, "
            "question_hash, at, source FROM events WHERE id > ? AND question_hash = ? AND tier = 'miss' "
            "AND call_ms IS NOT NULL ORDER BY id",
            (event_id, question_hash),
        )
        return [Event(*r) for r in rows]

    @staticmethod
    def _insert_event(conn: Any, e: Event) -> None:
        cur = conn.execute(
            "INSERT INTO events (at, namespace, tier, similarity, latency_ms, answer_bytes, call_ms, "
            "outcome, entry_id, question_hash, source, question_bytes, question) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.at,
                e.namespace,
                e.tier,
                e.similarity,
                e.latency_ms,
                e.answer_bytes,
                e.call_ms,
                e.outcome,
                e.entry_id,
                e.question_hash,
                e.source,
                None if e.question is None else len(e.question.encode("utf-8", "surrogatepass")),
                e.question if e.tier == "semantic" or (e.tier == "miss" and e.entry_id is None) else None,
            ),
        )
        if e.vetoes:  # the pairs a guard refused, for `thrift stats` (sql/sqlite/0004_stats.sql)
            conn.executemany(
                "INSERT INTO vetoes (event_id, at, namespace, question, candidate, similarity, guard) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (cur.lastrowid, e.at, e.namespace, e.question or "", v.question, v.similarity, v.guard)
                    for v in e.vetoes
                ],
            )

    @staticmethod
    def _purge_expired(conn: Any, now: float) -> None:
        conn.execute(
            "DELETE FROM entry_vectors WHERE rowid IN "
            "(SELECT rowid FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?)",
            (now,),
        )
        conn.execute("DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
