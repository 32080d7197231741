"""The local store: one SQLite file (WAL) holding entries, their vectors and events.

Exact lookups read `entries` by key. Semantic search asks sqlite-vec for the nearest
vectors within the namespace's partition. Every write is one short `BEGIN IMMEDIATE`
transaction, so many `thrift ask` processes can share the file: writers queue on the
busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli import db, vectors
from thrift_cli.errors import StoreError
from thrift_cli.models import CacheEntry, Candidate, Event
from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:  # numpy is imported on first use: an exact hit needs none of it
    import numpy as np

    from thrift_cli.index import VectorIndex

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
    name = "sqlite"

    def __init__(self, path: Path, *, memory_index: bool = False) -> None:
        """`memory_index`: search a numpy copy of each namespace's vectors, kept in step
        with the file, instead of asking sqlite-vec (for processes that search often)."""
        self.path = path
        self._sqlite = db.sqlite_module()
        self._conn = db.connect(path)
        self._lock = threading.RLock()  # one connection, shared by an application's threads
        self._memory_index = memory_index
        self._indexes: dict[str, VectorIndex] = {}
        self._seen_version: int | None = None  # PRAGMA data_version the indexes reflect

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
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
                raise StoreError(f"cannot read {self.path}: {exc}") from None

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
        rows = self._read(
            "WITH knn AS (SELECT rowid, distance FROM entry_vectors "
            "  WHERE embedding MATCH ? AND k = ? AND namespace = ?) "
            f"SELECT {_ENTRY_COLUMNS}, knn.distance FROM knn JOIN entries ON entries.rowid = knn.rowid "
            "WHERE entries.expires_at IS NULL OR entries.expires_at > ? ORDER BY knn.distance",
            (vectors.encode(vector), k, namespace, now),
        )
        return [Candidate(_entry(row[:9]), 1.0 - float(row[9])) for row in rows]

    def _search_memory(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        with self._lock:
            index = self._synced_index(namespace)
            found = index.search(vector, k)
            if not found:
                return []
            marks = ",".join("?" * len(found))
            rows = self._read(
                f"SELECT rowid, {_ENTRY_COLUMNS} FROM entries WHERE rowid IN ({marks}) "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (*[row_id for row_id, _ in found], now),
            )
        by_id = {row[0]: _entry(row[1:]) for row in rows}
        return [Candidate(by_id[row_id], score) for row_id, score in found if row_id in by_id]

    def _synced_index(self, namespace: str) -> VectorIndex:
        """The namespace's memory index, brought up to date with the file.

        `PRAGMA data_version` changes when another connection commits; then rows past the
        index's highest id are appended (ids only grow: AUTOINCREMENT), and a count that
        still differs means rows were deleted, so the namespace is reloaded.
        """
        version = self._read("PRAGMA data_version")[0][0]
        index = self._indexes.get(namespace)
        if index is not None and version == self._seen_version:
            return index
        if index is None:
            from thrift_cli.index import VectorIndex

            index = self._indexes[namespace] = VectorIndex(self._dim())
        for row_id, blob in self._read(
            "SELECT rowid, embedding FROM entries WHERE namespace = ? AND rowid > ? ORDER BY rowid",
            (namespace, index.max_id),
        ):
            index.add(row_id, vectors.decode(blob))
        count = self._read("SELECT count(*) FROM entries WHERE namespace = ?", (namespace,))[0][0]
        if count != len(index):
            del self._indexes[namespace]
            return self._synced_index(namespace)
        if self._seen_version != version:
            # Other namespaces' indexes may be stale too: drop them, they reload on use.
            self._indexes = {namespace: index}
        self._seen_version = version
        return index

    def _dim(self) -> int:
        rows = self._read("SELECT length(embedding) FROM entries LIMIT 1")
        return rows[0][0] // 4 if rows else 384

    def store(self, entry: CacheEntry, vector: np.ndarray, *, replace: bool = False) -> CacheEntry:
        return self.store_many([(entry, vector)], replace=replace)[0]

    def store_many(
        self, items: list[tuple[CacheEntry, np.ndarray]], *, replace: bool = False
    ) -> list[CacheEntry]:
        """Store entries in one transaction; return what is stored for each."""
        with self._write() as conn:
            self._purge_expired(conn, time.time())
            stored = [self._insert(conn, entry, vector, replace) for entry, vector in items]
        self._seen_version = None  # our own writes: re-sync the memory index on next search
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
            f"INSERT INTO entries ({_ENTRY_COLUMNS}, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            conn.execute("DELETE FROM entry_vectors WHERE rowid = ?", (row[0],))
            conn.execute("DELETE FROM entries WHERE rowid = ?", (row[0],))
        self._seen_version = None
        return True

    def touch(self, entry_id: str, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE entries SET hit_count = hit_count + 1, last_hit_at = ? WHERE id = ?", (now, entry_id)
            )

    def record(self, event: Event) -> None:
        with self._write() as conn:
            self._insert_event(conn, event)

    def record_hit(self, entry_id: str, event: Event) -> None:
        """Count a hit and record its event in one transaction (one fsync, not two)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE entries SET hit_count = hit_count + 1, last_hit_at = ? WHERE id = ?",
                (event.at, entry_id),
            )
            self._insert_event(conn, event)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- the rest of the store ---------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def claim_meta(self, key: str, value: str) -> str:
        """Set `key` unless it is already set; return the value now stored."""
        current = self.meta(key)
        if current is not None:
            return current  # the usual case: no write transaction
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def entries(self, namespace: str | None = None) -> list[CacheEntry]:
        if namespace is None:
            rows = self._read(f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY rowid")
        else:
            rows = self._read(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE namespace = ? ORDER BY rowid", (namespace,)
            )
        return [_entry(r) for r in rows]

    def events(self) -> list[Event]:
        rows = self._read(
            "SELECT namespace, tier, latency_ms, similarity, answer_bytes, call_ms, outcome, entry_id, "
            "question_hash, at FROM events ORDER BY id"
        )
        return [Event(*r) for r in rows]

    @staticmethod
    def _insert_event(conn: Any, e: Event) -> None:
        conn.execute(
            "INSERT INTO events (at, namespace, tier, similarity, latency_ms, answer_bytes, call_ms, "
            "outcome, entry_id, question_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )

    @staticmethod
    def _purge_expired(conn: Any, now: float) -> None:
        conn.execute(
            "DELETE FROM entry_vectors WHERE rowid IN "
            "(SELECT rowid FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?)",
            (now,),
        )
        conn.execute("DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
