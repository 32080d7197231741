"""The remote side of a sync: cache_entries in Postgres + pgvector (sql/postgres/).

Every call runs as the tenant of the API key (row-level security, `thrift.api_key`).
A push batch is one transaction: COPY (binary) into a temporary table, then one
`INSERT ... SELECT ... ON CONFLICT` that applies the conflict rules in the server. A pull
page is one query over the change cursor (see `pull_page`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from thrift_sync.errors import SyncError
from thrift_sync.mirror import LocalRow, RemoteRow, Tombstone

CONNECT_TIMEOUT_S = 10

# Whether the incoming write (EXCLUDED) beats the row there (e): a newer write than the
# live row (ties by id, as mirror.newer), or a write newer than the row's tombstone.
_WINS = """(CASE WHEN e.deleted_at IS NULL
        THEN (EXCLUDED.created_at, EXCLUDED.id::text) > (e.created_at, e.id::text)
        ELSE EXCLUDED.created_at > e.deleted_at END)"""

_UPSERT = f"""
INSERT INTO cache_entries AS e (id, api_key, query, response, embedding, created_at, last_hit_at,
                                hit_count, namespace, question_hash, expires_at)
SELECT CASE WHEN p.id ~* '^[0-9a-f]{{8}}-([0-9a-f]{{4}}-){{3}}[0-9a-f]{{12}}$' THEN p.id::uuid
            ELSE gen_random_uuid() END,
       %(tenant)s, p.query, p.response, p.embedding, p.created_at, p.last_hit_at, p.hit_delta,
       p.namespace, p.question_hash, p.expires_at
FROM sync_push p ORDER BY p.question_hash  -- one lock order: concurrent pushes cannot deadlock
ON CONFLICT (api_key, question_hash) DO UPDATE SET
    hit_count   = e.hit_count + EXCLUDED.hit_count,  -- the hits counted there since its last push
    last_hit_at = greatest(e.last_hit_at, EXCLUDED.last_hit_at),
    id          = CASE WHEN {_WINS} THEN EXCLUDED.id ELSE e.id END,
    query       = CASE WHEN {_WINS} THEN EXCLUDED.query ELSE e.query END,
    response    = CASE WHEN {_WINS} THEN EXCLUDED.response ELSE e.response END,
    embedding   = CASE WHEN {_WINS} THEN EXCLUDED.embedding ELSE e.embedding END,
    expires_at  = CASE WHEN {_WINS} THEN EXCLUDED.expires_at ELSE e.expires_at END,
    deleted_at  = CASE WHEN {_WINS} THEN NULL ELSE e.deleted_at END,
    created_at  = CASE WHEN {_WINS} THEN EXCLUDED.created_at ELSE e.created_at END
"""

# A forget: the row becomes a tombstone (answer and vector dropped, the row kept so every
# mirror deletes it), unless it holds a write newer than the delete. A question never
# pushed gets a tombstone row too: a mirror that pushes an older answer later loses to it.
_FORGET = """
INSERT INTO cache_entries AS e (id, api_key, query, response, embedding, created_at, namespace,
                                question_hash, deleted_at)
SELECT CASE WHEN g.id ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN g.id::uuid
            ELSE gen_random_uuid() END,
       %(tenant)s, g.query, '', NULL, g.deleted_at, g.namespace, g.question_hash, g.deleted_at
FROM sync_forget g ORDER BY g.question_hash
ON CONFLICT (api_key, question_hash) DO UPDATE SET
    deleted_at = EXCLUDED.deleted_at, response = '', embedding = NULL
WHERE (e.deleted_at IS NULL AND e.created_at <= EXCLUDED.deleted_at)
   OR (e.deleted_at IS NOT NULL AND e.deleted_at < EXCLUDED.deleted_at)
"""

# The change window of a pull: see Remote.pull_page.
_WINDOW = """
WHERE api_key = %(tenant)s
  AND changed_xid < pg_snapshot_xmax(%(target)s::pg_snapshot)
  AND pg_visible_in_snapshot(changed_xid, %(target)s::pg_snapshot)
  AND (%(cursor)s::pg_snapshot IS NULL
       OR (changed_xid >= pg_snapshot_xmin(%(cursor)s::pg_snapshot)
           AND NOT pg_visible_in_snapshot(changed_xid, %(cursor)s::pg_snapshot)))
"""

_PULL = f"""
SELECT id::text, query, response, embedding, created_at, last_hit_at, hit_count, namespace,
       question_hash, expires_at, deleted_at, changed_xid::text
FROM cache_entries {_WINDOW}
  AND (changed_xid, id) > (%(after_xid)s::xid8, %(after_id)s::uuid)
ORDER BY changed_xid, id
LIMIT %(limit)s
"""

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
    """One connection to the remote, as the tenant of `api_key`."""

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
            if self.conn.execute("SELECT to_regclass('sync_pushes')").fetchone() == (None,):
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
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO sync_pushes (api_key, batch_id) VALUES (%s, %s)", (self.tenant, batch_id)
            )
            if rows:
                cur.execute(
                    "CREATE TEMP TABLE sync_push (id text, query text, response text, embedding vector(384), "
                    "created_at timestamptz, last_hit_at timestamptz, hit_delta int4, namespace text, "
                    "question_hash text, expires_at timestamptz) ON COMMIT DROP"
                )
                with cur.copy(
                    "COPY sync_push (id, query, response, embedding, created_at, last_hit_at, hit_delta, "
                    "namespace, question_hash, expires_at) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        [
                            "text",
                            "text",
                            "text",
                            "vector",
                            "timestamptz",
                            "timestamptz",
                            "int4",
                            "text",
                            "text",
                            "timestamptz",
                        ]
                    )
                    import numpy as np

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
                cur.execute(_UPSERT, {"tenant": self.tenant})
            if tombs:
                cur.execute(
                    "CREATE TEMP TABLE sync_forget (id text, query text, namespace text, question_hash text, "
                    "deleted_at timestamptz) ON COMMIT DROP"
                )
                with cur.copy(
                    "COPY sync_forget (id, query, namespace, question_hash, deleted_at) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "text", "text", "text", "timestamptz"])
                    for t in tombs:
                        copy.write_row((t.id, t.question, t.namespace, t.question_hash, _ts(t.deleted_at)))
                cur.execute(_FORGET, {"tenant": self.tenant})
            xid = cur.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert xid is not None
            before_commit(str(xid[0]))

    def running(self, xid: str) -> bool:
        """Whether the transaction `xid` is still open: a killed sync's COMMIT may still be on
        its way. An id the server does not know (too old, or handed out again after a crash)
        is not running: a crash ends every transaction."""
        import psycopg

        try:
            row = self.conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
        except psycopg.errors.DatabaseError:
            return False
        return row is not None and row[0] == "in progress"

    def pushed(self, batch_id: str) -> bool:
        """Whether the batch `batch_id` committed (its row in the push ledger)."""
        row = self.conn.execute("SELECT 1 FROM sync_pushes WHERE batch_id = %s", (batch_id,)).fetchone()
        return row is not None

    def forget_batch(self, batch_id: str) -> None:
        """The ledger row of a batch the mirror has finished: no longer needed."""
        self.conn.execute("DELETE FROM sync_pushes WHERE batch_id = %s", (batch_id,))

    # -- pull ----------------------------------------------------------------------------

    def snapshot(self) -> str:
        row = self.conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        return str(row[0])

    def pull_page(
        self, cursor: str | None, target: str, after: list[str] | None, limit: int
    ) -> list[RemoteRow]:
        """The tenant's rows changed since the snapshot `cursor` (None: all), committed as
        of the snapshot `target`, after the row `after` in (changed_xid, id) order.

        A row is in the window when its transaction is visible in `target` but was not in
        `cursor`: a transaction that was still running when the cursor's snapshot was taken
        is in that snapshot's in-progress list, so it is pulled once it commits, however
        younger transactions committed before it. One committed after `target` is left to
        the next pull (it is not visible in `target`, so not in the new cursor either)."""
        after_xid, after_id = after or _NO_ROW
        params = {
            "tenant": self.tenant,
            "target": target,
            "cursor": cursor,
            "after_xid": after_xid,
            "after_id": after_id,
            "limit": limit,
        }
        with self.conn.cursor(binary=True) as cur:
            cur.execute(_PULL, params)
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
        """How many rows a pull would read now (for --dry-run)."""
        params = {"tenant": self.tenant, "target": self.snapshot(), "cursor": cursor}
        row = self.conn.execute(f"SELECT count(*) FROM cache_entries {_WINDOW}", params).fetchone()
        return int(row[0]) if row else 0


def new_id() -> str:
    return str(uuid.uuid4())
