"""The sync engine's errors: part of thrift's one tree (a `ThriftError` is one line, exit 1)."""

from __future__ import annotations

from thrift_cli.errors import ThriftError


class SyncError(ThriftError):
    """The remote cannot be reached, is not set up for thrift, or refused the key."""
