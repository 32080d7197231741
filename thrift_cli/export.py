"""`thrift export`: the cache's live entries as JSONL, which `thrift import` reads back.

One JSON object per line, UTF-8, keys always in the order of `FIELDS`:

    {"id":"…","namespace":"docs","question":"What is RAG?","answer":"…",
     "created_at":1764748800.123456,"expires_at":null,"last_hit_at":null,"hit_count":0}

Times are unix seconds as the file stores them (REAL): a JSON number written as the
shortest decimal that reads back to the same double (Python's float repr), so the round
trip is exact to the bit, finer than any ISO 8601 text with microseconds would be. With
`--vectors` each line adds `embedding_model` (the cache's model, name/dim) and
`embedding`: base64 of the stored little-endian float32 bytes, exact by construction and
2,048 characters for 384 dimensions (a list of floats would take ~4,600 at float32's 9
significant digits, and need care to read back to the same float32).

Entries expired at the moment of the export are left out: they are dead, and the next
write to the cache purges them. The entries are one snapshot (one read transaction);
reading blocks no writer. Nothing here imports numpy or the model.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from thrift_cli import config
from thrift_cli.errors import StoreError, UsageError

if TYPE_CHECKING:
    from thrift_cli.models import CacheEntry
    from thrift_cli.store import SQLiteStore

FIELDS = ("id", "namespace", "question", "answer", "created_at", "expires_at", "last_hit_at", "hit_count")
VECTOR_FIELDS = ("embedding_model", "embedding")
NOTHING_TO_EXPORT_EXIT = 3  # as `thrift forget`'s "nothing to forget"
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `seq 1e9 | head -1`


@dataclass
class ExportSummary:
    entries: int = 0
    bytes: int = 0
    seconds: float = 0.0


def parse_since(value: str, now: float) -> float:
    """`--since`: a duration back from now (90, 15m, 1h, 7d, 2w) or a date or time in ISO
    8601 (2026-12-01, 2026-12-01T09:30, 2026-12-01T09:30:00+00:00; without an offset it
    is local time, as for `date` and `git log --since`). Unix seconds."""
    if re.fullmatch(r" *[0-9.]+ *(ms|[smhdw]?) *", value):
        return now - config.duration(value, "--since")
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--since must be a duration such as 1h or 7d, or a date such as 2026-12-01, got {value!r}"
        ) from None


def line(entry: CacheEntry, blob: bytes | None, model: str | None) -> bytes:
    """One entry as its JSONL line (newline included)."""
    record: dict[str, Any] = {name: getattr(entry, name) for name in FIELDS}
    if blob is not None:
        record["embedding_model"] = model
        record["embedding"] = base64.b64encode(blob).decode("ascii")
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def write_entries(
    store: SQLiteStore,
    out: IO[bytes],
    *,
    namespace: str | None = None,
    since: float | None = None,
    with_vectors: bool = False,
    now: float | None = None,
) -> ExportSummary:
    """Write the live entries of `store` to `out` as JSONL; what was written."""
    from contextlib import closing

    from thrift_cli.embed import DEFAULT_MODEL

    started = time.perf_counter()
    # Entries pulled by `thrift sync` into a cache that never embedded carry the team's
    # vectors, which are the default model's.
    model = (store.meta("embedding_model") or DEFAULT_MODEL) if with_vectors else None
    summary = ExportSummary()
    rows = store.scan(
        time.time() if now is None else now, namespace=namespace, since=since, with_vectors=with_vectors
    )
    with closing(rows):
        for entry, blob in rows:
            data = line(entry, blob, model)
            out.write(data)
            summary.entries += 1
            summary.bytes += len(data)
    out.flush()
    summary.seconds = time.perf_counter() - started
    return summary


# -- the command ------------------------------------------------------------------------


def run(file: str | None, *, namespace: str | None, since: str | None, with_vectors: bool) -> int:
    """`thrift export`, its options as typer gave them. Returns the exit code."""
    from thrift_cli.home import db_path
    from thrift_cli.store import SQLiteStore

    config.check_environment()
    if namespace is not None:
        namespace = config.namespace(namespace, "--namespace")
    now = time.time()
    cutoff = parse_since(since, now) if since is not None else None
    to_stdout = file is None or file == "-"
    target = None if to_stdout else _target(file or "")
    path = db_path()
    if target is not None and target.parent == path.parent.resolve() and target.name.startswith(path.name):
        raise UsageError(f"{file} is the cache file itself (or its -wal or -shm): name another file")
    if not path.is_file():  # creates nothing, as forget: no file, nothing to export
        return _fail(f"no cache at {path}: nothing to export", NOTHING_TO_EXPORT_EXIT)
    with SQLiteStore(path) as store:
        if namespace is not None and store.count(namespace) == 0:
            names = store.namespaces()
            known = f" (it has {', '.join(repr(n) for n in names[:5])}{', ...' if len(names) > 5 else ''})"
            return _fail(
                f"nothing cached in [namespace {namespace}]: nothing to export{known if names else ''}",
                NOTHING_TO_EXPORT_EXIT,
            )
        options = {"namespace": namespace, "since": cutoff, "with_vectors": with_vectors, "now": now}
        if target is None:
            return _to_stdout(store, options)
        summary = _to_file(store, target, options)
    print(
        f"exported {summary.entries:,} {'entry' if summary.entries == 1 else 'entries'} "
        f"({summary.bytes:,} bytes) to {file} in {summary.seconds:.2f} s"
    )
    return 0


def _target(file: str) -> Path:
    if not file.strip():
        raise UsageError("FILE must not be empty: name the file to write, or - for stdout")
    path = Path(os.path.realpath(file))  # through a symlink: replace the file, keep the link
    if path.is_dir():
        raise UsageError(f"{file} is a directory: name the file to write")
    return path


def _to_stdout(store: SQLiteStore, options: dict[str, Any]) -> int:
    out = sys.stdout.buffer if sys.stdout is not None else None
    if out is None:
        return _fail("cannot write to stdout: Bad file descriptor", 1)
    try:
        write_entries(store, out, **options)
    except BrokenPipeError:
        # The reader left (`| head -1`): not an error worth a line; the exit code says it
        # as it does for any program killed by SIGPIPE, and nothing is flushed at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return BROKEN_PIPE_EXIT
    except OSError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return _fail(f"cannot write to stdout: {exc.strerror or exc}", 1)
    return 0


def _to_file(store: SQLiteStore, target: Path, options: dict[str, Any]) -> ExportSummary:
    """Write the export to `target` whole or not at all: a temporary file beside it,
    fsynced, renamed over it (an export killed or failed midway leaves the old file, and a
    `.NAME.*.tmp` that the next export of NAME removes). A device or a FIFO (/dev/null,
    a named pipe) is written in place: it cannot be renamed over."""
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        try:
            with open(target, "wb") as out:
                return write_entries(store, out, **options)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    _sweep(target)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:  # mode 0600, as the cache file: answers can be private
            summary = write_entries(store, out, **options)
            os.fsync(out.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return summary


def _sweep(target: Path) -> None:
    """Remove what an export of the same file killed more than a minute ago left behind."""
    import glob

    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse to fsync a directory; the rename is done
    finally:
        os.close(fd)


def _fail(message: str, code: int) -> int:
    print(f"thrift: {message}", file=sys.stderr)
    return code
