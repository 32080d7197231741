"""The local side of a sync: what to push, what a push or a pull changes, and progress.

It works on the cache file through its own connection (`db.connect`, the same migrated
schema), each step one short `BEGIN IMMEDIATE` transaction like the store's, so
`thrift ask` keeps running while a sync does. The bookkeeping is in
sql/sqlite/0003_sync.sql: `entries.sync_dirty` (a local write the remote has not seen),
`entries.hits_synced` (the part of hit_count the remote holds), `sync_tombstones`
(forgotten entries the remote has not been told of) and `sync_state` (cursor, progress).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from thrift_cli import db, vectors


@dataclass(frozen=True)
class LocalRow:
    """An entry to push: its content, and the hits counted here since the last sync."""

    rowid: int
    id: str
    namespace: str
    question: str
    question_hash: str
    answer: str
    embedding: bytes
    created_at: float
    last_hit_at: float | None
    hit_delta: int
    expires_at: float | None
    shared_question: str | None = None  # scrubbed when it was stored (sql/sqlite/0006)


@dataclass(frozen=True)
class Tombstone:
    question_hash: str
    id: str
    namespace: str
    question: str
    deleted_at: float


@dataclass(frozen=True)
class RemoteRow:
    """A row of the remote's cache_entries as a pull reads it (times in unix seconds)."""

    id: str
    question: str
    answer: str
    embedding: Any  # float32[384], None on a tombstone
    created_at: float
    last_hit_at: float | None
    hit_count: int
    namespace: str
    question_hash: str
    expires_at: float | None
    deleted_at: float | None
    changed_xid: str


@dataclass
class Applied:
    """What a pulled page changed here."""

    pulled: int = 0  # entries written (new, or a newer answer)
    merged: int = 0  # entries whose hit count alone changed
    deleted: int = 0  # entries deleted by a remote tombstone or expiry


def micros(seconds: float) -> int:
    """Times compare in whole microseconds, the remote's (timestamptz) precision, rounded
    exactly as the push converts them (`datetime.fromtimestamp`, which rounds the
    fraction alone): `round(seconds * 1e6)` rounds the product of a large float and is
    off by one for some values, which made a row pulled back look changed."""
    return (datetime.fromtimestamp(seconds, UTC) - _EPOCH) // _MICROSECOND


def newer(a_created: float, a_id: str, b_created: float, b_id: str) -> bool:
    """Whether write a is newer than write b: the later created_at, ties broken by id, so
    every machine and the remote pick the same winner (the remote's SQL does the same)."""
    return (micros(a_created), a_id) > (micros(b_created), b_id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_ROW = (
    "rowid, id, namespace, question, question_hash, answer, embedding, created_at, last_hit_at, "
    "hit_count - hits_synced, expires_at, shared_question"
)


class Mirror:
    """The local file as sync sees it. What it hands over to push carries the question as
    shared tiers get it: the one scrubbed when stored (entries.shared_question), else,
    with `scrubber`, scrubbed now; nothing private leaves the machine (privacy.py)."""

    def __init__(self, path: Path, scrubber: Any = None) -> None:
        self.path = path
        self.scrubber = scrubber
        self._conn = db.connect(path)

    def _shared(self, row: LocalRow) -> LocalRow:
        if row.shared_question is not None:
            return replace(row, question=row.shared_question)
        if self.scrubber is not None:
            return replace(row, question=self.scrubber.scrub(row.question).text)
        return row

    def _shared_tomb(self, tomb: Tombstone) -> Tombstone:
        if self.scrubber is None:
            return tomb
        return replace(tomb, question=self.scrubber.scrub(tomb.question).text)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    # -- sync_state ----------------------------------------------------------------------

    def state(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @staticmethod
    def _set_state(conn: Any, key: str, value: Any) -> None:
        if value is None:
            conn.execute("DELETE FROM sync_state WHERE key = ?", (key,))
        else:
            conn.execute("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", (key, json.dumps(value)))

    def set_state(self, **values: Any) -> None:
        with self._write() as conn:
            for key, value in values.items():
                self._set_state(conn, key, value)

    # -- push ----------------------------------------------------------------------------

    def unpushed(self, limit: int, now: float, after: int = 0) -> list[LocalRow]:
        """Up to `limit` live entries past rowid `after` with a write or hits the remote
        has not seen."""
        rows = self._conn.execute(
            f"SELECT {_ROW} FROM entries INDEXED BY entries_unsynced "
            "WHERE (sync_dirty = 1 OR hit_count <> hits_synced) AND (expires_at IS NULL OR expires_at > ?) "
            "AND rowid > ? ORDER BY rowid LIMIT ?",
            (now, after, limit),
        ).fetchall()
        return [self._shared(LocalRow(*row)) for row in rows]

    def count_unpushed(self, now: float) -> tuple[int, int]:
        """(entries, tombstones) the next push would send."""
        entries = self._conn.execute(
            "SELECT count(*) FROM entries WHERE (sync_dirty = 1 OR hit_count <> hits_synced) "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (now,),
        ).fetchone()[0]
        tombs = self._conn.execute("SELECT count(*) FROM sync_tombstones").fetchone()[0]
        return int(entries), int(tombs)

    def tombstones(self, limit: int, after: str = "") -> list[Tombstone]:
        rows = self._conn.execute(
            "SELECT question_hash, id, namespace, question, deleted_at FROM sync_tombstones "
            "WHERE question_hash > ? ORDER BY question_hash LIMIT ?",
            (after, limit),
        ).fetchall()
        return [self._shared_tomb(Tombstone(*row)) for row in rows]

    def pending_rows(self, pending: dict[str, Any]) -> tuple[list[LocalRow], list[Tombstone]]:
        """The entries and tombstones of a recorded push batch as they are now, each entry
        with the hit delta the batch carried: what sending the batch again sends. An entry
        replaced since (a new rowid) or a tombstone superseded is left out: it is pushed
        on its own."""
        deltas = dict(pending["rows"])
        rows = [
            self._shared(replace(LocalRow(*row), hit_delta=deltas[row[0]]))
            for rowid in deltas
            for row in self._conn.execute(f"SELECT {_ROW} FROM entries WHERE rowid = ?", (rowid,))
        ]
        tombs = [
            self._shared_tomb(Tombstone(*row))
            for question_hash, deleted_at in pending["tombstones"]
            for row in self._conn.execute(
                "SELECT question_hash, id, namespace, question, deleted_at FROM sync_tombstones "
                "WHERE question_hash = ? AND deleted_at = ?",
                (question_hash, deleted_at),
            )
        ]
        return rows, tombs

    def record_pending(
        self, remote: str, batch_id: str, xid: str, rows: list[LocalRow], tombs: list[Tombstone]
    ) -> None:
        """Before the remote commits a push batch: what it holds, its id in the remote's
        push ledger and the transaction carrying it, so a sync killed before it learns the
        outcome can ask the remote, then finish the batch or drop it, never counting twice."""
        pending = {
            "remote": remote,
            "batch_id": batch_id,
            "xid": xid,
            "rows": [[r.rowid, r.hit_delta] for r in rows],
            "tombstones": [[t.question_hash, t.deleted_at] for t in tombs],
        }
        self.set_state(push_pending=pending)

    def pending(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.state("push_pending")
        return found

    def finish_push(self, pending: dict[str, Any]) -> None:
        """The batch is in the remote: its rows are clean (those not replaced since: a
        replaced entry has a new rowid), its hits are synced (those counted meanwhile stay
        unsynced), its tombstones are done (unless a newer forget replaced one), and the
        pending record goes, all in one transaction."""
        with self._write() as conn:
            conn.executemany(
                "UPDATE entries SET sync_dirty = 0, hits_synced = hits_synced + ? WHERE rowid = ?",
                [(delta, rowid) for rowid, delta in pending["rows"]],
            )
            conn.executemany(
                "DELETE FROM sync_tombstones WHERE question_hash = ? AND deleted_at = ?",
                [tuple(t) for t in pending["tombstones"]],
            )
            self._set_state(conn, "push_pending", None)

    def drop_pending(self) -> None:
        self.set_state(push_pending=None)

    # -- pull ----------------------------------------------------------------------------

    def apply(self, rows: list[RemoteRow], progress: dict[str, Any] | None, now: float) -> Applied:
        """Apply one pulled page and record how far the pull got, in one transaction."""
        applied = Applied()
        with self._write() as conn:
            for row in rows:
                self._apply_one(conn, row, now, applied)
            for key, value in (progress or {}).items():
                self._set_state(conn, key, value)
        return applied

    def _apply_one(self, conn: Any, r: RemoteRow, now: float, applied: Applied) -> None:
        local = conn.execute(
            "SELECT rowid, id, answer, created_at, expires_at, hit_count, hits_synced, sync_dirty, "
            "last_hit_at FROM entries WHERE question_hash = ?",
            (r.question_hash,),
        ).fetchone()
        live = r.deleted_at is None and (r.expires_at is None or r.expires_at > now)
        if not live:
            # A tombstone or an expired entry: gone here too, unless this mirror holds a
            # newer write of the question that the remote has not seen yet.
            if local is None:
                return
            rowid, lid, _, lcreated, _, _, _, dirty, _ = local
            ended = r.deleted_at if r.deleted_at is not None else r.created_at
            if dirty and (
                micros(lcreated) > micros(ended)
                if r.deleted_at is not None
                else newer(lcreated, lid, r.created_at, r.id)
            ):
                return
            self._remove(conn, rowid)
            applied.deleted += 1
            return
        tomb = conn.execute(
            "SELECT deleted_at FROM sync_tombstones WHERE question_hash = ?", (r.question_hash,)
        ).fetchone()
        if tomb is not None and micros(tomb[0]) >= micros(r.created_at):
            return  # forgotten here after that answer was written: the delete wins (pushed next)
        if local is None:
            self._insert(conn, r, r.hit_count)
            applied.pulled += 1
            return
        rowid, lid, lanswer, lcreated, lexpires, lhits, lsynced, dirty, llast = local
        unsynced = lhits - lsynced
        last_hit = max((t for t in (llast, r.last_hit_at) if t is not None), default=None)
        same = (
            lid == r.id
            and lanswer == r.answer
            and micros(lcreated) == micros(r.created_at)
            and (None if lexpires is None else micros(lexpires))
            == (None if r.expires_at is None else micros(r.expires_at))
        )
        if same or (dirty and newer(lcreated, lid, r.created_at, r.id)):
            # The same write (or a newer local one, pushed next): merge the hit counts only.
            hits = r.hit_count + unsynced
            if hits != lhits or lsynced != r.hit_count or (same and dirty) or last_hit != llast:
                conn.execute(
                    "UPDATE entries SET hit_count = ?, hits_synced = ?, last_hit_at = ?, "
                    "sync_dirty = sync_dirty AND NOT ? WHERE rowid = ?",
                    (hits, r.hit_count, last_hit, same, rowid),
                )
                if hits != lhits:
                    applied.merged += 1
            return
        self._remove(conn, rowid)
        self._insert(conn, r, r.hit_count + unsynced, hits_synced=r.hit_count, last_hit=last_hit)
        applied.pulled += 1

    @staticmethod
    def _remove(conn: Any, rowid: int) -> None:
        conn.execute("DELETE FROM entry_vectors WHERE rowid = ?", (rowid,))
        conn.execute("DELETE FROM entries WHERE rowid = ?", (rowid,))

    @staticmethod
    def _insert(
        conn: Any, r: RemoteRow, hits: int, *, hits_synced: int | None = None, last_hit: float | None = None
    ) -> None:
        """A pulled entry, written clean (it is the remote's) with its own vector: no
        re-embedding. A new rowid, so every index sees a new row (as the store's replace)."""
        blob = vectors.encode(r.embedding)
        cur = conn.execute(
            # The remote's question is what shared tiers get already: kept as shared_question.
            "INSERT INTO entries (id, namespace, question, question_hash, answer, created_at, last_hit_at, "
            "hit_count, expires_at, embedding, sync_dirty, hits_synced, shared_question) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                r.id,
                r.namespace,
                r.question,
                r.question_hash,
                r.answer,
                r.created_at,
                last_hit if last_hit is not None else r.last_hit_at,
                hits,
                r.expires_at,
                blob,
                r.hit_count if hits_synced is None else hits_synced,
                r.question,
            ),
        )
        conn.execute(
            "INSERT INTO entry_vectors (rowid, namespace, embedding) VALUES (?, ?, ?)",
            (cur.lastrowid, r.namespace, blob),
        )


def now() -> float:
    return time.time()
