"""The Postgres test servers do what the remote tier's tests count on: a real PostgreSQL 18
with pgvector (HNSW, binary COPY), a database per test, roles that RLS applies to, a server
that stops, crashes and comes back with its data, connections ended under a client, and no
process left behind, even when the tests are killed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pg_servers import HOST, SYSTEM_USER, PostgresServer, connect
from pgvector import Vector

DIM = 384


def server_pids(server: PostgresServer) -> list[int]:
    """The processes of this server: the postmaster (`... -c cluster_name=thrift-pg-<port>`)
    and its backends and workers (`postgres: thrift-pg-<port>: checkpointer`)."""
    title = re.compile(rf"{re.escape(server.cluster_name)}(?!\d)")
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and title.search((proc / "cmdline").read_bytes().decode(errors="replace")):
                pids.append(int(proc.name))
        except OSError:
            pass  # gone while we looked
    return pids


def wait_gone(server: PostgresServer, seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := server_pids(server)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def shmid(server: PostgresServer) -> int:
    """The System V segment of a running server (postmaster.pid, 7th line: key and id)."""
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[6].split()[1])


def shm_ids() -> set[int]:
    return {int(row.split()[1]) for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]}


def unit_vectors(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def database_of(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]


def test_the_session_server_is_postgres_18_with_pgvector(pg_database):
    with connect(pg_database) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("18")
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() == (
            "0.8.6",
        )
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            "postgres",
            database_of(pg_database),
        )
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
            True,
        )
        # Built in since PostgreSQL 13; pgcrypto (Supabase has it) is not in this build.
        assert len(str(conn.execute("SELECT gen_random_uuid()").fetchone()[0])) == 36
        none = conn.execute("SELECT name FROM pg_available_extensions WHERE name = 'pgcrypto'").fetchall()
        assert none == []
        assert conn.execute("SHOW listen_addresses").fetchone() == (HOST,)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
    assert pg_database.startswith("postgresql://postgres@127.0.0.1:")


_databases: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_pg_database_is_a_fresh_database_per_test_in_DATABASE_URL(pg_database, pg_server, run):
    assert os.environ["DATABASE_URL"] == pg_database
    name = database_of(pg_database)
    with pg_server.connect() as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert name in names
    assert not set(_databases) & names  # the earlier test's database is dropped
    _databases.append(name)
    with connect(pg_database) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)


def test_an_hnsw_cosine_index_orders_rows_by_cosine_distance(pg_database):
    rows = unit_vectors(300, seed=1)
    query = rows[42] + 0.05 * unit_vectors(1, seed=2)[0]  # near row 42, not equal to it
    with connect(pg_database) as conn:
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}) NOT NULL)")
        conn.execute("CREATE INDEX items_embedding ON items USING hnsw (embedding vector_cosine_ops)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items VALUES (%s, %s)", list(enumerate(rows)))
        conn.execute("SET enable_seqscan = off")  # 300 rows: the planner would scan them
        ordered = "SELECT id, embedding <=> %s AS distance FROM items ORDER BY embedding <=> %s LIMIT 5"
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + ordered, (query, query)))
        assert "Index Scan using items_embedding" in plan
        found = conn.execute(ordered, (query, query)).fetchall()
        stored = conn.execute("SELECT embedding FROM items WHERE id = 42").fetchone()[0]

    assert found[0][0] == 42
    distances = [distance for _, distance in found]
    assert distances == sorted(distances)
    expected = 1 - rows @ query / np.linalg.norm(query)
    for id_, distance in found:
        assert distance == pytest.approx(float(expected[id_]), abs=1e-5)
    # An ndarray goes in; a Vector comes out (pgvector-python 0.5.1; 0.4.2 gave an ndarray).
    assert isinstance(stored, Vector)
    assert np.array_equal(stored.to_numpy(), rows[42])  # float32 in, the same float32 out


def test_copy_binary_loads_10k_rows_of_384_floats(pg_database):
    rows = unit_vectors(10_000, seed=3)
    with connect(pg_database) as conn:
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}) NOT NULL)")
        with (
            conn.cursor() as cur,
            cur.copy("COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int4", "vector"])
            for i, row in enumerate(rows):
                copy.write_row((i, row))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (10_000,)
        last = conn.execute("SELECT embedding FROM items WHERE id = 9999").fetchone()[0]
    assert np.array_equal(last.to_numpy(), rows[9999])


def test_two_databases_do_not_see_each_other(pg_server, pg_database):
    other = pg_server.create_database("isolation_other")
    try:
        with connect(pg_database) as conn:
            conn.execute("CREATE TABLE mine (v text)")
            conn.execute("INSERT INTO mine VALUES ('here')")
            conn.commit()
        with connect(other) as conn:
            assert conn.execute("SELECT to_regclass('mine')").fetchone() == (None,)
            conn.execute("CREATE TABLE mine (v text)")  # the same name, its own table
            assert conn.execute("SELECT count(*) FROM mine").fetchone() == (0,)
            # Both come from the template, so both have the extension.
            assert conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,3]'::vector").fetchone() == (0.0,)
        with connect(pg_database) as conn:
            assert conn.execute("SELECT v FROM mine").fetchall() == [("here",)]
    finally:
        pg_server.drop_database("isolation_other")


def test_a_database_without_vector_is_empty_and_connect_still_works(pg_server):
    dsn = pg_server.create_database("no_vector", vector=False)
    try:
        with connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT extname FROM pg_extension").fetchall() == [("plpgsql",)]
            conn.execute("CREATE EXTENSION vector")  # what a migration on a fresh Supabase does
            assert conn.execute("SELECT '[1,0]'::vector <=> '[0,1]'::vector").fetchone() == (1.0,)
    finally:
        pg_server.drop_database("no_vector")


def test_a_created_role_is_no_superuser_and_rls_applies_to_it(pg_server, pg_database):
    role_dsn = pg_server.create_role("thrift_rls_app", "s3cret", database=database_of(pg_database))
    assert role_dsn == (
        f"postgresql://thrift_rls_app:s3cret@127.0.0.1:{pg_server.port}/{database_of(pg_database)}"
    )
    with connect(pg_database) as conn:
        conn.execute("CREATE TABLE notes (owner text NOT NULL, body text)")
        conn.execute("INSERT INTO notes VALUES ('thrift_rls_app', 'mine'), ('someone_else', 'theirs')")
        conn.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE notes FORCE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own_rows ON notes USING (owner = current_user)")
        conn.execute("GRANT SELECT ON notes TO thrift_rls_app")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (2,)  # the superuser bypasses it
    with connect(role_dsn) as conn:
        assert conn.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == ("thrift_rls_app", False, False)
        assert conn.execute("SELECT body FROM notes").fetchall() == [("mine",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE nope (v int)")  # no CREATE on public since PostgreSQL 15


def test_asking_for_an_existing_role_resets_it_instead_of_failing(pg_server, pg_database):
    first = pg_server.create_role("thrift_again", database=database_of(pg_database))
    with connect(first) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("thrift_again",)
    pg_server.create_role("thrift_again", login=False)
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        connect(first)
    pg_server.create_role("thrift_again")
    connect(first).close()


def test_a_stopped_server_refuses_and_comes_back_with_its_data(own_pg):
    dsn = own_pg.create_database("kept")
    with connect(dsn) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        port, pid = own_pg.port, own_pg.pid

        own_pg.stop()
        assert server_pids(own_pg) == []
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")  # the open connection was closed by the shutdown
    with pytest.raises(psycopg.OperationalError):
        connect(dsn)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()

    own_pg.start()
    assert own_pg.port == port and own_pg.pid != pid
    with connect(dsn) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]


def test_a_killed_server_is_a_crash_and_recovers_what_was_committed(own_pg):
    dsn = own_pg.create_database("crashed")
    conn = connect(dsn)
    conn.execute("CREATE TABLE t (v int)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.execute("INSERT INTO t VALUES (2)")  # still open when the server dies
    # A backend busy computing notices no dead postmaster until it is done (minutes, here):
    # kill() must end it too, or the next start finds its shared memory still in use.
    busy_error: list[BaseException] = []
    busy = threading.Thread(target=_run_until_it_fails, args=(dsn, busy_error))
    busy.start()
    with connect(dsn, autocommit=True) as watcher:
        while not watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series%'"
            " AND pid <> pg_backend_pid()"
        ).fetchone()[0]:
            time.sleep(0.005)
    segment = shmid(own_pg)
    assert len(server_pids(own_pg)) > 3  # the postmaster, the backends, the workers

    own_pg.kill()
    assert server_pids(own_pg) == []  # kill() returns once every process is gone
    assert segment not in shm_ids()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    busy.join(timeout=5)
    assert not busy.is_alive()
    assert isinstance(busy_error[0], psycopg.OperationalError)

    own_pg.start()
    with connect(dsn) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
    with open(own_pg.log_path, encoding="utf-8", errors="replace") as log:
        assert "was not properly shut down; automatic recovery in progress" in log.read()


def _run_until_it_fails(dsn: str, errors: list[BaseException]) -> None:
    try:
        with connect(dsn) as conn:
            conn.execute("SELECT count(*) FROM generate_series(1, 10000000000)")
    except BaseException as error:
        errors.append(error)


def test_terminate_backends_ends_every_other_connection_to_the_database(pg_server, pg_database):
    victims = [connect(pg_database) for _ in range(2)]
    try:
        with connect(pg_server.create_database("bystander")) as bystander:
            assert pg_server.terminate_backends(database_of(pg_database)) == 2
            for victim in victims:
                with pytest.raises(psycopg.OperationalError):
                    victim.execute("SELECT 1")
            assert bystander.execute("SELECT 1").fetchone() == (1,)  # another database: untouched
        with connect(pg_database) as again:  # the database itself is fine
            assert again.execute("SELECT 1").fetchone() == (1,)
        assert pg_server.terminate_backends(database_of(pg_database)) == 0
    finally:
        for victim in victims:
            victim.close()
        pg_server.drop_database("bystander")


def test_close_leaves_no_process_no_shared_memory_and_no_directory():
    server = PostgresServer().start()
    try:
        segment = shmid(server)
        assert len(server_pids(server)) > 1
        # Its dynamic shared memory is in the data directory, not /dev/shm/PostgreSQL.*,
        # which a killed server would leave behind.
        with server.connect() as conn:
            assert conn.execute("SHOW dynamic_shared_memory_type").fetchone() == ("mmap",)
        assert any((server.data_dir / "pg_dynshmem").iterdir())
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            assert server.data_dir.owner() == SYSTEM_USER
    finally:
        server.close()
    assert server_pids(server) == []
    assert segment not in shm_ids()
    assert not server.data_dir.parent.exists()


def test_a_server_dies_with_the_process_that_started_it():
    """Even when that process is killed and runs no teardown (SIGKILL, or `timeout`'s SIGTERM);
    the next PostgresServer removes the directory it left."""
    code = (
        "import time; from pg_servers import PostgresServer; s = PostgresServer().start(); "
        "print(s.port, s.data_dir, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout
        port, data_dir = proc.stdout.readline().split()
        killed = PostgresServer(port=int(port), data_dir=Path(data_dir))  # only to look at it
        assert len(server_pids(killed)) > 1
        segment = shmid(killed)
    finally:
        proc.kill()
        proc.wait()
    assert wait_gone(killed) == []
    assert Path(data_dir).exists()
    assert segment in shm_ids()  # the server died without removing it
    PostgresServer().close()  # sweeps both
    assert not Path(data_dir).parent.exists()
    assert segment not in shm_ids()
