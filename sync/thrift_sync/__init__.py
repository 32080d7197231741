"""thrift_sync: the local mirror (SQLite) <-> the team's remote (Postgres + pgvector).

Shells -> thrift_sync -> core: it imports thrift_cli, which never imports it.
"""

from thrift_sync.engine import SyncResult, sync
from thrift_sync.errors import SyncError

__all__ = ["SyncError", "SyncResult", "sync"]
