"""The remote side of a sync: cache_entries in Postgres + pgvector (sql/postgres/).

Every call runs as the tenant of the API key (row-level security, `thrift.api_key`).
A push batch is one transaction: COPY (binary) into the temporary tables
`thrift_stage_push()` makes, then `thrift_apply_push()`, which applies the conflict rules
in the server. A pull page is one `thrift_pull(...)` over the change cursor. Those
functions (sql/postgres/0003_rpc.sql) are what the REST path calls too (rest.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from thrift_sync.errors import SyncError
from thrift_sync.mirror import LocalRow, Mirror, RemoteRow, Tombstone

# How long a push batch of an earlier, killed sync may still show as running on the
# remote: its backend aborts it once it sees the connection closed (at once on loopback).
PENDING_WAIT_S = 10.0

CONNECT_TIMEOUT_S = 10
# The functions this module calls (sql/postgres/0003_rpc.sql): a remote without them was
# set up by an older thrift.
NEWEST_FUNCTION = "thrift_apply_push()"

_NO_ROW = ("0", "00000000-0000-0000-0000-000000000000")


def _ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _secs(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _vector(value: Any) -> Any:
    import numpy as np

    if value is None:
        return None
    if hasattr(value, "to_numpy"):  # pgvector >= 0.3 returns a Vector
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


def where(url: str) -> str:
    """The remote as a message names it: host, port and database, never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class Remote:
    """One connection to the remote over the Postgres protocol, as the tenant of `api_key`.
    The REST path (thrift_sync.rest.RestRemote) answers the same calls."""

    # A push batch and a pull page: THRIFT_SYNC_BATCH, or the engine's default.
    max_batch: int | None = None

    def __init__(self, url: str, api_key: str | None) -> None:
        import psycopg

        from thrift_cli import remote_db

        self.where = where(url)
        if not api_key:
            raise SyncError("no API key for the remote: set THRIFT_API_KEY (thrift remote key create EMAIL)")
        self.conn = remote_db.connect(url, api_key, timeout=CONNECT_TIMEOUT_S)
        try:
            if remote_db.schema_version(self.conn) is None:
                raise SyncError(
                    f"the remote {self.where} is not set up for thrift yet: run thrift remote init"
                )
            if self.conn.execute("SELECT to_regprocedure(%s)", (NEWEST_FUNCTION,)).fetchone() == (None,):
                raise SyncError(f"the remote {self.where} has an older thrift schema: run thrift remote init")
            remote_db.check_model(self.conn)
            self.tenant: str = remote_db.tenant(self.conn)
            ident = self.conn.execute("SELECT current_database(), inet_server_port()").fetchone()
        except psycopg.Error as exc:
            self.conn.close()
            raise SyncError(f"the remote {self.where} failed: {remote_db.reason(exc)}") from None
        except BaseException:
            self.conn.close()
            raise
        # What the local cursor belongs to: a cursor of one remote means nothing on another.
        database, port = ident if ident else ("", "")
        self.identity = f"{urlsplit(url).hostname}:{port}/{database}#{self.tenant}"

    # The errors that mean the remote was lost mid-sync (the engine's one line).
    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def reason(self, exc: BaseException) -> str:
        from thrift_cli.remote_db import reason

        return reason(exc)

    def close(self) -> None:
        self.conn.close()

    # -- push ----------------------------------------------------------------------------

    def push(
        self,
        batch_id: str,
        rows: list[LocalRow],
        tombs: list[Tombstone],
        before_commit: Callable[[str], None],
    ) -> None:
        """Write one batch in one transaction, with its id in the push ledger
        (sync_pushes). `before_commit(xid)` runs once the batch is written and before it
        commits: the caller records the batch locally."""
        import numpy as np

        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO sync_pushes (api_key, batch_id) VALUES (%s, %s)", (self.tenant, batch_id)
            )
            cur.execute("SELECT thrift_stage_push()")
            if rows:
                with cur.copy(
                    "COPY sync_push (id, query, response, embedding, created_at, last_hit_at, hit_delta, "
                    "namespace, question_hash, expires_at) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        ["text", "text", "text", "vector", "timestamptz", "timestamptz", "int4"]
                        + ["text", "text", "timestamptz"]
                    )
                    for r in rows:
                        copy.write_row(
                            (
                                r.id,
                                r.question,
                                r.answer,
                                np.frombuffer(r.embedding, dtype="<f4"),
                                _ts(r.created_at),
                                _ts(r.last_hit_at),
                                r.hit_delta,
                                r.namespace,
                                r.question_hash,
                                _ts(r.expires_at),
                            )
                        )
            if tombs:
                with cur.copy(
                    "COPY sync_forget (id, query, namespace, question_hash, deleted_at) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "text", "text", "text", "timestamptz"])
                    for t in tombs:
                        copy.write_row((t.id, t.question, t.namespace, t.question_hash, _ts(t.deleted_at)))
            cur.execute("SELECT thrift_apply_push()")
            xid = cur.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert xid is not None
            before_commit(str(xid[0]))

    def settle(self, pending: dict[str, Any], mirror: Mirror) -> bool:
        """Whether the batch an interrupted sync left (`pending`) is in the remote. Its
        transaction may still be open (a killed sync's COMMIT may be on its way): wait for
        it to end, then look its id up in the push ledger."""
        deadline = time.monotonic() + PENDING_WAIT_S
        while self._running(pending["xid"]):
            if time.monotonic() > deadline:
                raise SyncError(
                    f"a push of an interrupted sync (transaction {pending['xid']}) is still open on the "
                    f"remote {self.where}; run thrift sync again in a minute"
                )
            time.sleep(0.05)
        row = self.conn.execute("SELECT thrift_pushed(%s)", (pending["batch_id"],)).fetchone()
        return row is not None and bool(row[0])

    def _running(self, xid: str) -> bool:
        """Whether the transaction `xid` is still open. An id the server does not know (too
        old, or handed out again after a crash) is not running: a crash ends every
        transaction."""
        import psycopg

        try:
            row = self.conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
        except psycopg.errors.DatabaseError:
            return False
        return row is not None and row[0] == "in progress"

    def forget_batch(self, batch_id: str) -> None:
        """The ledger row of a batch the mirror has finished: no longer needed."""
        self.conn.execute("DELETE FROM sync_pushes WHERE batch_id = %s", (batch_id,))

    # -- pull ----------------------------------------------------------------------------

    def snapshot(self) -> str:
        row = self.conn.execute("SELECT thrift_snapshot()").fetchone()
        assert row is not None
        return str(row[0])

    def pull_page(
        self, cursor: str | None, target: str, after: list[str] | None, limit: int
    ) -> list[RemoteRow]:
        """The tenant's rows changed since the snapshot `cursor` (None: all), committed as
        of the snapshot `target`, after the row `after` in (changed_xid, id) order: the
        window thrift_pull (sql/postgres/0003_rpc.sql) explains. One committed after
        `target` is left to the next pull."""
        after_xid, after_id = after or _NO_ROW
        with self.conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT * FROM thrift_pull(%s, %s, %s, %s::uuid, %s)",
                (cursor, target, after_xid, after_id, limit),
            )
            rows = cur.fetchall()
        return [
            RemoteRow(
                id=r[0],
                question=r[1],
                answer=r[2],
                embedding=_vector(r[3]),
                created_at=r[4].timestamp(),
                last_hit_at=_secs(r[5]),
                hit_count=r[6],
                namespace=r[7],
                question_hash=r[8],
                expires_at=_secs(r[9]),
                deleted_at=_secs(r[10]),
                changed_xid=r[11],
            )
            for r in rows
        ]

    def count_changes(self, cursor: str | None) -> int:
        """How many rows a pull would read now (for --dry-run and the progress bar)."""
        row = self.conn.execute("SELECT thrift_count_changes(%s)", (cursor,)).fetchone()
        return int(row[0]) if row else 0


def new_id() -> str:
    return str(uuid.uuid4())
