"""The remote tier: the team's Postgres (Supabase) asked after a local miss, opt-in.

With `thrift ask --remote` or `remote_lookup = true`, a question the local tiers cannot
answer is looked up in the remote's `cache_entries`: by exact key, then through the HNSW
index (`match_cache_entries`), as the caller's tenant (row-level security). The guards
apply to a remote candidate as to a local one. A remote hit carries its embedding, so the
engine writes it into the local mirror (and Redis): the next ask of it is local.

The remote is reached over the Postgres protocol (`database_url`), or, for a Supabase
project known by SUPABASE_URL + SUPABASE_KEY only, through its REST API (remote_rest.py):
the same two server functions either way (`thrift_lookup`, `match_cache_entries`).

Each call is bounded by `remote_timeout` (300 ms), connecting included: it runs on a
worker thread, and a call that has not answered in time is abandoned. Down, slow or
refusing, the tier prints one warning and misses; the local answer path is unchanged.
(The REST path's client library is imported before the clock starts: ~0.25 s, once per
process, that is no network time.) A miss's answer is not written here: `thrift sync`
pushes it (or, with push_on_store, a push started once the ask has answered).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from thrift_cli.models import CacheEntry, Candidate
from thrift_cli.tiers.base import Tier, print_warning

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 0.3
RETRY_AFTER_S = 30.0
_COLUMNS = (
    "id, namespace, query, question_hash, response, created_at, last_hit_at, hit_count, expires_at, embedding"
)


class RemoteTier(Tier):
    name = "remote"
    order = 2  # after the local tiers: the slowest, and the local mirror holds most of it

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        warn: Callable[[str], None] = print_warning,
        rest_key: str | None = None,
    ) -> None:
        """`url` is a Postgres URL, or with `rest_key` (SUPABASE_KEY) a Supabase project's."""
        self.url, self._api_key, self.timeout = url, api_key, timeout
        self._rest_key = rest_key
        self._warn = warn
        self._warned = False
        self._down_until = 0.0
        self._conn: Any = None
        self._vectors: dict[str, np.ndarray] = {}  # of the entries returned, for write-back
        self.last_error: str | None = None

    # -- Tier ---------------------------------------------------------------------------

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        if self._rest_key is not None:
            found = self._bounded(
                "look up an answer", lambda api: api.call("thrift_lookup", {"p_question_hash": question_hash})
            )
            rows = [_rest_row(r, _COLUMNS.split(", ")) for r in found or []]
        else:
            rows = (
                self._bounded(
                    "look up an answer",
                    lambda conn: conn.execute(
                        f"SELECT {_COLUMNS} FROM thrift_lookup(%s)", (question_hash,)
                    ).fetchall(),
                )
                or []
            )
        return self._entry(rows[0]) if rows else None

    def search(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        if self._rest_key is not None:
            from thrift_cli.remote_rest import vector_text

            args = {
                "query_embedding": vector_text(vector),
                "match_threshold": 0.0,
                "match_count": k,
                "p_namespace": namespace,
            }
            found = self._bounded("search", lambda api: api.call("match_cache_entries", args))
            rows = [_rest_match(r) for r in found or []]
        else:
            rows = (
                self._bounded(
                    "search",
                    lambda conn: conn.execute(
                        "SELECT m.id, m.namespace, m.query, m.question_hash, m.response, m.created_at, "
                        "NULL, 0, m.expires_at, m.embedding, m.similarity "
                        "FROM match_cache_entries(%s, 0.0, %s, %s) m",
                        (vector, k, namespace),
                    ).fetchall(),
                )
                or []
            )
        return [Candidate(self._entry(row[:10]), float(row[10])) for row in rows]

    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        return entry  # pushed by `thrift sync`, with its conflict rules

    def vector(self, entry: CacheEntry) -> np.ndarray | None:
        return self._vectors.get(entry.id)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    # -- calls bounded in time -------------------------------------------------------------

    def _bounded(self, doing: str, call: Callable[[Any], T]) -> T | None:
        """`call(connection)` on a worker thread, given `timeout` to finish, connecting
        included; None (and one warning) if it fails or does not finish in time."""
        if time.monotonic() < self._down_until:
            return None
        if self._rest_key is not None and self._conn is None:
            from thrift_cli.remote_rest import preload

            preload()  # the client library, imported before the clock starts: no network time
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                outcome["value"] = call(self._conn)
            except Exception as exc:  # psycopg's errors, a refused key: reported below
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="thrift-remote", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            self._conn = None  # left to the abandoned thread; a later call starts afresh
            self._failed(doing, f"no answer within {self.timeout * 1000:.0f} ms")
            return None
        if "error" in outcome:
            self.close()
            self._failed(doing, _reason(outcome["error"]))
            return None
        return outcome["value"]  # type: ignore[no-any-return]

    def _connect(self) -> Any:
        from thrift_cli import remote_db

        if self._rest_key is not None:
            return self._rest_client()

        conn = remote_db.connect(self.url, self._api_key, timeout=max(self.timeout, 1.0))
        # The server gives up too, so an abandoned query does not run on.
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.timeout * 1000)}ms",))
        remote_db.tenant(conn)  # an unknown or revoked key: one warning, not silence
        return conn

    def _rest_client(self) -> Any:
        from thrift_cli.remote_rest import RestClient

        api = RestClient(self.url, self._rest_key or "", self._api_key, timeout=self.timeout)
        api.session()  # an unknown or revoked key: one warning, not silence
        return api

    def _entry(self, row: tuple[Any, ...]) -> CacheEntry:
        entry = CacheEntry(
            id=str(row[0]),
            namespace=row[1],
            question=row[2],
            question_hash=row[3],
            answer=row[4],
            created_at=_seconds(row[5]),
            last_hit_at=None if row[6] is None else _seconds(row[6]),
            hit_count=int(row[7] or 0),
            expires_at=None if row[8] is None else _seconds(row[8]),
        )
        if row[9] is not None:
            import numpy as np

            embedding = row[9]
            self._vectors[entry.id] = np.asarray(
                embedding.to_numpy() if hasattr(embedding, "to_numpy") else embedding, dtype=np.float32
            )
        return entry

    def _failed(self, doing: str, reason: str) -> None:
        from thrift_cli.remote_db import shown_url

        self.last_error = reason
        self._down_until = time.monotonic() + RETRY_AFTER_S
        if not self._warned:
            self._warned = True
            self._warn(
                f"the remote at {shown_url(self.url)}: cannot {doing}: {reason}; using the local cache only"
            )


def _seconds(value: datetime | float | str) -> float:
    if isinstance(value, str):  # the REST path's JSON: ISO 8601
        return datetime.fromisoformat(value).timestamp()
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _rest_row(row: dict[str, Any], columns: list[str]) -> tuple[Any, ...]:
    """A row of PostgREST's JSON as the tuple the Postgres path reads, the vector parsed."""
    from thrift_cli.remote_rest import parse_vector

    return tuple(parse_vector(row[c]) if c == "embedding" else row[c] for c in columns)


def _rest_match(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row of match_cache_entries in PostgREST's JSON, as the Postgres path's search reads it."""
    return (
        *_rest_row(row, _COLUMNS.split(", ")[:6]),
        None,
        0,
        *_rest_row(row, ["expires_at", "embedding"]),
        row["similarity"],
    )


def _reason(exc: BaseException) -> str:
    from thrift_cli.remote_db import RemoteError, reason

    return exc.reason if isinstance(exc, RemoteError) else reason(exc)
