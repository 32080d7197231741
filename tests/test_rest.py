"""The Supabase REST path: `thrift sync` and `thrift ask --remote` with only SUPABASE_URL +
SUPABASE_KEY, through the `supabase` client, against tests/postgrest.py, which checks each
request against PostgREST's documented API and runs it in the tests' real PostgreSQL as
PostgREST would (role `anon`, the headers as `request.headers`). Tested at the HTTP
level: no PostgREST server exists on PyPI or Debian to run for real."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pg_servers import closed_port, connect
from rest_servers import MAX_ROWS, PREFIX, PostgrestServer, setup_roles
from test_sync import _filled_with_hits, assert_all_pushed, entry, fill, hit, local_rows, qhash, sync_process

from thrift_cli import remote_db
from thrift_cli.home import db_path
from thrift_cli.store import SQLiteStore
from thrift_sync import SyncError, sync
from thrift_sync.mirror import micros

ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.test-anon-key"  # shaped as Supabase's anon JWT


@dataclass
class Project:
    api: PostgrestServer
    admin: str  # the superuser's DSN, for the tests' own looks
    keys: dict[str, str]  # tenant -> thrift API key

    def sync(self, home: Path, tenant: str = "team", **kw):
        return sync(db_path(home), self.api.url, self.keys[tenant], rest_key=ANON_KEY, **kw)

    def env(self, home: Path, tenant: str = "team") -> dict[str, str]:
        return {
            "THRIFT_HOME": str(home),
            "SUPABASE_URL": self.api.url,
            "SUPABASE_KEY": ANON_KEY,
            "THRIFT_API_KEY": self.keys[tenant],
        }

    def rows(self, tenant: str = "team") -> dict[str, tuple]:
        with connect(self.admin) as conn:
            found = conn.execute(
                "SELECT question_hash, response, hit_count, deleted_at IS NOT NULL FROM cache_entries "
                "WHERE api_key = %s",
                (tenant,),
            ).fetchall()
        return {r[0]: tuple(r[1:]) for r in found}


@pytest.fixture
def project(pg_server, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A Supabase-like project: the roles PostgREST uses, `thrift remote init` (run by its
    admin over Postgres, once), two tenants' keys, and its REST API on a loopback port.
    DATABASE_URL is unset: the machines under test know only the REST API."""
    authenticator = setup_roles(pg_server, pg_database)
    with remote_db.connect(pg_database) as conn:
        remote_db.migrate(conn)
        keys = {t: remote_db.create_key(conn, f"{t}@example.com", tenant=t) for t in ("team", "other")}
    monkeypatch.delenv("DATABASE_URL")
    with PostgrestServer(authenticator, ANON_KEY) as api:
        yield Project(api, pg_database, keys)


def test_two_homes_sync_through_the_rest_api(project, thrift, fake_llm, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    llm = fake_llm.command()
    assert thrift("ask", "What is semantic caching?", "--", *llm, env=project.env(a)).code == 0
    assert thrift("ask", "Who wrote Dune?", "--", *llm, env=project.env(b)).code == 0
    for home in (a, b, a):
        ran = thrift("sync", env=project.env(home))
        assert ran.code == 0, ran.stderr
        assert ran.stderr.count("\n") == 1 and "(REST) as team" in ran.stderr, ran.stderr
    # Each home answers the other's question from its own file now.
    assert thrift("ask", "Who wrote Dune?", "--lookup-only", "--", *llm, env=project.env(a)).code == 0
    assert (
        thrift("ask", "What is semantic caching?", "--lookup-only", "--", *llm, env=project.env(b)).code == 0
    )
    assert len(fake_llm.calls) == 2
    assert {h: v[0] for h, v in local_rows(a).items()} == {h: v[0] for h, v in local_rows(b).items()}
    assert len(project.rows()) == 2
    # A forget on one home deletes on the other after a sync each.
    assert thrift("forget", "Who wrote Dune?", "--", *llm, env=project.env(a)).code == 0
    assert thrift("sync", env=project.env(a)).code == 0
    assert thrift("sync", env=project.env(b)).code == 0
    assert len(local_rows(b)) == 1
    assert sum(deleted for *_, deleted in project.rows().values()) == 1


def test_every_request_is_one_postgrest_rpc_with_the_keys_in_their_headers(project, tmp_path):
    home = tmp_path / "h"
    fill(home, [entry(f"question {i}") for i in range(5)])
    result = project.sync(home)
    assert (result.pushed, result.pulled) == (5, 0)
    seen = project.api.requests
    assert seen and all(r.method == "POST" and r.path.startswith(PREFIX) for r in seen)
    for r in seen:
        assert r.headers["apikey"] == ANON_KEY and r.headers["authorization"] == f"Bearer {ANON_KEY}"
        assert r.headers["x-api-key"] == project.keys["team"]  # the tenant: hashed by the server
        assert r.headers["content-type"].startswith("application/json")
        assert isinstance(r.body, dict)
    functions = [r.path[len(PREFIX) :] for r in seen]
    assert functions[0] == "thrift_session" and "thrift_push" in functions and "thrift_pull" in functions
    push = project.api.calls("thrift_push")[0].body
    assert set(push) == {"p_batch_id", "p_entries", "p_forgets"} and len(push["p_entries"]) == 5
    sent = push["p_entries"][0]
    assert isinstance(sent["embedding"], str) and len(json.loads(sent["embedding"])) == 384
    assert all(r.body["p_limit"] <= MAX_ROWS for r in project.api.calls("thrift_pull"))


def test_vectors_and_times_come_back_exact(project, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fill(a, [entry("Why is the sky blue?", expires_at=time.time() + 3600)], seed=7)
    project.sync(a)
    assert project.sync(b).pulled == 1
    (ea,), (eb,) = (stored(h) for h in (a, b))
    assert (eb.id, eb.question, eb.answer, eb.question_hash) == (
        ea.id,
        ea.question,
        ea.answer,
        ea.question_hash,
    )
    assert micros(eb.created_at) == micros(ea.created_at) and micros(eb.expires_at) == micros(ea.expires_at)
    va, vb = (embedding(h) for h in (a, b))
    assert va.shape == (384,) and np.array_equal(va, vb)  # float32 through JSON text and back, bit for bit
    assert project.sync(b).pulled == 0  # and a second sync moves nothing


def stored(home: Path) -> list:
    store = SQLiteStore(db_path(home))
    try:
        return store.entries()
    finally:
        store.close()


def embedding(home: Path) -> np.ndarray:
    with sqlite3.connect(db_path(home)) as conn:
        (blob,) = conn.execute("SELECT embedding FROM entries").fetchone()
    return np.frombuffer(blob, dtype="<f4")


def test_pages_past_the_servers_row_cap_lose_nothing(project, tmp_path, monkeypatch):
    project.api.max_rows = 40  # a project whose db-max-rows is lower than the page thrift asks for
    a, b = tmp_path / "a", tmp_path / "b"
    fill(a, [entry(f"question {i}") for i in range(130)])
    monkeypatch.setenv("THRIFT_SYNC_BATCH", "50")
    assert project.sync(a).pushed == 130
    assert len(project.api.calls("thrift_push")) == 3  # 50 + 50 + 30
    assert project.sync(b).pulled == 130
    assert len(local_rows(b)) == 130
    assert len(project.api.calls("thrift_pull")) >= 130 // 40 + 1


def test_an_answer_lost_after_the_commit_counts_the_hits_once(project, tmp_path):
    home = tmp_path / "h"
    fill(home, [entry("What is RAG?")])
    project.sync(home)
    hit(home, "What is RAG?", times=3)
    project.api.fail("drop-after-commit", "thrift_push")  # the batch commits; its answer is lost
    with pytest.raises(SyncError, match="lost the remote .*run thrift sync again"):
        project.sync(home)
    assert project.rows()[qhash("ns", "What is RAG?")][1] == 3  # it did land
    again = project.sync(home)
    assert again.resumed == [f"push batch {again.resumed[0].split()[2]} (committed)"]
    assert again.pushed == 0
    assert project.rows()[qhash("ns", "What is RAG?")][1] == 3  # sent again, counted once
    assert project.sync(home).moved == 0


def test_a_lost_request_is_sent_again_and_lands_once(project, tmp_path):
    home = tmp_path / "h"
    fill(home, [entry(f"q{i}") for i in range(3)])
    project.api.fail("status", "thrift_push", status=503)  # the gateway refuses: nothing landed
    with pytest.raises(SyncError, match="lost the remote"):
        project.sync(home)
    assert project.rows() == {}
    again = project.sync(home)
    assert len(again.resumed) == 1 and again.pushed == 0  # the recorded batch went, with its id
    assert {h: v[:2] for h, v in project.rows().items()} == {
        qhash("ns", f"q{i}"): (f"answer to q{i}", 0) for i in range(3)
    }


def test_tenants_stay_apart_through_the_api(project, tmp_path):
    team, other = tmp_path / "team", tmp_path / "other"
    fill(team, [entry("team secret")])
    project.sync(team)
    assert project.sync(other, tenant="other").pulled == 0
    assert local_rows(other) == {}
    # A forged push as `other` for team's question writes other's row, never team's.
    fill(other, [entry("team secret", answer="overwritten")])
    project.sync(other, tenant="other")
    assert project.rows("team")[qhash("ns", "team secret")][0] == "answer to team secret"


def test_refusals_are_one_line_and_change_nothing_local(project, thrift, tmp_path):
    home = tmp_path / "h"
    fill(home, [entry("kept")])
    before = local_rows(home)
    cases = {
        "bad project key": ({"SUPABASE_KEY": "not-the-key"}, "Invalid API key"),
        "unknown thrift key": ({"THRIFT_API_KEY": "sc_unknown"}, "does not know this API key"),
        "down": ({"SUPABASE_URL": f"http://127.0.0.1:{closed_port()}"}, "cannot reach the remote"),
        "no key": ({"SUPABASE_KEY": ""}, "needs SUPABASE_KEY"),
    }
    for name, (change, message) in cases.items():
        ran = thrift("sync", env={**project.env(home), **change})
        err = ran.stderr
        assert ran.code in (1, 2) and err.count("\n") == 1 and message in err, (name, err)
        assert "Traceback" not in err
    assert local_rows(home) == before


def test_an_uninitialised_project_is_named_as_such(pg_server, pg_database, thrift, tmp_path, monkeypatch):
    authenticator = setup_roles(pg_server, pg_database)
    monkeypatch.delenv("DATABASE_URL")
    with PostgrestServer(authenticator, ANON_KEY) as api:
        env = {
            "THRIFT_HOME": str(tmp_path),
            "SUPABASE_URL": api.url,
            "SUPABASE_KEY": ANON_KEY,
            "THRIFT_API_KEY": "sc_x",
        }
        ran = thrift("sync", env=env)
    assert ran.code == 1 and "not set up for this thrift: run thrift remote init" in ran.stderr


def test_ask_remote_hits_an_entry_only_the_remote_has(project, thrift, fake_llm, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    llm = fake_llm.command()
    assert thrift("ask", "How do I reverse a list in Python?", "--", *llm, env=project.env(a)).code == 0
    assert thrift("sync", "--push", env=project.env(a)).code == 0
    # b never pulled: its hit comes from the remote's HNSW, through match_cache_entries.
    paraphrase = "How can I reverse a list in Python?"
    ran = thrift("ask", "--json", "--remote", paraphrase, "--", *llm, env=project.env(b))
    assert ran.code == 0, ran.stderr
    assert (ran.report["tier"], ran.report["source"]) == ("semantic", "remote")
    assert ran.report["matched_question"] == "How do I reverse a list in Python?"
    assert len(fake_llm.calls) == 1 and project.api.calls("match_cache_entries")
    calls = len(project.api.requests)
    again = thrift("ask", "--json", "--remote", paraphrase, "--", *llm, env=project.env(b))
    assert again.code == 0 and again.stdout == ran.stdout
    assert again.report["source"] == "local"  # written into b's mirror: the next ask is local
    assert len(project.api.requests) == calls


def test_ask_remote_with_the_api_down_warns_once_and_answers_locally(project, thrift, fake_llm, tmp_path):
    home = tmp_path / "h"
    env = {**project.env(home), "SUPABASE_URL": f"http://127.0.0.1:{closed_port()}"}
    ran = thrift("ask", "--remote", "What is a monad?", "--", *fake_llm.command(), env=env)
    assert ran.code == 0 and ran.stdout
    err = ran.stderr
    assert err.count("warning") == 1 and "using the local cache only" in err and "Traceback" not in err
    again = thrift("ask", "--remote", "What is a monad?", "--", *fake_llm.command(), env=env)
    assert again.code == 0 and again.stdout == ran.stdout and len(fake_llm.calls) == 1


def test_remote_status_and_doctor_over_the_rest_api(project, thrift, tmp_path):
    home = tmp_path / "h"
    fill(home, [entry("one"), entry("two", namespace="other-ns")])
    project.sync(home)
    ran = thrift("remote", "status", "--json", env=project.env(home))
    assert ran.code == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert (report["tenant"], report["entries"], report["namespaces"], report["tombstones"]) == (
        "team",
        2,
        2,
        0,
    )
    assert report["schema"] == remote_db.migrations()[-1][0] and report["rtt_ms"] > 0
    assert report["remote"] == f"{project.api.url} (REST)"
    other = json.loads(thrift("remote", "status", "--json", env=project.env(home, "other")).stdout)
    assert (other["tenant"], other["entries"]) == ("other", 0)  # the counts are the caller's only

    doctor = thrift("doctor", "--json", env=project.env(home))
    (check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "remote"]
    assert check["status"] == "ok" and "tenant team, 2 entries" in check["detail"]
    unknown = thrift("doctor", "--json", env={**project.env(home), "THRIFT_API_KEY": "sc_nobody"})
    (check,) = [c for c in json.loads(unknown.stdout)["checks"] if c["name"] == "remote"]
    assert check["status"] == "fail" and "does not know this API key" in check["detail"]


def _sync_process(project: Project, home: Path, *args: str, **env: str) -> subprocess.Popen:
    return sync_process({**project.env(home), **env}, *args)


def _assert_exact(project: Project, home: Path, counts: dict[str, int]) -> None:
    assert {h: v[1] for h, v in project.rows().items()} == counts  # none lost, none twice, hits exact
    assert {h: v[2] for h, v in local_rows(home).items()} == counts
    assert_all_pushed(home)


@pytest.mark.parametrize("point", ["push-before-commit", "push-after-commit"])
def test_a_rest_push_killed_around_its_request_counts_each_hit_once(project, tmp_path, point):
    home = tmp_path / "a"
    counts = _filled_with_hits(home, 600)
    killed = _sync_process(project, home, "--push", THRIFT_SYNC_BATCH="100", THRIFT_SYNC_FAULT=f"{point}:3")
    assert killed.wait(60) == -signal.SIGKILL
    rerun = _sync_process(project, home, THRIFT_SYNC_BATCH="100")
    assert rerun.wait(60) == 0, rerun.stderr.read()
    _assert_exact(project, home, counts)


def test_a_rest_push_killed_at_random_points_loses_and_duplicates_nothing(project, tmp_path):
    home = tmp_path / "a"
    counts = _filled_with_hits(home, 1500)
    rng, kills = random.Random(7), 0
    for _ in range(8):
        proc = _sync_process(project, home, "--push", THRIFT_SYNC_BATCH="100")
        time.sleep(rng.uniform(0.3, 1.2))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
    assert kills >= 2, "the pushes finished before any kill"
    rerun = _sync_process(project, home, THRIFT_SYNC_BATCH="100")
    assert rerun.wait(120) == 0, rerun.stderr.read()
    _assert_exact(project, home, counts)


def test_push_on_store_reaches_the_remote_over_rest(project, thrift, fake_llm, tmp_path):
    home = tmp_path / "h"
    env = {**project.env(home), "THRIFT_PUSH_ON_STORE": "true"}
    ran = thrift("ask", "What is a B-tree?", "--", *fake_llm.command(), env=env)
    assert ran.code == 0 and ran.stderr == ""
    deadline = time.monotonic() + 30
    while not project.rows() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [v[0] for v in project.rows().values()] == [ran.stdout.decode()]


def test_api_roles_made_after_init_get_their_rights_at_the_next_init(own_pg, tmp_path, monkeypatch):
    """`anon` made after the first `thrift remote init` (a server of the test's own, so no
    other test made it first): refused until init runs again."""
    admin = own_pg.create_database("late_roles")
    with remote_db.connect(admin) as conn:
        remote_db.migrate(conn)
        key = remote_db.create_key(conn, "t@example.com", tenant="team")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    own_pg.connect(autocommit=True).execute(
        "DROP ROLE IF EXISTS anon"
    )  # a server of its own: no other test's anon
    authenticator = setup_roles(own_pg, admin)
    home = tmp_path / "h"
    fill(home, [entry("late")])
    with PostgrestServer(authenticator, ANON_KEY) as api:
        with pytest.raises(SyncError, match="permission denied"):
            sync(db_path(home), api.url, key, rest_key=ANON_KEY)
        with remote_db.connect(admin) as conn:
            assert remote_db.migrate(conn) == []  # nothing new to apply, the grants again
        assert sync(db_path(home), api.url, key, rest_key=ANON_KEY).pushed == 1
