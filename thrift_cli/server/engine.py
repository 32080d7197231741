"""The server's engine: one `SemanticCache` per tenant and namespace, one embedder.

The concurrency model (measured by scripts/bench_serve.py):

- **Processes.** `thrift serve --workers N` (default: one per core, at most 4) runs N
  uvicorn worker processes on one socket. Each has its own SQLite connection to each
  tenant's file (WAL: readers never wait for each other or for the writer) and its own
  copy of the vectors in memory, so lookups are spread over the cores and never queue on
  one connection.
- **Threads.** In a process, each request runs on the thread pool (FastAPI's `def`
  routes). A tenant's store is one connection behind a lock (store.py), held only for the
  sub-millisecond reads and writes; the model, the HTTP and the JSON run outside it.
- **Batched embedding.** Requests that need a vector at the same time share one model
  call: a thread hands its question to `BatchingEmbedder` and waits; the one thread that
  calls the model takes every question queued meanwhile (up to 64). Nothing waits on a
  timer: a lone request is embedded at once, and under load the batch is whatever queued
  during the previous call. On this machine one text costs ~4 ms alone and ~1.6 ms in a
  batch of 32.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from thrift_cli import config
from thrift_cli.server.auth import Principal

if TYPE_CHECKING:
    import numpy as np

    from thrift_cli.cache import SemanticCache
    from thrift_cli.embed import Embedder
    from thrift_cli.privacy import Scrubber
    from thrift_cli.store import SQLiteStore
    from thrift_cli.tiers.base import Tier

MAX_BATCH = 64
TENANTS_DIR = "tenants"


class BatchingEmbedder:
    """An `Embedder` whose single-text calls from many threads become one model call."""

    def __init__(self, inner: Embedder, *, max_batch: int = MAX_BATCH) -> None:
        self.name, self.dim = inner.name, inner.dim
        self._inner = inner
        self._max = max_batch
        self._queue: list[tuple[str, Future[Any]]] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches = 0  # model calls made, and the texts they embedded (for the bench)
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._inner.embed(texts)
        done: Future[Any] = Future()
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="thrift-embed", daemon=True)
                self._thread.start()
            self._queue.append((texts[0], done))
            self._ready.notify()
        return done.result()[None, :]

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                vectors = self._inner.embed([text for text, _ in batch])
            except BaseException as exc:  # every waiter gets the error, the thread goes on
                for _, done in batch:
                    done.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(batch)
            for (_, done), vector in zip(batch, vectors, strict=True):
                done.set_result(vector)


class Engine:
    """The caches `thrift serve` answers from: the admin's (`$THRIFT_HOME`'s own file,
    with the tiers its settings configure, as `thrift ask`) and each tenant's (its own
    file under `$THRIFT_HOME/tenants/`, with Redis scoped to it when Redis is set)."""

    def __init__(
        self,
        home: Path,
        *,
        batch: bool = True,
        embedder: Embedder | None = None,
        scrubber: Scrubber | None | Literal[False] = None,
    ) -> None:
        self.home = home
        self._batch = batch
        self._embedder = embedder
        self._scrubber = scrubber
        self._lock = threading.Lock()
        self._stores: dict[str | None, SQLiteStore] = {}
        self._shared: dict[str | None, list[Tier]] = {}
        self._caches: dict[tuple[str | None, str], SemanticCache] = {}
        self.min_similarity = float(config.value("min_similarity", home=home))
        self.ttl = config.value("ttl", home=home)

    def home_of(self, who: Principal) -> Path:
        return self.home if who.admin else self.home / TENANTS_DIR / str(who.tenant)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from thrift_cli.embed import default_embedder

                warm = default_embedder(warm=True, home=self.home)
                self._embedder = BatchingEmbedder(warm) if self._batch else warm
            return self._embedder

    @property
    def scrubber(self) -> Scrubber | None:
        with self._lock:
            if self._scrubber is None:
                from thrift_cli import privacy

                self._scrubber = privacy.configured(self.home) or False
            return self._scrubber if self._scrubber is not False else None

    def warm(self) -> None:
        """Load the model and the scrubber now (at start, on a thread of their own)."""
        try:
            self.embedder.embed(["warm"])
            scrubber = self.scrubber
            if scrubber is not None:
                scrubber.scrub("warm")
        except Exception:  # the request that needs them reports the error
            pass

    def store_of(self, who: Principal) -> SQLiteStore:
        """The tenant's file, opened once per process (created on its first use)."""
        from thrift_cli.home import DB_NAME
        from thrift_cli.store import SQLiteStore

        with self._lock:
            store = self._stores.get(who.tenant)
            if store is None:
                home = self.home_of(who)
                store = self._stores[who.tenant] = SQLiteStore(home / DB_NAME, memory_index=True)
            return store

    def _shared_tiers(self, who: Principal) -> list[Tier]:
        tiers = self._shared.get(who.tenant)
        if tiers is None:
            if who.admin:
                from thrift_cli.tiers import configured

                tiers = configured(self.home)
            else:
                tiers = []
                url = config.value("redis_url", home=self.home)
                if url is not None:
                    from thrift_cli.tiers.redis import RedisTier

                    tiers.append(
                        RedisTier(
                            url,
                            tenant=f"serve-{who.tenant}",
                            ttl=config.value("redis_ttl", home=self.home),
                            connect_timeout=config.value("redis_connect_timeout", home=self.home),
                            timeout=config.value("redis_timeout", home=self.home),
                        )
                    )
            self._shared[who.tenant] = tiers = [cast("Tier", _Locked(t)) for t in tiers]
        return tiers

    def cache(self, who: Principal, namespace: str) -> SemanticCache:
        """The cache of `namespace` in `who`'s file."""
        from thrift_cli.cache import SemanticCache

        key = (who.tenant, namespace)
        cache = self._caches.get(key)
        if cache is not None:
            return cache
        store = self.store_of(who)
        embedder, scrubber = self.embedder, self.scrubber
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = SemanticCache(
                    self.min_similarity,
                    namespace,
                    self.home_of(who),
                    ttl=self.ttl,
                    tier=store,
                    shared=self._shared_tiers(who),
                    embedder=embedder,
                    scrub=scrubber if scrubber is not None else False,
                )
            return cache

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            for tiers in self._shared.values():
                for tier in tiers:
                    tier.close()
            self._stores.clear()
            self._shared.clear()
            self._caches.clear()


class _Locked:
    """A shared tier (one socket: Redis, the remote) used by one thread at a time."""

    def __init__(self, tier: Tier) -> None:
        self._tier = tier
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._tier, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


def monotonic_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
