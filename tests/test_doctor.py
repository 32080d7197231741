"""`thrift doctor`: every check against the real thing it checks (files, the model, a
helper process, a Redis server), broken the ways they break in use."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import Ran, start_helper, thrift_client_role

from thrift_cli import __version__, remote_db

LABELS = {"ok": "ok", "off": "--", "warn": "warn", "fail": "FAIL"}
NAMES = [
    "config",
    "environment",
    "cache file",
    "sqlite-vec",
    "model",
    "onnx model",
    "index",
    "helper",
    "redis",
    "remote",
    "push on store",
    "scrub",
]


class Report:
    """`thrift doctor` run twice, as text and as --json, with what both must agree on."""

    def __init__(self, text: Ran, js: Ran) -> None:
        assert "Traceback" not in text.stderr + js.stderr, text.stderr + js.stderr
        assert text.stderr == js.stderr == ""
        self.code, self.lines = text.code, text.stdout.decode().splitlines()
        self.json = json.loads(js.stdout)
        self.checks = self.json["checks"]
        assert js.code == text.code == (0 if self.json["ok"] else 1)
        assert self.json["ok"] == all(c["ok"] for c in self.checks)
        assert len(self.lines) == len(self.checks)
        for line, check in zip(self.lines, self.checks, strict=True):
            assert set(check) == {"name", "status", "ok", "detail", "fix"}
            assert check["ok"] == (check["status"] != "fail")
            assert line.startswith(f"{LABELS[check['status']]:<6}{check['name']}")
            assert ("— fix: " in line) == (check["fix"] is not None)
        detail_at = {
            line.index(c["detail"].split(" ")[0]) for line, c in zip(self.lines, self.checks, strict=True)
        }
        assert len(detail_at) == 1  # aligned

    def status(self, name: str) -> list[str]:
        return [c["status"] for c in self.checks if c["name"] == name]

    def check(self, name: str) -> dict:
        (found,) = [c for c in self.checks if c["name"] == name]
        return found

    def line(self, name: str) -> str:
        (found,) = [line for line in self.lines if line[6:].startswith(name + " ")]
        return found


@pytest.fixture
def doctor(thrift):
    def run(env: dict | None = None) -> Report:
        return Report(thrift("doctor", env=env), thrift("doctor", "--json", env=env))

    return run


def tree(home: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and directory under `home`: mode, mtime and a hash of the bytes."""
    found = {}
    for path in [home, *sorted(home.rglob("*"))] if home.exists() else []:
        st = path.lstat()
        digest = hashlib.blake2b(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(home))] = (st.st_mode, st.st_mtime_ns if path.is_file() else 0, digest)
    return found


def test_a_healthy_cache_passes_every_check(doctor, thrift, fake_llm, isolated_env):
    assert thrift("ask", "What is semantic caching?", "--", *fake_llm.command()).code == 0
    before = tree(isolated_env)
    report = doctor()
    assert report.code == 0 and report.json["ok"] is True
    assert [c["name"] for c in report.checks] == NAMES
    for name in ("config", "environment", "cache file", "sqlite-vec", "model", "index"):
        assert report.status(name) == ["ok"], report.lines
    # Nothing to check, no failures (scrub: conftest turns it off for speed; test_scrub.py checks it on).
    for name in ("onnx model", "helper", "redis", "remote", "push on store", "scrub"):
        assert report.status(name) == ["off"], report.lines
    db = isolated_env / "cache.db"
    assert (
        report.check("cache file")["detail"] == f"{db}: schema 0007, 1 entry in 1 namespace, quick_check ok"
    )
    assert "the cache's vectors are its own (1 checked)" in report.check("model")["detail"]
    assert report.check("redis")["detail"].startswith("not configured")
    assert report.check("helper")["detail"].startswith("not running")
    assert tree(isolated_env) == before  # read, never written: no -wal, -shm or model left


def test_an_empty_home_creates_nothing(doctor, isolated_env):
    report = doctor()
    assert report.code == 0
    assert report.check("cache file") == {
        "name": "cache file",
        "status": "off",
        "ok": True,
        "detail": f"{isolated_env / 'cache.db'}: no cache yet (the first thrift ask creates it)",
        "fix": None,
    }
    assert not isolated_env.exists()


def test_a_home_that_is_a_file_fails_without_a_traceback(doctor, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    report = doctor({"THRIFT_HOME": str(blocker)})
    assert report.code == 1
    assert report.status("cache file") == ["fail"] and "is not a directory" in report.line("cache file")
    assert report.status("model") == ["ok"]  # what needs no home is still checked
    assert blocker.read_text() == "not a directory"


# -- the cache file and the model ---------------------------------------------------------


def test_a_corrupt_cache_file_fails_its_line_with_the_fix(doctor, thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    db = isolated_env / "cache.db"
    db.write_bytes(os.urandom(64 * 1024))
    before = tree(isolated_env)
    report = doctor()
    assert report.code == 1
    assert report.status("cache file") == ["fail"]
    line = report.line("cache file")
    assert f"{db}: corrupt or not a SQLite file (file is not a database)" in line
    assert line.endswith(f"— fix: to start a new empty cache, move it aside: mv {db} {db}.bad")
    assert report.status("sqlite-vec") == report.status("model") == ["ok"]  # the rest still ran
    assert report.status("helper") == report.status("redis") == ["off"]
    assert tree(isolated_env) == before
    # thrift ask's one line points here.
    ran = thrift("ask", "Q?", "--", *fake_llm.command())
    assert ran.code == 1 and "Traceback" not in ran.stderr
    (message,) = ran.stderr.strip().splitlines()
    assert "corrupt" in message and f"mv {db} {db}.bad" in message and "thrift doctor" in message


def test_a_sqlite_file_that_is_not_a_thrift_cache_fails(doctor, isolated_env):
    isolated_env.mkdir()
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute("CREATE TABLE shopping (item TEXT)")
    conn.close()
    report = doctor()
    assert report.code == 1
    assert "a SQLite database, but not a thrift cache" in report.line("cache file")
    assert report.check("cache file")["fix"] == "point THRIFT_HOME at another directory"


def test_an_older_schema_is_upgraded_and_a_newer_one_fails(doctor, thrift, fake_llm, isolated_env):
    assert thrift("ask", "What is semantic caching?", "--", *fake_llm.command()).code == 0
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute(
            "DELETE FROM _migrations "
            "WHERE name IN ('0002_event_source', '0003_sync', '0004_stats', '0005_feed', "
            "'0006_shared_question', '0007_api_keys')"
        )
    conn.close()
    report = doctor()
    assert report.code == 0
    assert "schema 0001 (the next thrift ask upgrades it to 0007)" in report.line("cache file")
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute(
            "INSERT INTO _migrations VALUES ('0002_event_source', 0), ('0003_sync', 0), ('0004_stats', 0), "
            "('0005_feed', 0), ('0006_shared_question', 0), ('0007_api_keys', 0), ('0099_from_the_future', 0)"
        )
    conn.close()
    report = doctor()
    assert report.code == 1
    assert "schema 0099, written by a newer thrift (migration 0099_from_the_future)" in report.line(
        "cache file"
    )
    assert report.check("cache file")["fix"] == "pip install -U thrift-cli"


def test_a_damaged_page_fails_quick_check(doctor, thrift, fake_llm, isolated_env):
    for i in range(40):  # enough rows that the entries table spans many pages
        assert thrift("ask", f"Question {i} " + "padding " * 200, "--", *fake_llm.command()).code == 0
    db = isolated_env / "cache.db"
    data = bytearray(db.read_bytes())
    page = 4096
    # The schema's own pages are spared (wrecking them is "not a database", not a failed
    # quick_check): sqlite_master spills past page 1 since 0003_sync.
    with sqlite3.connect(db) as conn:
        schema = {
            row[0] - 1 for row in conn.execute("SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")
        }
    conn.close()
    for start in range(3 * page, len(data) - page, 5 * page):  # wreck some pages past the schema
        if start // page in schema:
            continue
        data[start + 8 : start + 200] = b"\xff" * 192
    db.write_bytes(bytes(data))
    before = tree(isolated_env)
    report = doctor()
    assert report.code == 1 and report.status("cache file") == ["fail"], report.lines
    assert "quick_check: " in report.line("cache file")
    # Its own -wal and -shm, open as it words the fix, are not named in it, nor left behind.
    assert report.check("cache file")["fix"] == f"to start a new empty cache, move it aside: mv {db} {db}.bad"
    assert tree(isolated_env) == before
    ran = thrift("ask", "Question 1 " + "padding " * 200, "--", *fake_llm.command())
    assert ran.code == 1 and "thrift doctor" in ran.stderr


def test_vectors_from_another_model_fail_the_model_line(doctor, thrift, fake_llm, isolated_env):
    assert thrift("ask", "What is semantic caching?", "--", *fake_llm.command()).code == 0
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute("UPDATE meta SET value = 'test/hash-words/384' WHERE key = 'embedding_model'")
    conn.close()
    report = doctor()
    assert report.code == 1 and report.status("cache file") == ["ok"]
    assert "but this cache's vectors come from test/hash-words/384" in report.line("model")

    with sqlite3.connect(isolated_env / "cache.db") as conn:  # the right name, other vectors
        model = "sentence-transformers/all-MiniLM-L6-v2/384"
        conn.execute("UPDATE meta SET value = ? WHERE key = 'embedding_model'", (model,))
        conn.execute("UPDATE entries SET embedding = ?", (b"\x00\x00\x80\x3f" + b"\x00" * 4 * 383,))
    conn.close()
    report = doctor()
    assert report.code == 1
    assert "stored vectors differ from its own (cosine " in report.line("model")


# -- indexes and the ONNX model -----------------------------------------------------------


def imported(thrift, tmp_path: Path, namespace: str = "docs", n: int = 5) -> None:
    """`thrift import` of `n` entries, with graphs from 3 entries on: a graph for `namespace`."""
    records = tmp_path / "records.jsonl"
    with open(records, "w", encoding="utf-8") as f:
        for i in range(n):
            record = {
                "question": f"What is question {i} about cats?",
                "answer": f"answer {i}",
                "namespace": namespace,
            }
            f.write(json.dumps(record) + "\n")
    ran = thrift("import", str(records))
    assert ran.code == 0, ran.stderr


@pytest.fixture
def small_graphs(monkeypatch):
    monkeypatch.setenv("THRIFT_HNSW_MIN_ENTRIES", "3")


def test_a_missing_or_damaged_graph_fails_its_line(doctor, thrift, small_graphs, isolated_env, tmp_path):
    imported(thrift, tmp_path, "how to: cats")
    (graph,) = (isolated_env / "index").glob("*.usearch")
    report = doctor()
    assert report.code == 0, report.lines
    assert report.status("index") == ["ok"]
    assert report.check("index")["detail"] == "'how to: cats': 5 vectors up to row 5, checksum ok"

    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum tells
    graph.write_bytes(bytes(data))
    report = doctor()
    assert report.code == 1
    assert f"'how to: cats': graph {graph}: checksum differs from the one recorded" in report.line("index")
    assert report.check("index")["fix"] == "thrift index -n 'how to: cats'"

    graph.unlink()
    report = doctor()
    assert report.code == 1 and f"graph {graph} is missing" in report.line("index")
    assert thrift("index", "-n", "how to: cats").code == 0  # the fix it gives
    report = doctor()
    assert report.code == 0 and report.status("index") == ["ok"]


def test_a_large_namespace_without_a_graph_fails(doctor, thrift, isolated_env, tmp_path):
    imported(thrift, tmp_path)  # 5 entries: no graph at the default threshold
    report = doctor()
    assert report.code == 0
    assert (
        report.check("index")["detail"]
        == "1 namespace under 20000 entries: searched exactly, no graph needed"
    )
    report = doctor({"THRIFT_HNSW_MIN_ENTRIES": "3"})
    assert report.code == 1
    assert report.check("index") == {
        "name": "index",
        "status": "fail",
        "ok": False,
        "detail": "'docs': 5 entries and no graph (searched exactly, slowly)",
        "fix": "thrift index -n docs",
    }


def test_the_onnx_model_is_checked_against_its_recorded_checksum(doctor, thrift, isolated_env, tmp_path):
    imported(thrift, tmp_path)  # a warm process: builds the ONNX model
    (model,) = (isolated_env / "models").glob("*.onnx")
    report = doctor()
    assert report.status("onnx model") == ["ok"]
    assert report.check("onnx model")["detail"] == f"{model}: checksum ok"
    with open(model, "r+b") as f:
        f.seek(1_000_000)
        f.write(b"\x00" * 16)
    report = doctor()
    assert report.code == 1
    assert "damaged" in report.line("onnx model")
    assert report.check("onnx model")["fix"] == f"rm {model} (it is rebuilt on next use)"
    assert model.exists()  # doctor reports; it repairs nothing itself


# -- the config file and the environment --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named", "fix"),
    [
        ('colour = "blue"\n', "unknown setting 'colour'", "thrift config unset colour"),
        ('ttl = "soon"\n', "ttl must be a positive duration", "thrift config set ttl VALUE"),
        ("ttl = \n", "is not valid TOML", None),
    ],
    ids=["unknown key", "bad value", "not TOML"],
)
def test_a_bad_config_fails_its_line_and_the_rest_still_run(doctor, isolated_env, text, named, fix):
    isolated_env.mkdir()
    path = isolated_env / "config.toml"
    path.write_text("min_similarity = 0.9\n" + text)
    path.chmod(0o600)
    report = doctor()
    assert report.code == 1
    assert report.status("config") == ["fail"]
    assert report.check("config")["detail"].startswith(f"{path}: ") and named in report.line("config")
    assert report.check("config")["fix"] == (fix or f"correct {path} by hand")
    assert [c["name"] for c in report.checks] == NAMES  # every other check ran
    assert report.status("cache file") == ["off"] and report.status("model") == ["ok"]


def test_a_config_readable_by_others_is_flagged(doctor, isolated_env):
    isolated_env.mkdir()
    path = isolated_env / "config.toml"
    path.write_text("ttl = '7d'\n")
    path.chmod(0o600)
    report = doctor()
    assert report.code == 0 and report.check("config")["detail"] == f"{path}: 1 setting (ttl), mode 0600"
    path.chmod(0o644)
    report = doctor()
    assert report.code == 0 and report.status("config") == ["warn"]  # nothing secret in it yet
    assert "mode 0644, readable by other users" in report.line("config")
    assert report.check("config")["fix"] == f"chmod 600 {path}"
    path.write_text("ttl = '7d'\napi_key = 'team-secret-key'\n")
    report = doctor()
    assert report.code == 1 and report.status("config") == ["fail"]
    assert "and it holds api_key" in report.line("config") and "team-secret-key" not in report.line("config")
    assert report.check("config")["fix"] == f"chmod 600 {path}"


def test_a_bad_variable_fails_the_environment_line(doctor):
    report = doctor({"THRIFT_TTL": "soon", "THRIFT_MIN_SIMILARITY": "0.9"})
    assert report.code == 1
    assert report.check("environment") == {
        "name": "environment",
        "status": "fail",
        "ok": False,
        "detail": "THRIFT_TTL must be a positive duration such as 90, 15m, 2h or 7d, got 'soon'",
        "fix": "correct or unset THRIFT_TTL",
    }
    ok = doctor({"THRIFT_MIN_SIMILARITY": "0.9"})
    assert ok.code == 0 and "THRIFT_MIN_SIMILARITY" in ok.check("environment")["detail"]


# -- the helper -----------------------------------------------------------------------------


def test_a_running_helper_is_reported_and_a_dead_one_is_no_failure(doctor, isolated_env):
    proc = start_helper(isolated_env)
    try:
        report = doctor()
        assert report.code == 0 and report.status("helper") == ["ok"], report.lines
        assert report.check("helper")["detail"].startswith(f"pid {proc.pid}, answers a ping in ")
        proc.send_signal(signal.SIGSTOP)  # hung: it accepts, and never answers
        report = doctor()
        assert report.code == 1 and report.status("helper") == ["fail"]
        assert f"no answer to a ping in 1 s (pid {proc.pid} hangs)" in report.line("helper")
        assert report.check("helper")["fix"] == f"kill {proc.pid} and start thrift helper again"
        assert not (isolated_env / "helper.hung").exists()  # the asks' mark is not doctor's to set
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)
    socket_file = isolated_env / "helper.sock"
    assert socket_file.exists()  # left by the killed helper
    report = doctor()
    assert report.code == 0 and report.status("helper") == ["off"]
    assert "not running (a dead helper left" in report.line("helper")
    assert socket_file.exists()  # doctor removes nothing


def test_the_ping_reply_names_the_helpers_version(isolated_env):
    """What the helper line compares: the reply of the real helper."""
    import socket as sockets

    from thrift_cli.helper import PROTOCOL

    proc = start_helper(isolated_env)
    try:
        with sockets.socket(sockets.AF_UNIX) as s:
            s.connect(str(isolated_env / "helper.sock"))
            s.sendall(json.dumps({"op": "ping", "version": PROTOCOL}).encode() + b"\n")
            reply = json.loads(s.makefile().readline())
            assert reply == {"ok": True, "thrift": __version__, "version": PROTOCOL}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- Redis --------------------------------------------------------------------------------


# Generous timeouts where Redis is up: on a busy machine a round trip can pass thrift
# ask's 100 ms, which is not what these tests are about.
PATIENT = {"THRIFT_REDIS_CONNECT_TIMEOUT": "5s", "THRIFT_REDIS_TIMEOUT": "5s"}


def test_redis_up_passes_and_leaves_no_probe_key(doctor, redis_url, redis_server, monkeypatch):
    for name, value in PATIENT.items():
        monkeypatch.setenv(name, value)
    tenant = os.environ["THRIFT_TENANT"]
    client = redis_server.client()
    calls_before = client.info("commandstats").get("cmdstat_set", {}).get("calls", 0)
    report = doctor()
    assert report.code == 0 and report.status("redis") == ["ok"], report.lines
    detail = report.check("redis")["detail"]
    assert detail.startswith(f"{redis_url} (tenant {tenant}): probe key written, read and deleted in ")
    assert detail.endswith(" ms, connecting included") and float(detail.split(" in ")[-1].split(" ")[0]) > 0
    assert client.info("commandstats")["cmdstat_set"]["calls"] >= calls_before + 2  # it did write
    assert client.exists(f"thrift:v1:{tenant}:doctor-probe") == 0
    assert client.keys(f"thrift:v1:{tenant}:*") == []


def test_the_probe_key_is_under_the_tenants_prefix(doctor, own_redis):
    """A Redis user allowed only one tenant's keys: doctor passes as that tenant, and fails,
    saying the server refused, as another."""
    client = own_redis.client()
    client.execute_command("ACL", "SETUSER", "team", "on", ">pw", "~thrift:v1:team-a:*", "+@all")
    url = f"redis://team:pw@127.0.0.1:{own_redis.port}/0"
    ok = doctor({"REDIS_URL": url, "THRIFT_TENANT": "team-a", **PATIENT})
    assert ok.code == 0 and ok.status("redis") == ["ok"], ok.lines
    assert "pw@" not in ok.line("redis") and "team:****@" in ok.line("redis")
    refused = doctor({"REDIS_URL": url, "THRIFT_TENANT": "team-b", **PATIENT})
    assert refused.code == 1 and refused.status("redis") == ["fail"]
    assert "refused the probe: NOPERM" in refused.line("redis")
    assert refused.check("redis")["fix"].startswith("check the user, password and database in the URL")
    assert client.keys("*") == []


def test_redis_down_fails_its_line(doctor):
    from redis_servers import closed_port

    port = closed_port()
    report = doctor({"REDIS_URL": f"redis://:secret@127.0.0.1:{port}/0"})
    assert report.code == 1
    assert report.check("redis") == {
        "name": "redis",
        "status": "fail",
        "ok": False,
        "detail": f"redis://:****@127.0.0.1:{port}/0: cannot connect: Connection refused",
        "fix": "start Redis at that address, or unset REDIS_URL",
    }
    assert all(c["ok"] for c in report.checks if c["name"] != "redis")  # the rest is fine


def test_a_hung_redis_and_something_else_on_the_port_fail(doctor):
    from redis_servers import garbage_server, silent_port

    with silent_port() as port:
        report = doctor({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert report.code == 1
    assert "timed out, and still no answer in 1 s" in report.line("redis")
    with garbage_server() as port:
        report = doctor({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert report.code == 1 and "not a Redis reply" in report.line("redis")
    assert report.check("redis")["fix"] == "check the address is Redis's, or unset REDIS_URL"


class SlowLink:
    """A TCP relay to a real server that holds each reply back `delay` seconds: a Redis
    farther away than thrift ask waits for."""

    def __init__(self, port: int, delay: float) -> None:
        import socket as sockets
        import threading

        self.target, self.delay = port, delay
        self.listener = sockets.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        import threading

        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        import socket as sockets

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = sockets.create_connection(("127.0.0.1", self.target))
            self._spawn(self._pipe, client, server, 0.0)
            self._spawn(self._pipe, server, client, self.delay)

    @staticmethod
    def _pipe(source, sink, delay: float) -> None:
        import time

        try:
            while data := source.recv(65536):
                time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_a_redis_slower_than_thrift_waits_says_which_setting(doctor, redis_server):
    link = SlowLink(redis_server.port, delay=0.3)
    try:
        report = doctor({"REDIS_URL": f"redis://127.0.0.1:{link.port}/0", "THRIFT_TENANT": "slow"})
    finally:
        link.close()
    assert report.code == 1
    assert "slower than thrift ask waits (redis_connect_timeout 50 ms, redis_timeout 100 ms)" in report.line(
        "redis"
    )
    assert report.check("redis")["fix"].startswith("raise redis_timeout")
    assert redis_server.client().keys("thrift:v1:slow:*") == []


def test_a_bad_config_still_checks_redis_from_its_good_lines(doctor, isolated_env):
    from redis_servers import closed_port

    port = closed_port()
    isolated_env.mkdir()
    path = isolated_env / "config.toml"
    path.write_text(f'colour = "blue"\nredis_url = "redis://127.0.0.1:{port}/0"\n')
    path.chmod(0o600)
    report = doctor()
    assert report.code == 1
    assert report.status("config") == ["fail"] and "'colour'" in report.line("config")
    assert f"redis://127.0.0.1:{port}/0: cannot connect: Connection refused" in report.line("redis")
    assert report.check("redis")["fix"] == "start Redis at that address, or thrift config unset redis_url"


# -- what no real setup shows --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status", "said"),
    [
        ({"ok": True, "version": 3, "thrift": "0.0.9"}, "warn", "but runs thrift 0.0.9, not "),
        ({"ok": True, "version": 3}, "warn", "but runs an older thrift (its ping names no version)"),
        (
            {"ok": False, "version": 4, "error": "another thrift version"},
            "fail",
            "speaks protocol 4, this thrift 3",
        ),
    ],
    ids=["older thrift", "no version", "other protocol"],
)
def test_a_helper_of_another_thrift_is_flagged(doctor, isolated_env, reply, status, said):
    """Another build's helper, as far as its socket shows: a listener that answers a ping
    the way that build would."""
    import socket as sockets
    import threading

    isolated_env.mkdir()
    listener = sockets.socket(sockets.AF_UNIX)
    listener.bind(str(isolated_env / "helper.sock"))
    listener.listen()

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.makefile().readline()
                conn.sendall(json.dumps(reply).encode() + b"\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        report = doctor()
    finally:
        listener.close()
    assert report.status("helper") == [status]
    assert said in report.line("helper")
    assert report.check("helper")["fix"] == f"kill {os.getpid()} and start thrift helper again"


def test_an_unexpected_error_in_a_check_is_a_failed_line(monkeypatch, isolated_env):
    from thrift_cli import doctor as doctor_module
    from thrift_cli.doctor import model

    def broken(context):
        yield from ()
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(model, "check_indexes", broken)
    checks = doctor_module.run()
    (index,) = [c for c in checks if c.name == "index"]
    assert (
        index.status == "fail"
        and index.detail == "could not be checked: RuntimeError: something nobody foresaw"
    )
    assert [c.name for c in checks] == NAMES  # and the report goes on


def test_the_remote_line(doctor, thrift, pg_database, pg_server):
    """Configured but not set up, set up without a key, with an unknown key, healthy, and
    unreachable: the remote line says which, with its fix."""

    from redis_servers import closed_port

    fresh = doctor()
    assert fresh.status("remote") == ["fail"] and "thrift remote init" in fresh.line("remote")
    assert thrift("remote", "init").code == 0
    assert "no api_key" in doctor().line("remote")
    key = thrift("remote", "key", "create", "ops@example.com").stdout.decode().strip()
    client = thrift_client_role(pg_server, pg_database)
    unknown = doctor({"DATABASE_URL": client, "THRIFT_API_KEY": "sc_unknown"})
    assert unknown.status("remote") == ["fail"] and "does not know this API key" in unknown.line("remote")
    healthy = doctor({"DATABASE_URL": client, "THRIFT_API_KEY": key})
    assert healthy.status("remote") == [
        "ok"
    ] and f"schema {remote_db.migrations()[-1][0]}, tenant key-" in healthy.line("remote")
    down = doctor({"DATABASE_URL": f"postgresql://x@127.0.0.1:{closed_port()}/db", "THRIFT_API_KEY": key})
    assert down.code == 1 and down.status("remote") == ["fail"]  # Report checks: no traceback
