"""The FastAPI app of `thrift serve`: the API (a drop-in for ThriftLM's `api/`) and the
dashboard, on one engine (engine.py).

`create_app` builds it for tests and for one process; `from_environment` is the factory
each uvicorn worker process calls (`thrift serve --workers N`), configured by the
variables `command.py` sets: the workers know the admin key's digest, never the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import thrift_cli
from thrift_cli.errors import ThriftError, UsageError
from thrift_cli.server import schemas
from thrift_cli.server.auth import Keys, Principal
from thrift_cli.server.engine import Engine

if TYPE_CHECKING:
    from thrift_cli.server.remote import Remote

ADMIN_DIGEST_VAR = "THRIFT_SERVE_ADMIN_DIGEST"  # sha256 hex of the admin key, for the workers
BATCH_VAR = "THRIFT_SERVE_BATCH"  # "0": the bench's baseline, one request at a time, no batching
RECENT = 20
JSON_ROUTES = frozenset({"/lookup", "/store", "/forget", "/keys", "/keys/revoke"})  # POST, with a JSON body

_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key of this server.")
_bearer = HTTPBearer(auto_error=False, description="The same key as `Authorization: Bearer KEY`.")


class Presented:
    """The key a request presents in a header (the body's `api_key` is checked after)."""

    def __init__(
        self,
        header: Annotated[str | None, Depends(_header_key)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        self.key = header or (bearer.credentials if bearer is not None else None)


Auth = Annotated[Presented, Depends()]


def create_app(
    home: Path, admin_digest: bytes, *, batch: bool = True, engine: Engine | None = None
) -> FastAPI:
    """The app serving `home` (a THRIFT_HOME); the admin key is the one whose SHA-256 is
    `admin_digest`."""
    from thrift_cli.home import DB_NAME

    if engine is None:
        engine = Engine(home, batch=batch, remote=_remote(home))
    keys = Keys(home / DB_NAME, admin_digest, engine.remote)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The model (and Presidio, when scrubbing is on) load while the first requests
        # come in, not on the first lookup that needs them.
        threading.Thread(target=engine.warm, name="thrift-warm", daemon=True).start()
        if not batch:
            # The benchmark's baseline: one request at a time, as one connection serves.
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        yield
        engine.close()
        keys.close()

    app = FastAPI(
        lifespan=lifespan,
        title="thrift serve",
        version=thrift_cli.__version__,
        description=(
            "thrift's semantic cache over HTTP. A drop-in for ThriftLM's api/: the same paths and "
            "bodies, `api_key` accepted in the body as in a header. Every endpoint but /health and "
            "/ needs a key (X-API-Key or Authorization: Bearer)."
        ),
    )
    app.state.engine, app.state.keys = engine, keys

    def authenticate(presented: Presented, body_key: str | None = None) -> Principal:
        key = presented.key or body_key
        if not key:
            raise HTTPException(401, "an API key is required: X-API-Key, Authorization: Bearer, or api_key")
        if presented.key and body_key and body_key != presented.key:
            raise HTTPException(401, "the body's api_key and the header's key differ")
        who = keys.principal(key)
        if who is None:
            raise HTTPException(401, "unknown or revoked API key")
        return who

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": schemas.Problem, "description": "No key, or not a key of this server"},
        400: {"model": schemas.Problem, "description": "A value the cache refuses"},
        413: {"model": schemas.Problem, "description": f"A body over {schemas.MAX_BODY_BYTES} bytes"},
        415: {"model": schemas.Problem, "description": "A body that is not sent as application/json"},
    }
    admin_only = {**errors, 403: {"model": schemas.Problem, "description": "A key that is not the admin's"}}
    metrics_errors: dict[int | str, dict[str, Any]] = {k: v for k, v in errors.items() if k in (400, 401)}

    @app.get("/health", response_model=schemas.Health, tags=["service"])
    def health() -> schemas.Health:
        """Liveness probe; needs no key."""
        return schemas.Health(status="ok", version=thrift_cli.__version__)

    @app.post("/lookup", response_model=schemas.LookupResponse, tags=["cache"], responses=errors)
    def lookup(body: schemas.TextLookup | schemas.VectorLookup, presented: Auth) -> schemas.LookupResponse:
        """The cached answer for `query` (exact, then a paraphrase, guards applied), or for
        ThriftLM's `embedding`; `response` is null on a miss. Records the lookup."""
        who = authenticate(presented, body.api_key)
        cache = engine.cache(who, _namespace(body.namespace))
        if isinstance(body, schemas.TextLookup):
            look = cache.explain(body.query, min_similarity=body.min_similarity)
        else:
            look = _vector_lookup(cache, body.embedding, body.min_similarity)
        cache.record(look, outcome=None if look.hit else "lookup")
        hit = look.hit
        return schemas.LookupResponse(
            response=hit.answer if hit else None,
            tier=hit.tier if hit else None,
            similarity=round(hit.similarity, 6) if hit else None,
            id=hit.entry.id if hit else None,
            namespace=cache.namespace,
            latency_ms=round(look.latency_ms, 3),
            verifier_score=look.verdict.score if look.verdict else None,
        )

    @app.post("/store", response_model=schemas.StoreResponse, tags=["cache"], responses=errors)
    def store(body: schemas.StoreRequest, presented: Auth) -> schemas.StoreResponse:
        """Store `response` for `query` (PII scrubbed as the CLI's settings say). An entry
        already stored for the same question is kept unless `replace`."""
        who = authenticate(presented, body.api_key)
        cache = engine.cache(who, _namespace(body.namespace))
        query = cache.query(body.query)
        before = cache.tier.lookup(query.key, time.time())
        entry = cache.store(query, body.response, ttl=body.ttl, replace=body.replace)
        engine.changed(who)
        return schemas.StoreResponse(
            id=entry.id, namespace=cache.namespace, stored=body.replace or before is None
        )

    @app.post("/forget", response_model=schemas.ForgetResponse, tags=["cache"], responses=errors)
    def forget(body: schemas.ForgetRequest, presented: Auth) -> schemas.ForgetResponse:
        """Delete the entry stored for exactly `query`, or the entry `id`, from every tier."""
        from thrift_cli.forget import forget_id

        who = authenticate(presented, body.api_key)
        if (body.query is None) == (body.id is None):
            raise HTTPException(400, "give exactly one of query and id")
        cache = engine.cache(who, _namespace(body.namespace))
        removed = cache.forget_exact(body.query) if body.query is not None else forget_id(cache, str(body.id))
        ids = sorted({entry.id for _, entry in removed})
        if ids:
            engine.changed(who)
        return schemas.ForgetResponse(forgotten=len(ids), ids=ids)

    @app.get("/metrics", tags=["metrics"], responses=metrics_errors)
    def metrics(
        presented: Auth,
        since: Annotated[str | None, Query(max_length=64, description="90, 15m, 1h, 7d or a date")] = None,
        namespace: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    ) -> dict[str, Any]:
        """ThriftLM's figures (hit_rate, tokens_saved, cost_saved, total_queries, and its
        dashboard's top_queries) for the key's cache, and thrift's: `stats` is what
        `thrift stats --json` prints for the same file, `timeline` the hit rate over time,
        `recent` the latest lookups."""
        who = authenticate(presented)
        engine.flush(who)
        return _metrics(engine.home_of(who), since, namespace)

    @app.post(
        "/keys", response_model=schemas.KeyResponse, status_code=201, tags=["keys"], responses=admin_only
    )
    def create_key(body: schemas.KeyRequest, presented: Auth) -> schemas.KeyResponse:
        """A new tenant key, shown once (only its SHA-256 is kept). Admin key only."""
        who = authenticate(presented, body.api_key)
        if not who.admin:
            raise HTTPException(403, "only the admin key (thrift serve --api-key) creates keys")
        key, tenant = keys.create(body.email, body.tenant)
        return schemas.KeyResponse(api_key=key, tenant=tenant)

    @app.post("/keys/revoke", response_model=schemas.RevokeResponse, tags=["keys"], responses=admin_only)
    def revoke_key(body: schemas.RevokeRequest, presented: Auth) -> schemas.RevokeResponse:
        """Revoke a tenant key at once in this worker, within 5 s in the others. Admin key only."""
        who = authenticate(presented, body.api_key)
        if not who.admin:
            raise HTTPException(403, "only the admin key (thrift serve --api-key) revokes keys")
        return schemas.RevokeResponse(revoked=keys.revoke(body.key))

    @app.exception_handler(UsageError)
    def usage_error(_request: Request, exc: UsageError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ThriftError)
    def thrift_error(_request: Request, exc: ThriftError) -> JSONResponse:
        # The cache file, the model or the remote failed: the request was fine.
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _problems(exc)}, status_code=422)

    from thrift_cli.server import dashboard

    dashboard.mount(app)
    app.add_middleware(BodyLimit)
    return app


def from_environment() -> FastAPI:
    """The app of a uvicorn worker process (`uvicorn --factory`), set up by command.py."""
    from thrift_cli.home import thrift_home

    digest = bytes.fromhex(os.environ[ADMIN_DIGEST_VAR])
    return create_app(thrift_home(), digest, batch=os.environ.get(BATCH_VAR, "1") != "0")


def _remote(home: Path) -> Remote | None:
    """The remote the settings name (database_url, or the Supabase REST pair), if any."""
    from thrift_cli import config

    where = config.remote(home)
    if where is None:
        return None
    from thrift_cli.server.remote import Remote

    return Remote(*where)


_LOOKUPS = ("TextLookup", "VectorLookup")


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each problem: where (`loc`), what (`msg`), pydantic's `type`. A lookup body is one of
    two shapes; its problems are told for the shape it was meant to be (an `embedding` and
    no `query`: a vector lookup), not for both."""
    errors = list(exc.errors())
    if any(len(e.get("loc", ())) > 1 and e["loc"][1] in _LOOKUPS for e in errors):
        body = exc.body if isinstance(exc.body, dict) else {}
        meant = "VectorLookup" if "embedding" in body and "query" not in body else "TextLookup"
        errors = [
            {**e, "loc": (e["loc"][0], *e["loc"][2:])} if e["loc"][1:2] == (meant,) else e
            for e in errors
            if not (len(e.get("loc", ())) > 1 and e["loc"][1] in _LOOKUPS and e["loc"][1] != meant)
        ]
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


def _namespace(given: str | None) -> str:
    from thrift_cli.cache import DEFAULT_NAMESPACE

    return DEFAULT_NAMESPACE if given is None else given.strip()


def _vector_lookup(cache: Any, embedding: list[float], min_similarity: float | None) -> Any:
    """ThriftLM's lookup by vector: the nearest live entry of the namespace, if it is at
    least `min_similarity` similar. No exact tier and no guards: both read the question."""
    import numpy as np

    from thrift_cli.cache import SEARCH_K
    from thrift_cli.models import CacheHit, Lookup

    start = time.perf_counter()
    vector = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not norm > 0:
        raise UsageError("the embedding is all zeros: it points nowhere")
    vector /= norm
    floor = cache.min_similarity if min_similarity is None else min_similarity
    candidates = cache.tier.search(cache.namespace, vector, SEARCH_K, time.time())
    best = candidates[0] if candidates else None
    ms = (time.perf_counter() - start) * 1000.0
    hit = None
    if best is not None and best.similarity >= floor:
        hit = CacheHit(best.entry.answer, "semantic", best.similarity, best.entry, ms, cache.tier.name)
    key = "vector:" + hashlib.blake2b(vector.tobytes(), digest_size=20).hexdigest()
    return Lookup(cache.namespace, key, hit, best, ms)


def _metrics(home: Path, since: str | None, namespace: str | None) -> dict[str, Any]:
    from thrift_cli import config, db, stats
    from thrift_cli.home import DB_NAME
    from thrift_cli.stats_cmd import parse_since

    now = time.time()
    window = stats.Window(
        since=None if since is None else parse_since(since, now),
        namespace=None if namespace is None else config.namespace(namespace, "namespace"),
    )
    prices, default_price = config.prices(home), float(config.value("price_per_1k", home=home))
    path = home / DB_NAME
    if not path.is_file():
        figures = stats.empty(window, default_price, now)
        timeline: dict[str, Any] = {"step_seconds": 60, "start": now, "lookups": [], "hits": []}
        recent: list[dict[str, Any]] = []
    else:
        conn = db.connect(path, read_only=True)
        try:
            figures = stats.figures(conn, window, prices=prices, default_price=default_price, now=now)
            timeline = stats.timeline(conn, window, now=now)
            recent = stats.recent(conn, window, limit=RECENT)
        finally:
            conn.close()
    return {
        "hit_rate": figures["hit_rate"],
        "tokens_saved": figures["tokens_saved"],
        "cost_saved": figures["money_saved"]["usd"],
        "total_queries": figures["lookups"],
        "total_hits": figures["hits"],
        # ThriftLM's dashboard field: the top questions, its names, "5m ago" included.
        "top_queries": [
            {
                "query": q["question"],
                "hits": q["hits"],
                "last_hit_at": q["last_hit_at"],
                "last_hit": _ago(now - q["last_hit_at"]) if q["last_hit_at"] is not None else "—",
            }
            for q in figures["top_questions"][:5]
        ],
        "stats": figures,
        "timeline": timeline,
        "recent": recent,
    }


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


class BodyLimit:
    """Refuses a POST body that is not JSON (415), and one over MAX_BODY_BYTES (413) before
    it is parsed: by its Content-Length, or, sent chunked, once the bytes read pass it."""

    def __init__(self, app: ASGIApp, limit: int = schemas.MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        json_route = scope["method"] == "POST" and scope["path"] in JSON_ROUTES
        if json_route and not _json(headers.get(b"content-type", b"")):
            await _refuse(send, 415, "the body must be JSON, sent with Content-Type: application/json")
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await _refuse(send, 413, f"the body is over {self.limit} bytes")
                return
            await self.app(scope, receive, send)
            return
        # Sent chunked, with no length: read it here, up to the limit, then hand it on.
        parts, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            parts.append(message.get("body", b""))
            seen += len(parts[-1])
            if seen > self.limit:
                await _refuse(send, 413, f"the body is over {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _json(content_type: bytes) -> bool:
    media = content_type.split(b";")[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
