"""`thrift serve` with a remote configured: ThriftLM's "centralized cache for your apps".

When `database_url` (or `supabase_url` + `supabase_key`) is set, tenant keys are the
remote's keys (`thrift remote key create`, or `POST /keys` over Postgres with an admin
role) and each tenant here is the remote's tenant of that name:

- a key is checked by opening the remote as that key (thrift_sync's Remote: row-level
  security says whose it is, and refuses an unknown or revoked key); the answer is kept
  for auth.KNOWN_FOR_S;
- the tenant's tiers are the remote's: its file under `tenants/` is a mirror of its
  remote rows (pulled in the background when the tenant is first used), then the
  remote's HNSW tier for what the mirror lacks (RemoteTier, as that key), Redis before
  both when set;
- what `/store` and `/forget` change locally is pushed to the remote at once, in the
  background (thrift_sync.sync, the same engine as `thrift sync`), one push at a time per
  tenant, again while changes came in during the last one.

The tenants' keys are held in memory only, as long as the server runs.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from thrift_cli.home import DB_NAME


class Remote:
    """The remote at `url` (with `rest_key`: a Supabase project, over REST)."""

    def __init__(self, url: str, rest_key: str | None) -> None:
        self.url, self.rest_key = url, rest_key
        self._lock = threading.Lock()
        self._syncs: dict[str, _Syncer] = {}

    def tenant_of(self, key: str) -> str | None:
        """The tenant of `key` on the remote; None for a key it refuses."""
        from thrift_cli.remote_db import RemoteError
        from thrift_sync.engine import open_remote
        from thrift_sync.errors import SyncError

        try:
            remote = open_remote(self.url, key, self.rest_key)
        except RemoteError:
            return None
        except SyncError as exc:
            if "API key" in str(exc) or "revoked" in str(exc):
                return None
            raise
        try:
            return str(remote.tenant)
        finally:
            remote.close()

    def create_key(self, email: str | None, tenant: str | None) -> tuple[str, str]:
        from thrift_cli import remote_db
        from thrift_cli.errors import UsageError

        if self.rest_key is not None:
            raise UsageError(
                "over Supabase's REST API keys cannot be made here: run thrift remote key create "
                "where database_url is set"
            )
        with remote_db.connect(self.url) as conn:
            key = remote_db.create_key(conn, email, tenant)
        return key, tenant or remote_db.tenant_of_key(key)

    def revoke_key(self, key: str) -> bool:
        from thrift_cli import remote_db
        from thrift_cli.errors import UsageError

        if self.rest_key is not None:
            raise UsageError(
                "over Supabase's REST API keys cannot be revoked here: run thrift remote key revoke "
                "where database_url is set"
            )
        with remote_db.connect(self.url) as conn:
            return remote_db.revoke_key(conn, key)

    def tier(self, key: str, timeout: float) -> Any:
        from thrift_cli.tiers.remote import RemoteTier

        return RemoteTier(self.url, key, timeout=timeout, rest_key=self.rest_key)

    def syncer(self, home: Path, tenant: str, key: str) -> _Syncer:
        with self._lock:
            syncer = self._syncs.get(tenant)
            if syncer is None:
                syncer = self._syncs[tenant] = _Syncer(self, home / DB_NAME, key)
            return syncer

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every sync started so far has ended (tests, shutdown)."""
        for syncer in list(self._syncs.values()):
            syncer.wait(timeout)


class _Syncer:
    """One tenant's background syncs: a pull when first used, a push after each change."""

    def __init__(self, remote: Remote, db_file: Path, key: str) -> None:
        self._remote, self._db_file, self._key = remote, db_file, key
        self._changed = threading.Condition()
        self._wanted: tuple[bool, bool] | None = None  # (push, pull) of the next run
        self._running = False
        self.last_error: str | None = None
        self.runs = 0

    def start(self, *, pull: bool = False) -> None:
        with self._changed:
            push, pulled = self._wanted or (True, False)
            self._wanted = (push, pulled or pull)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="thrift-sync", daemon=True).start()

    def _run(self) -> None:
        from thrift_sync.engine import sync

        while True:
            with self._changed:
                if self._wanted is None:
                    self._running = False
                    self._changed.notify_all()
                    return
                push, pull = self._wanted
                self._wanted = None
            try:
                sync(
                    self._db_file,
                    self._remote.url,
                    self._key,
                    push=push,
                    pull=pull,
                    rest_key=self._remote.rest_key,
                )
                self.last_error = None
            except Exception as exc:  # the next change tries again; `thrift sync` always can
                self.last_error = str(exc)
                print(f"thrift serve: warning: sync of {self._db_file.parent.name}: {exc}", file=sys.stderr)
            self.runs += 1

    def wait(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self._running, timeout)
