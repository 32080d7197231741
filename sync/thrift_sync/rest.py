"""The remote side of a sync through Supabase's REST API (PostgREST), for a project reached
with SUPABASE_URL + SUPABASE_KEY only: the same calls as remote.Remote, each one
`POST /rest/v1/rpc/<function>` of the functions in sql/postgres/0003_rpc.sql.

Under PostgREST every request is its own transaction, so a push batch is one request
(`thrift_push`), idempotent by its batch id: the mirror records the batch before sending
it, and a sync that never learned the outcome (killed, timed out) sends it again with the
same id, which the push ledger turns into a no-op if the first copy landed. A pull page is
one `thrift_pull` request of at most MAX_ROWS rows (Supabase's cap per response).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from thrift_cli.remote_db import RemoteError
from thrift_cli.remote_rest import MAX_ROWS, RestClient, check_model, parse_time, parse_vector, vector_text
from thrift_sync.errors import SyncError
from thrift_sync.mirror import LocalRow, Mirror, RemoteRow, Tombstone

# A push request carries this many entries at most: ~8 KB of JSON each (the vector as
# text), so a request stays near 4 MB.
MAX_PUSH = 500
_NO_ROW = ("0", "00000000-0000-0000-0000-000000000000")


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


class RestRemote:
    """A Supabase project's REST API, as the tenant of `api_key`."""

    max_batch = MAX_PUSH

    def __init__(self, url: str, key: str, api_key: str | None) -> None:
        if not api_key:
            raise SyncError("no API key for the remote: set THRIFT_API_KEY (thrift remote key create EMAIL)")
        self.client = RestClient(url, key, api_key)
        self.where = self.client.where
        try:
            session = self.client.session()
            check_model(session)
        except RemoteError as exc:
            self.client.close()
            if "older thrift schema" in exc.reason:
                raise SyncError(
                    f"the remote {self.where} is not set up for this thrift: run thrift remote init"
                ) from None
            raise SyncError(str(exc)) from None
        self.tenant: str = session["tenant"]
        # The same remote reached over Postgres has another identity: a cursor is kept per path.
        self.identity = f"{self.client.url}/{session.get('database')}#{self.tenant}"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (RemoteError,)

    def reason(self, exc: BaseException) -> str:
        return exc.reason if isinstance(exc, RemoteError) else str(exc)

    def close(self) -> None:
        self.client.close()

    # -- push ----------------------------------------------------------------------------

    def push(
        self,
        batch_id: str,
        rows: list[LocalRow],
        tombs: list[Tombstone],
        before_commit: Callable[[str], None],
    ) -> None:
        """Send one batch as one request. The batch is recorded (`before_commit`) before it
        leaves: there is no moment between its writing and its commit to record it in."""
        before_commit("")
        self._send(batch_id, rows, tombs)

    def _send(self, batch_id: str, rows: list[LocalRow], tombs: list[Tombstone]) -> bool:
        import numpy as np

        entries = [
            {
                "id": r.id,
                "query": r.question,
                "response": r.answer,
                "embedding": vector_text(np.frombuffer(r.embedding, dtype="<f4")),
                "created_at": _iso(r.created_at),
                "last_hit_at": _iso(r.last_hit_at),
                "hit_delta": r.hit_delta,
                "namespace": r.namespace,
                "question_hash": r.question_hash,
                "expires_at": _iso(r.expires_at),
            }
            for r in rows
        ]
        forgets = [
            {
                "id": t.id,
                "query": t.question,
                "namespace": t.namespace,
                "question_hash": t.question_hash,
                "deleted_at": _iso(t.deleted_at),
            }
            for t in tombs
        ]
        answer = self.client.call(
            "thrift_push", {"p_batch_id": batch_id, "p_entries": entries, "p_forgets": forgets}
        )
        return bool(isinstance(answer, dict) and answer.get("applied"))

    def settle(self, pending: dict[str, Any], mirror: Mirror) -> bool:
        """The batch an interrupted sync left is sent again, with the same id: if its first
        copy landed (or lands later), the ledger makes the other one change nothing. Either
        way the batch is in."""
        rows, tombs = mirror.pending_rows(pending)
        self._send(pending["batch_id"], rows, tombs)
        return True

    def forget_batch(self, batch_id: str) -> None:
        """Ledger rows stay a day (thrift_push drops older ones): a copy of the batch may
        still be on its way, and the row is what makes it change nothing."""

    # -- pull ----------------------------------------------------------------------------

    def snapshot(self) -> str:
        return str(self.client.call("thrift_snapshot", {}))

    def pull_page(
        self, cursor: str | None, target: str, after: list[str] | None, limit: int
    ) -> list[RemoteRow]:
        """One page of the change window (remote.Remote.pull_page), at most MAX_ROWS rows."""
        after_xid, after_id = after or _NO_ROW
        rows = self.client.call(
            "thrift_pull",
            {
                "p_cursor": cursor,
                "p_target": target,
                "p_after_xid": after_xid,
                "p_after_id": after_id,
                "p_limit": min(limit, MAX_ROWS),
            },
        )
        if not isinstance(rows, list):
            raise RemoteError(
                f"the remote {self.where} answered thrift_pull with {type(rows).__name__}, not rows"
            )
        return [
            RemoteRow(
                id=r["id"],
                question=r["query"],
                answer=r["response"],
                embedding=parse_vector(r["embedding"]),
                created_at=parse_time(r["created_at"]) or 0.0,
                last_hit_at=parse_time(r["last_hit_at"]),
                hit_count=int(r["hit_count"]),
                namespace=r["namespace"],
                question_hash=r["question_hash"],
                expires_at=parse_time(r["expires_at"]),
                deleted_at=parse_time(r["deleted_at"]),
                changed_xid=str(r["changed_xid"]),
            )
            for r in rows
        ]

    def count_changes(self, cursor: str | None) -> int:
        return int(self.client.call("thrift_count_changes", {"p_cursor": cursor}) or 0)
