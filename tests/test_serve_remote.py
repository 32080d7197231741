"""`thrift serve` with a remote configured: tenants are the remote's tenants, over a
real PostgreSQL 18 + pgvector, as a non-superuser role under row-level security."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pg_servers import connect
from serve_servers import ADMIN_KEY
from test_sync import Remote, remote  # noqa: F401 (the fixture)

from thrift_cli import remote_db
from thrift_cli.server.app import create_app
from thrift_cli.server.auth import digest as admin_digest
from thrift_cli.server.engine import Engine
from thrift_cli.server.remote import Remote as ServeRemote

QUESTION = "How do I rotate the database credentials?"
PARAPHRASE = "How can I rotate database credentials?"


def rows(pg: Remote, tenant: str, *, deleted: bool = False) -> dict[str, str]:
    gone = "IS NOT NULL" if deleted else "IS NULL"
    with connect(pg.admin) as conn:
        found = conn.execute(
            f"SELECT query, response FROM cache_entries WHERE api_key = %s AND deleted_at {gone}", (tenant,)
        ).fetchall()
    return dict(found)


def serving(home: Path, dsn: str) -> TestClient:
    engine = Engine(home, scrubber=False, remote=ServeRemote(dsn, None))
    return TestClient(create_app(home, admin_digest(ADMIN_KEY), engine=engine))


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
def test_tenants_are_the_remotes_and_stores_reach_it(remote: Remote, tmp_path: Path) -> None:  # noqa: F811
    team, other = ({"X-API-Key": remote.keys[t]} for t in ("team", "other"))
    with serving(tmp_path / "a", remote.client) as c:
        assert (
            c.post("/lookup", json={"query": QUESTION}, headers={"X-API-Key": "sc_nobody"}).status_code == 401
        )
        stored = c.post(
            "/store", json={"query": QUESTION, "response": "Use the vault.", "namespace": "ops"}, headers=team
        )
        assert stored.status_code == 200, stored.text
        # pushed to the remote, in the team's rows only
        assert wait_for(lambda: rows(remote, "team") == {QUESTION: "Use the vault."})
        assert rows(remote, "other") == {}
        assert (
            c.post("/lookup", json={"query": QUESTION, "namespace": "ops"}, headers=other).json()["response"]
            is None
        )
        assert (tmp_path / "a" / "tenants" / "team" / "cache.db").is_file()
    # Another server (another machine) with an empty mirror: the remote answers the team.
    with serving(tmp_path / "b", remote.client) as c:
        near = c.post("/lookup", json={"query": PARAPHRASE, "namespace": "ops"}, headers=team).json()
        assert near["response"] == "Use the vault."
        assert (
            c.post("/lookup", json={"query": PARAPHRASE, "namespace": "ops"}, headers=other).json()[
                "response"
            ]
            is None
        )
        c.app.state.engine.remote.wait()
        # the pull filled its mirror: forget it here, and the remote forgets it too
        gone = c.post("/forget", json={"query": QUESTION, "namespace": "ops"}, headers=team).json()
        assert gone["forgotten"] == 1
        assert wait_for(lambda: QUESTION in rows(remote, "team", deleted=True))
        assert rows(remote, "team") == {}


@pytest.mark.slow
def test_keys_are_made_and_revoked_on_the_remote(
    remote: Remote,  # noqa: F811
    tmp_path: Path,
) -> None:
    with serving(tmp_path / "c", remote.admin) as c:
        made = c.post("/keys", json={"email": "new@example.com"}, headers={"X-API-Key": ADMIN_KEY})
        assert made.status_code == 201, made.text
        key = made.json()["api_key"]
        with connect(remote.admin) as conn:
            tenant = conn.execute(
                "SELECT tenant FROM api_keys WHERE key_hash = %s", (remote_db.key_hash(key),)
            ).fetchone()
        assert tenant == (made.json()["tenant"],)
        assert c.post("/lookup", json={"query": QUESTION}, headers={"X-API-Key": key}).status_code == 200
        revoked = c.post("/keys/revoke", json={"key": key}, headers={"X-API-Key": ADMIN_KEY})
        assert revoked.json() == {"revoked": True}
        assert c.post("/lookup", json={"query": QUESTION}, headers={"X-API-Key": key}).status_code == 401
    with connect(remote.admin) as conn:
        assert conn.execute(
            "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_hash = %s", (remote_db.key_hash(key),)
        ).fetchone() == (True,)
    with serving(tmp_path / "d", remote.client) as c:
        refused = c.post("/lookup", json={"query": QUESTION}, headers={"X-API-Key": key})
        assert refused.status_code == 401
