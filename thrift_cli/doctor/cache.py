"""Doctor's checks of the cache file (opens, schema, `PRAGMA quick_check`) and of
sqlite-vec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thrift_cli import db
from thrift_cli.doctor import FAIL, OFF, OK, PATIENCE_S, Check, Context
from thrift_cli.errors import ThriftError

_QUICK_CHECK_ERRORS = 20
_MOVE_ASIDE = "(move it aside)"  # stands for db.move_aside(path), worded once the file is closed


def check_cache_file(context: Context) -> Iterator[Check]:
    from thrift_cli.home import DB_NAME

    if context.home is None:
        context.no_cache = "no THRIFT_HOME"
        yield Check("cache file", FAIL, str(context.home_error), "point THRIFT_HOME at a directory")
        return
    path = context.home / DB_NAME
    if not path.exists():
        yield Check("cache file", OFF, f"{path}: no cache yet (the first thrift ask creates it)")
        return
    context.no_cache = "see the cache file's line"
    if not path.is_file():
        yield Check("cache file", FAIL, f"{path} is not a regular file", db.move_aside(path))
        return
    try:
        sqlite = db.sqlite_module()
    except ThriftError:
        import sqlite3 as sqlite  # reading needs no extension; the sqlite-vec line says the rest
    conn = None
    try:
        conn = _open(path, sqlite)
        detail, fix = _inspect(conn, path)
    except sqlite.Error as exc:
        if conn is not None:
            conn.close()
        why = "corrupt or not a SQLite file" if _damaged(exc) else "cannot be read"
        yield Check("cache file", FAIL, f"{path}: {why} ({exc})", db.move_aside(path))
        return
    if fix is None:
        context.conn = conn  # for the model and index checks
        yield Check("cache file", OK, f"{path}: {detail}")
        return
    conn.close()  # first: the fix names the -wal and -shm left by others, not our own
    yield Check("cache file", FAIL, f"{path}: {detail}", db.move_aside(path) if fix is _MOVE_ASIDE else fix)


def check_sqlite_vec(context: Context) -> Iterator[Check]:
    try:
        sqlite = db.sqlite_module()
    except ThriftError as exc:
        yield Check("sqlite-vec", FAIL, str(exc), "pip install pysqlite3-binary")
        return
    try:
        extension = db.vec_extension_path()
    except ThriftError as exc:
        yield Check("sqlite-vec", FAIL, str(exc), "pip install sqlite-vec")
        return
    conn = sqlite.connect(":memory:")
    try:
        conn.enable_load_extension(True)
        conn.load_extension(extension)
        version = conn.execute("SELECT vec_version()").fetchone()[0]
    except sqlite.Error as exc:
        fix = "pip install --force-reinstall sqlite-vec"
        yield Check("sqlite-vec", FAIL, f"{extension} does not load: {exc}", fix)
        return
    finally:
        conn.close()
    where = f"SQLite {sqlite.sqlite_version} ({sqlite.__name__.split('.')[0]})"
    yield Check("sqlite-vec", OK, f"{version} loads into {where}")


def _open(path: Path, sqlite: Any) -> Any:
    """`path` opened for reading only. A writable file is opened as a lookup opens it: a
    WAL file's `-wal` and `-shm` are then removed again on close, where a `mode=ro`
    connection would leave them behind. A read-only one is opened as thrift opens it."""
    read_only = db.read_only(path)
    target = db._read_only_uri(path) if read_only else str(path)
    conn = sqlite.connect(target, uri=read_only, timeout=PATIENCE_S, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")  # doctor never writes, even by mistake
    return conn


def _inspect(conn: Any, path: Path) -> tuple[str, str | None]:
    """(what the file holds, the fix when something is wrong with it)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return "empty (the next thrift ask creates its schema)", None
    if db.MIGRATIONS_TABLE not in tables:
        return "a SQLite database, but not a thrift cache", "point THRIFT_HOME at another directory"
    wanted = [name for name, _ in db.migrations()]
    applied = {str(r[0]) for r in conn.execute(f"SELECT name FROM {db.MIGRATIONS_TABLE}")}
    schema = "schema " + (max(applied).split("_", 1)[0] if applied else "none")
    newer = sorted(applied - set(wanted))
    if newer:
        return f"{schema}, written by a newer thrift (migration {newer[-1]})", "pip install -U thrift-cli"
    if len(applied) < len(wanted):
        if db.read_only(path):
            return f"{schema}, read-only, older than this thrift's", "open it once with write access"
        schema += f" (the next thrift ask upgrades it to {wanted[-1].split('_', 1)[0]})"
    # One row may hold many lines, the first a heading ("*** in database main ***").
    rows = conn.execute(f"PRAGMA quick_check({_QUICK_CHECK_ERRORS})").fetchall()
    said = [line for row in rows for line in str(row[0]).splitlines()]
    problems = [line for line in said if line.strip() and not line.startswith("***")]
    if problems != ["ok"]:
        shown = "; ".join(problems[:3])
        if len(problems) > 3:
            more = " at least" if len(problems) >= _QUICK_CHECK_ERRORS else ""  # where it stops
            shown += f" (and {len(problems) - 3} more{more})"
        return f"{schema}, quick_check: {shown}", _MOVE_ASIDE
    entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0] if "entries" in tables else 0
    namespaces = conn.execute("SELECT count(DISTINCT namespace) FROM entries").fetchone()[0] if entries else 0
    held = (
        f"{entries} entr{'y' if entries == 1 else 'ies'} in {namespaces} namespace{'s' * (namespaces != 1)}"
    )
    return f"{schema}, {held}, quick_check ok", None


def _damaged(exc: BaseException) -> bool:
    return any(word in str(exc) for word in ("not a database", "malformed", "corrupt"))
