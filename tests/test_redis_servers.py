"""The Redis test servers do what the Redis tier's tests count on: a real server that stops
and comes back on its port, a memory cap that refuses writes, and each fault as a client
sees it (refused, silent, garbage)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import HOST, NOT_RESP, RedisServer, closed_port, garbage_server, silent_port

from thrift_cli import config

# redis-py 8 retries a connection or timeout error 10 times with backoff (~4 s in all); the
# tests look at one attempt, as the tier does.
ONCE = Retry(NoBackoff(), 0)


def fast_client(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_connect_timeout=0.05, socket_timeout=0.1, retry=ONCE)


def server_pids(port: int) -> list[int]:
    """valkey-server processes serving this port (the server retitles itself `valkey-server
    127.0.0.1:<port>`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                args = (proc / "cmdline").read_bytes().decode()
                if "valkey-server" in args and args.rstrip("\0").endswith(f"{HOST}:{port}"):
                    pids.append(int(proc.name))
        except OSError:
            pass  # gone while we looked
    return pids


def test_the_session_server_is_a_real_redis_without_persistence(redis_server):
    client = redis_server.client()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert client.set("round-trip", "v", ex=60) is True
    assert client.get("round-trip") == b"v"
    assert 0 < client.ttl("round-trip") <= 60
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    assert client.config_get("maxmemory") == {"maxmemory": "0"}
    assert redis.Redis.from_url(redis_server.url).ping() is True


_tenants: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_points_at_the_session_server_with_a_tenant_per_test(redis_url, redis_server, run):
    assert redis_url == os.environ["REDIS_URL"] == redis_server.url
    tenant = os.environ["THRIFT_TENANT"]
    assert config.tenant(tenant, "THRIFT_TENANT") == tenant  # a name thrift accepts
    assert tenant not in _tenants
    _tenants.append(tenant)


def test_a_stopped_server_refuses_and_comes_back_empty_on_its_port(own_redis):
    client = fast_client(own_redis.port)
    client.set("k", "v")
    port = own_redis.port

    own_redis.stop()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.get("k")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()

    started = time.perf_counter()
    own_redis.start()
    assert time.perf_counter() - started < 2
    assert own_redis.port == port
    assert client.get("k") is None  # the same client reconnects; no persistence, so empty
    client.set("k", "again")
    assert own_redis.client().get("k") == b"again"


def test_a_closed_port_refuses_at_once():
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()
    started = time.perf_counter()
    with pytest.raises(redis.exceptions.ConnectionError):
        fast_client(port).get("k")
    assert time.perf_counter() - started < 0.5


def test_a_silent_port_accepts_and_never_answers():
    with silent_port() as port:
        started = time.perf_counter()
        with pytest.raises(redis.exceptions.TimeoutError):
            fast_client(port).get("k")
        assert time.perf_counter() - started < 1
        # A burst of clients all connect, and none hears a thing.
        conns = [socket.create_connection((HOST, port), timeout=0.5) for _ in range(100)]
        for conn in conns:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
        readable, _, _ = select.select(conns, [], [], 0.1)
        assert readable == []  # no reply, and no hang-up either
        for conn in conns:
            conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()


def test_a_garbage_server_is_a_protocol_error_not_a_connection_error():
    with garbage_server() as port:
        with pytest.raises(redis.exceptions.InvalidResponse) as raised:
            fast_client(port).get("k")
        # A RedisError, but neither of the two that redis-py retries.
        assert isinstance(raised.value, redis.exceptions.RedisError)
        assert not isinstance(raised.value, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)
        with socket.create_connection((HOST, port), timeout=1) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert conn.recv(100) == NOT_RESP


def test_a_memory_capped_server_refuses_writes_with_oom():
    # An empty Valkey 9 already uses ~1.05 MB: at 2mb a small write fits, a 2 MB one does not.
    with RedisServer(maxmemory="2mb") as server:
        client = server.client()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.set("small", "v") is True
        with pytest.raises(redis.exceptions.ResponseError) as raised:
            client.set("large", b"x" * 2_000_000)
        # redis-py says "OOM" with the class and strips it from the message.
        assert isinstance(raised.value, redis.exceptions.OutOfMemoryError)
        assert str(raised.value) == "command not allowed when used memory > 'maxmemory'."
        assert client.get("small") == b"v"


def test_at_1mb_even_a_small_write_is_refused():
    with RedisServer(maxmemory="1mb") as server, pytest.raises(redis.exceptions.OutOfMemoryError):
        server.client().set("small", "v")


def test_close_leaves_no_server_process_and_no_directory():
    server = RedisServer().start()
    try:
        assert len(server_pids(server.port)) == 1
    finally:
        server.close()
    assert server_pids(server.port) == []
    assert not server.data_dir.exists()


def test_a_killed_server_refuses_like_a_stopped_one(own_redis):
    client = fast_client(own_redis.port)
    client.set("k", "v")
    own_redis.kill()
    assert server_pids(own_redis.port) == []
    with pytest.raises(redis.exceptions.ConnectionError):
        client.get("k")
    own_redis.start()
    assert client.get("k") is None


def test_a_server_dies_with_the_process_that_started_it(tmp_path):
    """Even when that process is killed and runs no teardown (SIGKILL, or `timeout`'s SIGTERM)."""
    code = (
        "import sys, time; from pathlib import Path; from redis_servers import RedisServer; "
        "print(RedisServer(data_dir=Path(sys.argv[1])).start().port, flush=True); time.sleep(60)"
    )
    tests = Path(__file__).parent
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=tests, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout
        port = int(proc.stdout.readline())
        assert len(server_pids(port)) == 1
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 2
    while server_pids(port) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server_pids(port) == []
