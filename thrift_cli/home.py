"""Where thrift keeps its files: one function decides, `THRIFT_HOME` overrides."""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "cache.db"


def thrift_home() -> Path:
    """`$THRIFT_HOME`, else the platform's user data directory (~/.local/share/thrift)."""
    override = os.environ.get("THRIFT_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("thrift", appauthor=False))


def db_path(home: Path | str | None = None) -> Path:
    return Path(home).expanduser() / DB_NAME if home is not None else thrift_home() / DB_NAME
