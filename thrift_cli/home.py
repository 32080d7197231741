"""Where thrift keeps its files: one function decides, `THRIFT_HOME` overrides."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from thrift_cli import config
from thrift_cli.errors import StoreError

DB_NAME = "cache.db"


def thrift_home() -> Path:
    """`$THRIFT_HOME`, else the platform's user data directory (~/.local/share/thrift)."""
    override = config.setting(config.HOME)
    home = Path(override).expanduser() if override else default_home()
    blocker = not_a_directory(home)
    if blocker is not None:
        what = f"{config.HOME}={override}" if override else f"thrift's data directory {home}"
        if blocker == home:
            raise StoreError(f"{what} is not a directory")
        raise StoreError(f"{what} cannot be created: {blocker} is not a directory")
    return home


def default_home() -> Path:
    """Where the cache lives when `THRIFT_HOME` is not set, on this platform."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("thrift", appauthor=False))


def not_a_directory(path: Path) -> Path | None:
    """The file that stands where `path`, or the nearest of its parents that exists,
    should be a directory; None when there is none (or it cannot be told: the error
    then comes, worded by the OS, when the cache file is opened)."""
    for candidate in (path, *path.parents):
        try:
            mode = os.stat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        return None if stat.S_ISDIR(mode) else candidate
    return None


def db_path(home: Path | str | None = None) -> Path:
    return Path(home).expanduser() / DB_NAME if home is not None else thrift_home() / DB_NAME


def write_atomically(directory: Path, write: Callable[[Path], object], name: Callable[[Path], str]) -> Path:
    """Create a file in `directory` that readers see whole or not at all: `write(tmp)`
    fills a temporary file, which is fsynced and renamed to `name(tmp)`. If anything fails
    the temporary file is removed; if the process is killed, `sweep_temporary` removes it.
    """
    import tempfile

    fd, tmp_name = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        path = directory / name(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def sweep_temporary(directory: Path, older_than: float = 600.0) -> None:
    """Remove what builds killed mid-write left behind (a live build's file is younger)."""
    for tmp in directory.glob("*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than:
                tmp.unlink()
        except OSError:
            pass


def file_checksum(path: Path) -> str:
    """blake2b of a file's bytes (16-byte digest, hex): what thrift records of files it
    writes and later trusts (the ONNX model, HNSW graphs)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
