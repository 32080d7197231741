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


def read_only(path: Path) -> bool:
    """Whether the cache file at `path` exists and this process can read it but neither
    write it nor create its `-wal` and `-shm` beside it (a chmod'ed file or directory, a
    read-only mount). Such a file is opened read-only: lookups work, nothing is written."""
    if not path.is_file():
        return False  # missing: `connect` creates it, or says why it cannot
    return not (_writable(path) and _writable(path.parent))


def _writable(path: Path) -> bool:
    # The effective ids decide what open(2) allows (setuid wrappers, tests run as root
    # without CAP_DAC_OVERRIDE).
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _read_only_uri(path: Path) -> str:
    """The URI that opens `path` read-only.

    A WAL database needs its `-shm` (and reads its `-wal`). `mode=ro` reads through those
    a writer left, but where there are none it must create them: in a read-only directory
    it cannot, and in a writable one it leaves a read-only `-shm` behind that later
    breaks writing to the file. `immutable=1` (no locks, no shm, the WAL ignored) needs
    neither, and thrift uses it only when it cannot miss anything: there is no `-wal`, so
    the file holds every committed answer, and nothing can write the file while we read
    it, because the file or its directory grants write permission to nobody (or sits on
    a read-only mount): a WAL-mode write must create a `-wal` there first, and a chmod
    has to come before any write.
    """
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    if not Path(f"{path}-wal").exists() and (_nobody_writes(path) or _nobody_writes(path.parent)):
        uri += "&immutable=1"
    return uri


def _nobody_writes(path: Path) -> bool:
    read_only_mount = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    return read_only_mount or path.stat().st_mode & 0o222 == 0


def connect(path: Path, *, read_only: bool = False) -> Any:
    """Open (creating if needed) the cache file at `path`, migrated to the current schema.
    `read_only` (see `read_only()`): open it without writing anything, schema included."""
    sqlite = sqlite_module()
    if path.exists() and not path.is_file():
        raise StoreError(f"cache file {path} is not a regular file; {move_aside(path)}")
    new = not path.exists()
    try:
        if not read_only:
            # Cached answers can be private: the home and the file are the owner's alone.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if new:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {_why_not_created(path, exc)}") from None
    try:
        conn = sqlite.connect(
            _read_only_uri(path) if read_only else str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
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
        if read_only:
            check_migrated(conn)
        else:
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
                f"cache file {path} is corrupt or not a thrift cache ({exc}); {move_aside(path)}; "
                "thrift doctor checks the rest"
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
        _refuse_newer(applied, wanted)
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


def check_migrated(conn: Any) -> None:
    """For a file opened read-only: refuse one whose schema is not this thrift's, since
    it cannot be migrated (and guessing at an old schema would misread it)."""
    wanted = migrations()
    applied = _applied(conn)
    _refuse_newer(applied, wanted)
    pending = [name for name, _ in wanted if name not in applied]
    if pending:
        raise StoreError(
            f"is read-only but needs upgrading to this thrift's schema ({', '.join(pending)}); "
            "open it once with write access"
        )


def _refuse_newer(applied: set[str], wanted: list[tuple[str, str]]) -> None:
    unknown = applied - {name for name, _ in wanted}
    if unknown:
        newest = sorted(unknown)[-1]
        raise StoreError(f"written by a newer thrift (migration {newest}); upgrade thrift-cli")


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
