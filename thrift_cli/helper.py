"""The warm helper: one long-lived process that keeps the model and the indexes loaded.

A cold `thrift ask` that misses the exact tier must import numpy and load the model
(~0.2 s) before it can search. When `thrift helper` is running, it asks the helper
instead, over a Unix socket in `THRIFT_HOME` (mode 0600): one JSON line there, one back.
The helper runs the same `SemanticCache.explain` and `store` on the same SQLite file, so
answers are the same with or without it. Any failure (no helper, a dead one, a slow one)
makes the client return None and `thrift ask` does the work itself.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from thrift_cli.models import CacheEntry, CacheHit, Candidate, Lookup, Veto

SOCKET_NAME = "helper.sock"
# A request that takes longer than this is abandoned and done locally instead.
TIMEOUT_S = 5.0
_MAX_LINE = 64 * 1024 * 1024


def socket_path(home: Path) -> Path:
    return home / SOCKET_NAME


# -- the client (inside a cold `thrift ask`) -----------------------------------------


class HelperClient:
    """Talks to a running helper; every method returns None when it cannot."""

    def __init__(self, path: Path, timeout: float = TIMEOUT_S) -> None:
        self.path, self.timeout = path, timeout

    @classmethod
    def find(cls, home: Path) -> HelperClient | None:
        path = socket_path(home)
        return cls(path) if path.exists() else None

    def explain(self, namespace: str, question: str, min_similarity: float | None) -> Lookup | None:
        reply = self._call(
            {"op": "explain", "namespace": namespace, "question": question, "min": min_similarity}
        )
        return lookup_from_json(reply["lookup"]) if reply else None

    def store(
        self, namespace: str, question: str, answer: str, ttl: float | None, replace: bool
    ) -> CacheEntry | None:
        request = {"op": "store", "namespace": namespace, "question": question, "answer": answer}
        reply = self._call({**request, "ttl": ttl, "replace": replace})
        return CacheEntry(**reply["entry"]) if reply else None

    def _call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(json.dumps(request).encode() + b"\n")
                reply = json.loads(_read_line(s))
        except (OSError, ValueError):
            return None  # no helper, a dead one, a slow one: the caller does the work
        return reply if isinstance(reply, dict) and reply.get("ok") else None


def _read_line(s: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("the helper closed the connection")
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > _MAX_LINE:
            return b"".join(chunks)


# -- the server (`thrift helper`) ----------------------------------------------------


def serve(home: Path, *, ready: Callable[[Path], None] | None = None) -> None:
    """Answer lookups and stores on `home`'s socket until interrupted. One request at a
    time: each takes a few milliseconds, and one thread keeps the cache simple."""
    from thrift_cli.cache import SemanticCache
    from thrift_cli.errors import ThriftError

    path = socket_path(home)
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ThriftError(f"cannot use {home}: {exc.strerror or exc}") from None
    if path.exists():
        if HelperClient(path, timeout=1.0)._call({"op": "ping"}) is not None:
            raise ThriftError(f"a helper is already running on {path}")
        path.unlink()  # left by a helper that was killed
    first = SemanticCache(home=home)
    first.embedder.embed(["warm up"])  # load the model before the first client waits on it
    caches: dict[str, SemanticCache] = {first.namespace: first}

    def cache_for(namespace: str) -> SemanticCache:
        if namespace not in caches:
            caches[namespace] = SemanticCache(namespace=namespace, tier=first.tier, embedder=first.embedder)
        return caches[namespace]

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is created 0600: only its owner may ask
    try:
        server.bind(str(path))
    except OSError as exc:  # e.g. a path longer than a Unix socket's ~107 bytes
        first.close()
        raise ThriftError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    server.listen(64)
    if ready is not None:
        ready(path)
    try:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(TIMEOUT_S)
                try:
                    request = json.loads(_read_line(conn))
                    reply = _handle(request, cache_for)
                except ThriftError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    reply = {"ok": False, "error": f"bad request: {exc}"}
                try:
                    conn.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                except OSError:
                    pass  # the client gave up; it does the work itself
    finally:
        server.close()
        path.unlink(missing_ok=True)
        first.close()


def _handle(request: dict[str, Any], cache_for: Callable[[str], Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "ping":
        return {"ok": True}
    cache = cache_for(request["namespace"])
    if op == "explain":
        look = cache.explain(request["question"], min_similarity=request["min"])
        return {"ok": True, "lookup": lookup_to_json(look)}
    if op == "store":
        entry = cache.store(
            request["question"], request["answer"], ttl=request["ttl"], replace=request["replace"]
        )
        return {"ok": True, "entry": asdict(entry)}
    return {"ok": False, "error": f"unknown op {op!r}"}


def lookup_to_json(look: Lookup) -> dict[str, Any]:
    return asdict(look)


def lookup_from_json(data: dict[str, Any]) -> Lookup:
    hit, best = data["hit"], data["best"]
    return Lookup(
        namespace=data["namespace"],
        question_hash=data["question_hash"],
        hit=None if hit is None else CacheHit(**{**hit, "entry": CacheEntry(**hit["entry"])}),
        best=None if best is None else Candidate(CacheEntry(**best["entry"]), best["similarity"]),
        latency_ms=data["latency_ms"],
        vetoes=tuple(Veto(**v) for v in data["vetoes"]),
    )
