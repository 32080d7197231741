"""Opening the local SQLite file: the right sqlite3 module, sqlite-vec, WAL, migrations."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from thrift_cli import config
from thrift_cli.errors import StoreError
from thrift_cli.home import not_a_directory

BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_TABLE = "_migrations"


def sqlite_module() -> ModuleType:
    """The stdlib `sqlite3`, or `pysqlite3` where the stdlib one cannot load extensions.

    Some Python builds (pyenv's default, macOS system Python) compile sqlite3 without
    `enable_load_extension`, and sqlite-vec is an extension. `THRIFT_SQLITE=pysqlite3`
    forces the fallback (the tests use it to cover both paths).
    """
    import sqlite3

    forced = config.sqlite_module_name()
    if forced != "pysqlite3" and hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import pysqlite3.dbapi2 as pysqlite3  # type: ignore[import-not-found]
    except ImportError:
        raise StoreError("this Python's sqlite3 cannot load extensions; install pysqlite3-binary") from None
    return pysqlite3


def vec_extension_path() -> str:
    """Path of sqlite-vec's loadable library, found without importing the stdlib sqlite3."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("sqlite-vec is not installed (pip install sqlite-vec)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "vec0")


def sql_dir() -> Path:
    """`sql/sqlite/` of the source tree, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sql" / "sqlite", here.parent / "sql" / "sqlite"):
        if candidate.is_dir():
            return candidate
    raise StoreError("thrift's schema files are missing; reinstall thrift-cli")


def connect(path: Path) -> Any:
    """Open (creating if needed) the cache file at `path`, migrated to the current schema."""
    sqlite = sqlite_module()
    if path.exists() and not path.is_file():
        raise StoreError(f"cache file {path} is not a regular file; {move_aside(path)}")
    new = not path.exists()
    try:
        # Cached answers can be private: the home and the file are the owner's alone.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if new:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {_why_not_created(path, exc)}") from None
    try:
        conn = sqlite.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite.Error as exc:
        raise StoreError(f"cannot open cache file {path}: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Reading the schema first fails cleanly on a file that is not a database,
        # before anything (WAL mode included) is written to it.
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and MIGRATIONS_TABLE not in tables:
            raise StoreError(
                "it is a SQLite database but not a thrift cache; refusing to change it "
                "(point THRIFT_HOME at another directory)"
            )
        conn.enable_load_extension(True)
        conn.load_extension(vec_extension_path())
        conn.enable_load_extension(False)
        _set_wal(conn, sqlite)
        # FULL: a committed answer survives a power cut, not only a crashed process.
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn, sqlite)
    except StoreError as exc:
        conn.close()
        raise StoreError(f"cache file {path}: {exc}") from None
    except sqlite.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise StoreError(
                f"cache file {path} is corrupt or not a thrift cache ({exc}); {move_aside(path)}"
            ) from None
        raise StoreError(f"cannot open cache file {path}: {exc}") from None
    except sqlite.Error as exc:
        conn.close()
        raise StoreError(f"cannot open cache file {path}: {exc}") from None
    return conn


def move_aside(path: Path) -> str:
    """How to get going again past a file thrift cannot use: without it, thrift starts a
    new empty cache. The -wal and -shm files go too, or SQLite would replay the old
    file's log into the new one."""
    import shlex

    q = shlex.quote
    line = f"to start a new empty cache, move it aside: mv {q(str(path))} {q(str(path) + '.bad')}"
    companions = [f"{path.name}{suffix}" for suffix in ("-wal", "-shm") if Path(f"{path}{suffix}").exists()]
    if companions:
        line += f" (and {' and '.join(companions)} beside it likewise)"
    return line


def _why_not_created(path: Path, exc: OSError) -> str:
    blocker = not_a_directory(path.parent)
    if blocker is not None:  # mkdir says "File exists" for a file where a directory goes
        return f"{blocker} is not a directory"
    return exc.strerror or str(exc)


def _set_wal(conn: Any, sqlite: ModuleType) -> None:
    # Switching to WAL needs an exclusive moment; a busy file answers SQLITE_BUSY at once
    # instead of waiting, so retry for as long as the busy timeout would have.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            mode = None
        if mode == "wal" or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in the order of their number."""
    files = sorted(sql_dir().glob("*.sql"), key=lambda p: int(p.name.split("_", 1)[0]))
    return [(p.stem, p.read_text(encoding="utf-8")) for p in files]


def migrate(conn: Any, sqlite: ModuleType) -> list[str]:
    """Apply pending migrations in one write transaction; return the names applied."""
    wanted = migrations()
    if _applied(conn) == {name for name, _ in wanted}:
        return []  # the common case: no write lock taken
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        applied = _applied(conn)
        unknown = applied - {name for name, _ in wanted}
        if unknown:
            newest = sorted(unknown)[-1]
            raise StoreError(f"written by a newer thrift (migration {newest}); upgrade thrift-cli")
        done = []
        for name, sql in wanted:
            if name in applied:
                continue
            for statement in _statements(sql, sqlite):
                conn.execute(statement)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?)", (name, time.time()))
            done.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done


def _applied(conn: Any) -> set[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if not exists:
        return set()
    return {str(r[0]) for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}


def _statements(sql: str, sqlite: ModuleType) -> list[str]:
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    leftover = [line for line in current.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise StoreError("a schema file ends with an incomplete statement")
    return statements
