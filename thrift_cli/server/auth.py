"""Who is asking: API keys, hashed, and the tenant each one opens.

Two kinds of key reach `thrift serve`:

- the admin key (`--api-key`, else one made at start and printed once): the cache of
  `$THRIFT_HOME` itself, the one `thrift ask` fills, and the only key that may create keys;
- tenant keys, made by `POST /keys` with the admin key (key creation is admin-only; it is
  not rate-limited, as nobody else can reach it). Each opens its tenant's cache, a file of
  its own (`$THRIFT_HOME/tenants/<tenant>/thrift.db`), so one tenant's lookups, counts and
  deletes cannot reach another's rows: there are none in its file.

Only SHA-256 digests of keys are kept, in the `api_keys` table (sql/sqlite/0007) and in
the workers' environment; a key is found by its digest and the digests are then compared
with `hmac.compare_digest`, so no comparison time depends on how much of a key is right.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli import db
from thrift_cli.remote_db import key_hash as digest
from thrift_cli.remote_db import new_key, tenant_of_key

if TYPE_CHECKING:
    from thrift_cli.server.remote import Remote

ADMIN = None  # Principal.tenant of the admin key
# A known key is trusted this long before its row is read again (a key revoked in another
# worker process stops working within this time).
KNOWN_FOR_S = 5.0


@dataclass(frozen=True)
class Principal:
    """The holder of a key: the admin (`tenant` None) or a tenant. With a remote, `key` is
    the key itself (in memory only): the remote tier and the syncs present it."""

    tenant: str | None
    key: str | None = field(default=None, repr=False, compare=False)

    @property
    def admin(self) -> bool:
        return self.tenant is ADMIN

    @property
    def name(self) -> str:
        return "admin" if self.tenant is None else self.tenant


class Keys:
    """The key table of one `$THRIFT_HOME` and the admin key's digest."""

    def __init__(self, db_file: Path, admin_digest: bytes, remote: Remote | None = None) -> None:
        """With `remote`, tenant keys are the remote's (server/remote.py), not this table's."""
        self._db_file = db_file
        self._admin = admin_digest
        self.remote = remote
        self._lock = threading.Lock()
        self._conn: Any = None
        self._known: dict[bytes, tuple[str, float]] = {}

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = db.connect(self._db_file)
        return self._conn

    def principal(self, key: str) -> Principal | None:
        """Whose key this is, or None for no key of ours (unknown or revoked)."""
        presented = digest(key)
        if hmac.compare_digest(presented, self._admin):
            return Principal(ADMIN)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(presented)
            if known is not None and now - known[1] < KNOWN_FOR_S:
                return Principal(known[0], key) if known[0] else None
        if self.remote is not None:
            tenant = self.remote.tenant_of(key)  # a round trip: outside the lock
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[presented] = (tenant or "", now)  # a refusal is kept as long
            return Principal(tenant, key) if tenant else None
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT key_hash, tenant FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                    (presented,),
                )
                .fetchone()
            )
            if row is None or not hmac.compare_digest(bytes(row[0]), presented):
                self._known.pop(presented, None)
                return None
            self._known[presented] = (row[1], now)
            return Principal(row[1])

    def create(self, email: str | None = None, tenant: str | None = None) -> tuple[str, str]:
        """A new key and its tenant (a new one unless `tenant` names one to share: a team's
        second key). The key is returned here once; only its digest is written."""
        if self.remote is not None:
            return self.remote.create_key(email, tenant)
        key = new_key()
        tenant = tenant or tenant_of_key(key)  # as the remote and the CLI name it (tiers.tenant)
        with self._lock:
            self._connection().execute(
                "INSERT INTO api_keys (key_hash, tenant, email, created_at) VALUES (?, ?, ?, ?)",
                (digest(key), tenant, email, time.time()),
            )
        return key, tenant

    def revoke(self, key: str) -> bool:
        """Revoke `key`; True if it was a key and was not revoked yet. Other worker
        processes trust what they know for KNOWN_FOR_S more."""
        presented = digest(key)
        if self.remote is not None:
            revoked = self.remote.revoke_key(key)
            with self._lock:
                self._known.pop(presented, None)
            return revoked
        with self._lock:
            cur = self._connection().execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL",
                (time.time(), presented),
            )
            self._known.pop(presented, None)
            return bool(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
