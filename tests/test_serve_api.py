"""`thrift serve`'s API: auth, tenants, ThriftLM's bodies, strict validation, errors.

In process (FastAPI's TestClient, i.e. httpx on the ASGI app) with the real model and a
real SQLite file; then against a real uvicorn (`thrift serve` in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_servers import ADMIN_KEY, ServeServer, thrift_argv

from thrift_cli.server.app import create_app
from thrift_cli.server.auth import digest as admin_digest
from thrift_cli.server.engine import BatchingEmbedder, Engine

ADMIN = {"X-API-Key": ADMIN_KEY}
QUESTION = "How do I learn to code quickly?"
PARAPHRASE = "How can I learn to code fast?"
UNRELATED = "What is the boiling point of water at sea level?"
ANSWER = "Practice every day on small projects."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """One app over one home for the module; each test keeps apart with its own tenant."""
    home = tmp_path_factory.mktemp("serve-home")
    engine = Engine(home, scrubber=False)
    with TestClient(create_app(home, admin_digest(ADMIN_KEY), engine=engine)) as client:
        yield client, home


@pytest.fixture
def client(served: tuple[TestClient, Path]) -> TestClient:
    return served[0]


def new_tenant(client: TestClient, **body: str) -> dict[str, str]:
    made = client.post("/keys", json={"email": "dev@example.com", **body}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return made.json()


def key_header(tenant: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": tenant["api_key"]}


# -- auth --------------------------------------------------------------------------------


def test_health_and_the_openapi_document_need_no_key(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/lookup", "/store", "/forget", "/metrics", "/keys", "/health"} <= set(paths)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/lookup", {"query": QUESTION}),
        ("POST", "/store", {"query": QUESTION, "response": ANSWER}),
        ("POST", "/forget", {"query": QUESTION}),
        ("GET", "/metrics", None),
        ("POST", "/keys", {"email": "a@example.com"}),
        ("POST", "/keys/revoke", {"key": "sc_whatever"}),
    ],
)
def test_every_endpoint_but_health_needs_a_key_of_this_server(
    client: TestClient, method: str, path: str, body: dict | None
) -> None:
    for headers in ({}, {"X-API-Key": "sc_not-a-key-of-this-server"}, {"Authorization": "Bearer nope"}):
        refused = client.request(method, path, json=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert "key" in refused.json()["detail"]
    if body is not None:
        wrong = client.request(method, path, json={**body, "api_key": "sc_wrong"})
        assert wrong.status_code == 401


def test_a_key_is_accepted_in_the_header_as_bearer_or_in_the_body(client: TestClient) -> None:
    tenant = new_tenant(client)
    key = tenant["api_key"]
    stored = client.post("/store", json={"query": QUESTION, "response": ANSWER, "api_key": key})
    assert stored.status_code == 200 and stored.json()["stored"] is True
    for kwargs in (
        {"headers": {"X-API-Key": key}},
        {"headers": {"Authorization": f"Bearer {key}"}},
        {"json_extra": {"api_key": key}},
    ):
        body = {"query": QUESTION, **kwargs.get("json_extra", {})}
        found = client.post("/lookup", json=body, headers=kwargs.get("headers", {}))
        assert found.status_code == 200 and found.json()["response"] == ANSWER
    differing = client.post(
        "/lookup", json={"query": QUESTION, "api_key": "other"}, headers={"X-API-Key": key}
    )
    assert differing.status_code == 401 and "differ" in differing.json()["detail"]


def test_the_admin_key_revokes_a_key_and_it_stops_working(client: TestClient) -> None:
    tenant = new_tenant(client)
    who = key_header(tenant)
    assert client.post("/lookup", json={"query": QUESTION}, headers=who).status_code == 200
    refused = client.post("/keys/revoke", json={"key": tenant["api_key"]}, headers=who)
    assert refused.status_code == 403
    assert client.post("/keys/revoke", json={"key": tenant["api_key"]}, headers=ADMIN).json() == {
        "revoked": True
    }
    assert client.post("/lookup", json={"query": QUESTION}, headers=who).status_code == 401
    assert client.post("/keys/revoke", json={"key": tenant["api_key"]}, headers=ADMIN).json() == {
        "revoked": False
    }
    assert client.post("/keys/revoke", json={"key": "sc_never-made"}, headers=ADMIN).json() == {
        "revoked": False
    }


def test_only_the_admin_key_creates_keys(client: TestClient) -> None:
    tenant = new_tenant(client)
    refused = client.post("/keys", json={"email": "x@example.com"}, headers=key_header(tenant))
    assert refused.status_code == 403
    second = new_tenant(client, tenant=tenant["tenant"])
    assert second["tenant"] == tenant["tenant"] and second["api_key"] != tenant["api_key"]
    assert tenant["api_key"].startswith("sc_") and len(tenant["api_key"]) > 40


# -- the cache through the API ------------------------------------------------------------


def test_store_then_exact_semantic_and_miss(client: TestClient) -> None:
    who = key_header(new_tenant(client))
    assert client.post("/lookup", json={"query": QUESTION}, headers=who).json()["response"] is None
    stored = client.post("/store", json={"query": QUESTION, "response": ANSWER}, headers=who).json()
    exact = client.post("/lookup", json={"query": QUESTION.upper()}, headers=who).json()
    assert (exact["response"], exact["tier"], exact["id"]) == (ANSWER, "exact", stored["id"])
    near = client.post("/lookup", json={"query": PARAPHRASE}, headers=who).json()
    assert near["response"] == ANSWER and near["tier"] == "semantic" and 0.85 <= near["similarity"] < 1
    miss = client.post("/lookup", json={"query": UNRELATED}, headers=who).json()
    assert miss["response"] is None and miss["tier"] is None
    strict = client.post("/lookup", json={"query": PARAPHRASE, "min_similarity": 0.99}, headers=who).json()
    assert strict["response"] is None
    again = client.post("/store", json={"query": QUESTION, "response": "another"}, headers=who).json()
    assert again == {**stored, "stored": False}
    replaced = client.post(
        "/store", json={"query": QUESTION, "response": "new", "replace": True}, headers=who
    )
    assert replaced.json()["stored"] is True
    assert client.post("/lookup", json={"query": QUESTION}, headers=who).json()["response"] == "new"


def test_namespaces_keep_answers_apart(client: TestClient) -> None:
    who = key_header(new_tenant(client))
    client.post("/store", json={"query": QUESTION, "response": "for gpt", "namespace": "gpt"}, headers=who)
    assert (
        client.post("/lookup", json={"query": QUESTION, "namespace": "claude"}, headers=who).json()[
            "response"
        ]
        is None
    )
    assert (
        client.post("/lookup", json={"query": QUESTION, "namespace": "gpt"}, headers=who).json()["response"]
        == "for gpt"
    )


def test_a_thriftlm_client_works_unchanged(client: TestClient) -> None:
    """ThriftLM's api/ bodies: an embedding (its client embeds with the same model), the key
    in the body; `{"response": ...}` or `{"response": null}` back; /keys takes `{"email"}`."""
    from thrift_cli.embed import default_embedder

    made = client.post("/keys", json={"email": "team@example.com"}, headers=ADMIN)
    assert made.status_code == 201 and set(made.json()) >= {"api_key"}
    key = made.json()["api_key"]
    vector = default_embedder(warm=True).embed([QUESTION])[0].tolist()
    stored = client.post(
        "/store", json={"embedding": vector, "query": QUESTION, "response": ANSWER, "api_key": key}
    )
    assert stored.status_code == 200 and stored.json()["status"] == "ok"
    near = default_embedder(warm=True).embed([PARAPHRASE])[0].tolist()
    found = client.post("/lookup", json={"embedding": near, "api_key": key})
    assert found.status_code == 200 and found.json()["response"] == ANSWER
    far = default_embedder(warm=True).embed([UNRELATED])[0].tolist()
    assert client.post("/lookup", json={"embedding": far, "api_key": key}).json()["response"] is None
    metrics = client.get("/metrics", headers={"X-API-Key": key}).json()
    assert {"hit_rate", "tokens_saved", "cost_saved", "total_queries"} <= set(metrics)
    assert (metrics["total_queries"], metrics["total_hits"], metrics["hit_rate"]) == (2, 1, 0.5)
    assert metrics["tokens_saved"] == -(-len(ANSWER.encode()) // 4) or metrics["tokens_saved"] > 0


def test_forget_by_question_and_by_id(client: TestClient) -> None:
    who = key_header(new_tenant(client))
    first = client.post("/store", json={"query": QUESTION, "response": ANSWER}, headers=who).json()
    second = client.post("/store", json={"query": UNRELATED, "response": "100 C"}, headers=who).json()
    gone = client.post("/forget", json={"query": QUESTION}, headers=who).json()
    assert gone == {"forgotten": 1, "ids": [first["id"]]}
    assert client.post("/lookup", json={"query": QUESTION}, headers=who).json()["response"] is None
    assert client.post("/forget", json={"id": second["id"]}, headers=who).json()["forgotten"] == 1
    assert client.post("/forget", json={"id": second["id"]}, headers=who).json() == {
        "forgotten": 0,
        "ids": [],
    }
    both = client.post("/forget", json={"query": QUESTION, "id": second["id"]}, headers=who)
    assert both.status_code == 400 and "exactly one" in both.json()["detail"]


def test_metrics_count_what_the_key_asked(client: TestClient) -> None:
    who = key_header(new_tenant(client))
    client.post("/store", json={"query": QUESTION, "response": ANSWER}, headers=who)
    for question in (QUESTION, QUESTION, PARAPHRASE, UNRELATED):
        client.post("/lookup", json={"query": question}, headers=who)
    m = client.get("/metrics", headers=who).json()
    assert (m["total_queries"], m["total_hits"], m["hit_rate"]) == (4, 3, 0.75)
    assert m["stats"]["hits_by_tier"] == {"exact": 2, "semantic": 1}
    assert m["stats"]["entries"]["total"] == 1
    assert m["cost_saved"] == m["stats"]["money_saved"]["usd"] > 0
    assert [r["question"] for r in m["recent"]][:1] == [UNRELATED]
    assert m["top_queries"][0]["query"] == QUESTION and m["top_queries"][0]["hits"] == 3
    assert m["top_queries"][0]["last_hit"].endswith("s ago")
    assert sum(m["timeline"]["lookups"]) == 4 and sum(m["timeline"]["hits"]) == 3
    assert client.get("/metrics?since=1h", headers=who).json()["total_queries"] == 4
    assert client.get("/metrics?namespace=other", headers=who).json()["total_queries"] == 0
    bad = client.get("/metrics?since=yesterday-ish", headers=who)
    assert bad.status_code == 400 and "--since" in bad.json()["detail"] or "since" in bad.json()["detail"]


# -- tenants ---------------------------------------------------------------------------------


def test_a_tenant_cannot_read_count_forget_or_overwrite_another_tenants_entries(
    served: tuple[TestClient, Path],
) -> None:
    client, home = served
    a, b = new_tenant(client), new_tenant(client)
    ka, kb = key_header(a), key_header(b)
    entry = client.post("/store", json={"query": QUESTION, "response": "A's answer"}, headers=ka).json()
    client.post("/lookup", json={"query": QUESTION}, headers=ka)
    # read: neither the exact question, nor a paraphrase, nor by vector
    assert client.post("/lookup", json={"query": QUESTION}, headers=kb).json()["response"] is None
    assert client.post("/lookup", json={"query": PARAPHRASE}, headers=kb).json()["response"] is None
    # count
    mb = client.get("/metrics", headers=kb).json()
    assert mb["stats"]["entries"]["total"] == 0 and mb["total_queries"] == 2  # B's own two misses
    assert all(r["question"] != QUESTION or r["tier"] == "miss" for r in mb["recent"])
    # forget
    assert client.post("/forget", json={"id": entry["id"]}, headers=kb).json()["forgotten"] == 0
    assert client.post("/forget", json={"query": QUESTION}, headers=kb).json()["forgotten"] == 0
    # overwrite
    client.post("/store", json={"query": QUESTION, "response": "B's answer", "replace": True}, headers=kb)
    assert client.post("/lookup", json={"query": QUESTION}, headers=ka).json()["response"] == "A's answer"
    assert client.post("/lookup", json={"query": QUESTION}, headers=kb).json()["response"] == "B's answer"
    # nor the admin's cache, nor the admin A's
    assert client.post("/lookup", json={"query": QUESTION}, headers=ADMIN).json()["response"] is None
    ma = client.get("/metrics", headers=ka).json()
    assert ma["stats"]["entries"]["total"] == 1 and ma["total_queries"] == 2
    assert (home / "tenants" / a["tenant"] / "cache.db").is_file()


def test_no_plaintext_key_on_disk(served: tuple[TestClient, Path]) -> None:
    client, home = served
    tenant = new_tenant(client)
    client.post("/store", json={"query": QUESTION, "response": ANSWER}, headers=key_header(tenant))
    secrets = [tenant["api_key"].encode(), ADMIN_KEY.encode()]
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path
    digest = hashlib.sha256(tenant["api_key"].encode()).digest()
    assert any(digest in p.read_bytes() for p in home.glob("cache.db*"))


# -- bad input: a 4xx with a clear message, never a 500 ----------------------------------


def _raw(client: TestClient, path: str, text: str, key: str = ADMIN_KEY) -> httpx.Response:
    return client.post(
        path, content=text.encode(), headers={"X-API-Key": key, "Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("path", "text", "status", "says"),
    [
        ("/lookup", "{bad json", 422, "JSON"),
        ("/lookup", '{"query": 5}', 422, "string"),
        ("/lookup", '{"query": ""}', 422, "at least 1"),
        ("/lookup", '{"query": "   "}', 422, "pattern"),
        ("/lookup", '{"query": "x", "min_similarity": false}', 422, "number"),
        ("/lookup", '{"query": "x", "min_similarity": "0.9"}', 422, "number"),
        ("/lookup", '{"query": "x", "min_similarity": 1.5}', 422, "less than or equal"),
        ("/lookup", '{"query": "x", "namspace": "typo"}', 422, "Extra inputs"),
        ("/lookup", '{"query": "x", "embedding": [0.1]}', 422, "Extra inputs"),
        ("/lookup", "[1, 2]", 422, "dictionary"),
        ("/lookup", '{"embedding": [0.1, 0.2]}', 422, "at least 384"),
        ("/lookup", '{"embedding": [NaN' + ", 0.1" * 383 + "]}", 422, "finite"),
        ("/lookup", '{"embedding": [Infinity' + ", 0.1" * 383 + "]}", 422, "finite"),
        ("/lookup", '{"embedding": [true' + ", 0.1" * 383 + "]}", 422, "number"),
        ("/lookup", '{"embedding": [0' + ", 0" * 383 + "]}", 400, "zeros"),
        ("/store", '{"query": "q", "response": "a", "ttl": false}', 422, "number"),
        ("/store", '{"query": "q", "response": "a", "ttl": -1}', 422, "greater than"),
        ("/store", '{"query": "q", "response": "a", "ttl": "5"}', 422, "number"),
        ("/store", '{"query": "q", "response": "a", "replace": "yes"}', 422, "boolean"),
        ("/store", '{"query": "q"}', 422, "Field required"),
        ("/store", '{"query": "q", "response": "a", "embedding": [0.5]}', 422, "at least 384"),
        ("/forget", "{}", 400, "exactly one"),
        ("/keys", '{"email": "not an email"}', 422, "pattern"),
        ("/keys", '{"tenant": "../../etc"}', 422, "pattern"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    client: TestClient, path: str, text: str, status: int, says: str
) -> None:
    answer = _raw(client, path, text)
    assert answer.status_code == status, answer.text
    assert says in json.dumps(answer.json())


def test_a_body_that_is_not_json_or_too_large_is_refused(client: TestClient) -> None:
    form = client.post("/lookup", data={"query": "x"}, headers=ADMIN)
    assert form.status_code == 415 and "JSON" in form.json()["detail"]
    huge = json.dumps({"query": "q", "response": "a" * (1024 * 1024)})
    assert _raw(client, "/store", huge).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "q", "response": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    chunked = client.post("/store", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"})
    assert chunked.status_code == 413 and "bytes" in chunked.json()["detail"]


# -- the batching embedder -------------------------------------------------------------------


def test_concurrent_embeds_are_batched_and_each_gets_its_own_vector() -> None:
    from thrift_cli.embed import default_embedder

    inner = default_embedder(warm=True)
    batching = BatchingEmbedder(inner)
    texts = [
        f"question number {i} about {topic}" for i, topic in enumerate(["cats", "tax", "rust", "gpus"] * 12)
    ]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(texts))

    def one(i: int) -> None:
        barrier.wait()
        results[i] = batching.embed([texts[i]])[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = inner.embed(texts)
    for i in range(len(texts)):
        assert np.allclose(results[i], expected[i], atol=1e-5), i
    assert batching.texts == len(texts) and batching.batches < len(texts)


def test_an_embedding_error_reaches_every_waiter() -> None:
    class Broken:
        name, dim = "broken", 384

        def embed(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("model gone")

    batching = BatchingEmbedder(Broken())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="model gone"):
        batching.embed(["a"])
    with pytest.raises(RuntimeError, match="model gone"):
        batching.embed(["b"])


# -- the admin key opens the CLI's own cache -------------------------------------------------


def test_the_admin_key_serves_what_thrift_ask_stored(isolated_env: Path, thrift, fake_llm) -> None:
    ran = thrift("ask", "--json", QUESTION, "--", *fake_llm.command())
    assert ran.code == 0
    namespace = ran.report["namespace"]
    with TestClient(
        create_app(isolated_env, admin_digest(ADMIN_KEY), engine=Engine(isolated_env, scrubber=False))
    ) as c:
        found = c.post("/lookup", json={"query": QUESTION, "namespace": namespace}, headers=ADMIN).json()
        assert found["response"] == ran.stdout.decode() and found["tier"] == "exact"
        stats = json.loads(thrift("stats", "--json").stdout)
        assert c.get("/metrics", headers=ADMIN).json()["stats"]["lookups"] == stats["lookups"] == 2


def test_answers_stored_through_the_api_are_scrubbed(isolated_env: Path) -> None:
    engine = Engine(isolated_env, scrubber=None)  # the settings: scrubbing on
    os.environ["THRIFT_SCRUB"] = "true"
    try:
        with TestClient(create_app(isolated_env, admin_digest(ADMIN_KEY), engine=engine)) as c:
            c.post(
                "/store",
                json={"query": "who to call", "response": "Mail jane.doe@example.com"},
                headers=ADMIN,
            )
            served = c.post("/lookup", json={"query": "who to call"}, headers=ADMIN).json()["response"]
    finally:
        os.environ["THRIFT_SCRUB"] = "false"
    assert "jane.doe@example.com" not in served and "<EMAIL_ADDRESS>" in served


# -- a real uvicorn ------------------------------------------------------------------------------


def test_a_real_uvicorn_serves_the_api(serve_server: ServeServer) -> None:
    with httpx.Client(base_url=serve_server.url, headers={"X-API-Key": serve_server.key}) as http:
        assert http.post("/store", json={"query": QUESTION, "response": ANSWER}).status_code == 200
        assert http.post("/lookup", json={"query": PARAPHRASE}).json()["response"] == ANSWER
        key = http.post("/keys", json={"email": "a@example.com"}).json()["api_key"]
        assert (
            http.post("/lookup", json={"query": QUESTION}, headers={"X-API-Key": key}).json()["response"]
            is None
        )
        assert http.get("/metrics").json()["total_queries"] == 1
        assert (
            http.post("/lookup", content=b"{", headers={"Content-Type": "application/json"}).status_code
            == 422
        )
    assert serve_server.stop() in (0, 143)  # SIGTERM: uvicorn finishes, then re-raises it
    log = serve_server.log.read_text()
    assert "Traceback" not in log and serve_server.key not in log.split("dashboard")[0]


@pytest.mark.slow
def test_several_workers_share_keys_and_answers_under_concurrent_clients(isolated_env: Path) -> None:
    with ServeServer.start(isolated_env, workers=2) as server:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": server.key}) as http:
            key = http.post("/keys", json={}).json()["api_key"]
            pairs = [(f"What is the capital city of country number {i}?", f"capital {i}") for i in range(40)]
            for question, answer in pairs:
                http.post("/store", json={"query": question, "response": answer}, headers={"X-API-Key": key})
        failures: list[str] = []

        def client(offset: int) -> None:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": key}) as own:
                for question, answer in pairs[offset:] + pairs[:offset]:
                    got = own.post("/lookup", json={"query": question + "  "})
                    if got.status_code != 200 or got.json()["response"] != answer:
                        failures.append(f"{question}: {got.status_code} {got.text[:80]}")
                    near = own.post("/lookup", json={"query": "Tell me: " + question.lower()})
                    if near.status_code != 200 or near.json()["response"] not in (answer, None):
                        failures.append(f"near {question}: {near.text[:80]}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []


def _serve(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*thrift_argv(), "serve", "--no-browser", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--port", "70000"), "--port"),
        (("--workers", "0"), "--workers"),
        (("--api-key", "short"), "--api-key"),
        (("--port", "notanumber"), "port"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    ran = _serve(*args)
    assert ran.returncode == 2, ran.stderr
    assert says in ran.stderr and "Traceback" not in ran.stderr


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ran = _serve("--port", str(taken.getsockname()[1]))
    assert ran.returncode == 2 and "cannot listen" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr


def test_it_opens_the_dashboard_with_the_key_in_the_fragment(tmp_path: Path, isolated_env: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    port = ServeServer.start.__globals__["free_port"]()
    proc = subprocess.Popen(
        [*thrift_argv(), "serve", "--port", str(port), "--workers", "1"],
        env={**os.environ, "BROWSER": str(browser)},
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        url = opened.read_text().strip()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert url.startswith(f"http://127.0.0.1:{port}/#key=sc_")
    key = url.split("#key=")[1]
    assert f"admin key (shown once): {key}" in err
    assert sys.executable  # the command ran under this interpreter's environment
