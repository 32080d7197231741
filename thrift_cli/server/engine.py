"""The server's engine: one `SemanticCache` per tenant and namespace, one embedder.

The concurrency model (measured by scripts/bench_serve.py):

- **Processes.** `thrift serve --workers N` (default: one per core, at most 4) runs N
  uvicorn worker processes on one socket. Each has its own SQLite connection to each
  tenant's file (WAL: readers never wait for each other or for the writer) and its own
  copy of the vectors in memory, so lookups are spread over the cores and never queue on
  one connection.
- **Threads.** In a process, each request runs on the thread pool (FastAPI's `def`
  routes). Each thread does its exact lookups on a connection of its own. The semantic
  search uses the store's connection, whose lock (store.py) it holds only to bring the
  vectors in memory up to date and to read its candidates back: the scan of the vectors,
  the model, the HTTP and the JSON run outside it.
- **Threads for the maths.** The cores are shared out among the workers: with two workers
  on two cores, the model and numpy's BLAS get one thread each in each worker. Left at
  their defaults (two each, in each worker) they fight over the cores: a 10,000-vector
  search took 8 ms instead of 0.6 ms.
- **Events off the request's path.** Each lookup's event (and its entry's hit count) is
  handed to the tenant's `EventWriter`, a thread with its own connection that writes
  whatever has queued in one transaction, at once. A request never waits for the write
  lock, which the other workers' writers and `thrift ask` processes also take. What a
  crash loses is the events of the last few milliseconds, never an entry: stores are
  written before the response. `/metrics` first waits for this process's queue.
- **Batched embedding.** Requests that need a vector at the same time share one model
  call: a thread hands its question to `BatchingEmbedder` and waits; the one thread that
  calls the model takes every question queued meanwhile (up to 64). Nothing waits on a
  timer: a lone request is embedded at once, and under load the batch is whatever queued
  during the previous call. The vectors of the last RECENT_VECTORS texts are kept, so the
  `/store` that follows a missed `/lookup` of the same question embeds nothing.

What bounds it (scripts/bench_serve.py): the model. A Quora-length question costs ~6 ms of
CPU to embed, alone or in a batch (~5.7 ms: at this size the work is the arithmetic, not
the calls), against ~1.5 ms for all the rest of a lookup. Exact hits need no model and
never wait behind the lookups that do.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
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
    from thrift_cli.models import CacheEntry, Event
    from thrift_cli.privacy import Scrubber
    from thrift_cli.server.remote import Remote
    from thrift_cli.store import SQLiteStore
    from thrift_cli.tiers.base import Tier

MAX_BATCH = 64
RECENT_VECTORS = 4096  # ~6 MB of vectors per worker
# The compute threads of one worker (the model's and numpy's BLAS), set by command.py.
THREADS_VAR = "THRIFT_SERVE_THREADS"
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
        # The latest texts' vectors: a lookup that missed is stored a moment later (the
        # client called its LLM in between); the store reuses the lookup's vector.
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.reused = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._inner.embed(texts)
        with self._recent_lock:
            known = self._recent.get(texts[0])
            if known is not None:
                self._recent.move_to_end(texts[0])
                self.reused += 1
                return known[None, :]
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
            with self._recent_lock:
                for (text, _), vector in zip(batch, vectors, strict=True):
                    self._recent[text] = vector
                while len(self._recent) > RECENT_VECTORS:
                    self._recent.popitem(last=False)
            for (_, done), vector in zip(batch, vectors, strict=True):
                done.set_result(vector)


class EventWriter:
    """Writes the lookups' events of one cache file on a thread of its own, in batches."""

    def __init__(self, path: Path) -> None:
        from thrift_cli.store import SQLiteStore

        self._store = SQLiteStore(path)  # its own connection: the requests' stays free
        self._queue: list[tuple[CacheEntry | None, Event]] = []
        self._busy = False
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="thrift-events", daemon=True)
        self._thread.start()
        self.failed: str | None = None

    def put(self, entry: CacheEntry | None, event: Event) -> None:
        with self._changed:
            self._queue.append((entry, event))
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event put so far is written."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._changed.wait(0.05)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return
                batch, self._queue, self._busy = self._queue, [], True
            try:
                self._store.record_many(batch)
            except Exception as exc:  # metrics only: said once, never fatal to a lookup
                if self.failed is None:
                    self.failed = str(exc)
                    print(f"thrift serve: warning: lookups not recorded: {exc}", file=sys.stderr)
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=10)
        self._store.close()


class _Served:
    """A tenant's store as the requests use it: each thread's exact lookups on a
    connection of its own (WAL readers never wait for one another, nor for the search's
    lock on the store's connection), the events through the EventWriter; all else is the
    store's."""

    def __init__(self, store: SQLiteStore, writer: EventWriter) -> None:
        self._store, self.writer = store, writer
        self._own = threading.local()
        self._readers: list[SQLiteStore] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        reader = getattr(self._own, "reader", None)
        if reader is None:
            from thrift_cli.store import SQLiteStore

            reader = self._own.reader = SQLiteStore(self._store.path)
            with self._lock:
                self._readers.append(reader)
        return reader.lookup(question_hash, now)

    def record(self, event: Event) -> None:
        self.writer.put(None, event)

    def record_hit(self, entry: CacheEntry, event: Event) -> None:
        self.writer.put(entry, event)

    def close_readers(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()


class Engine:
    """The caches `thrift serve` answers from: the admin's (`$THRIFT_HOME`'s own file,
    with the tiers its settings configure, as `thrift ask`) and each tenant's (its own
    file under `$THRIFT_HOME/tenants/`, with Redis scoped to it when Redis is set, and with
    a remote the remote's tiers as that tenant: server/remote.py)."""

    def __init__(
        self,
        home: Path,
        *,
        batch: bool = True,
        embedder: Embedder | None = None,
        scrubber: Scrubber | None | Literal[False] = None,
        remote: Remote | None = None,
    ) -> None:
        """`remote`: tenants are the remote's (server/remote.py)."""
        self.home = home
        self.remote = remote
        self._batch = batch
        self._embedder = embedder
        self._scrubber = scrubber
        self._lock = threading.Lock()
        self._stores: dict[str | None, SQLiteStore] = {}
        self._writers: dict[str | None, EventWriter] = {}
        self._served: dict[str | None, _Served] = {}
        self._shared: dict[str | None, list[Tier]] = {}
        self._caches: dict[tuple[str | None, str], SemanticCache] = {}
        # None: the cache's default (with the verifier or without, as `verify` says).
        chosen = config.value("min_similarity", home=home)
        self.min_similarity = None if chosen is None else float(chosen)
        self.ttl = config.value("ttl", home=home)

    def home_of(self, who: Principal) -> Path:
        return self.home if who.admin else self.home / TENANTS_DIR / str(who.tenant)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                warm = _warm_embedder(self.home)
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
                path = self.home_of(who) / DB_NAME
                store = self._stores[who.tenant] = SQLiteStore(path, memory_index=True)
                self._writers[who.tenant] = EventWriter(path)
                if self.remote is not None and not who.admin:
                    self._syncer(who).start(pull=True)  # the mirror of the tenant's rows
            return store

    def _syncer(self, who: Principal) -> Any:
        assert self.remote is not None and who.key is not None
        return self.remote.syncer(self.home_of(who), str(who.tenant), who.key)

    def changed(self, who: Principal) -> None:
        """`who`'s cache changed (a store, a forget): with a remote, push it there now."""
        if self.remote is not None and not who.admin:
            self._syncer(who).start()

    def flush(self, who: Principal) -> None:
        """Wait until the lookups this process answered for `who` are recorded."""
        writer = self._writers.get(who.tenant)
        if writer is not None:
            writer.flush()

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
                if self.remote is not None and who.key is not None:
                    tiers.append(self.remote.tier(who.key, config.value("remote_timeout", home=self.home)))
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
        served = self._served.get(who.tenant)
        if served is None:
            served = self._served.setdefault(who.tenant, _Served(store, self._writers[who.tenant]))
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = SemanticCache(
                    self.min_similarity,
                    namespace,
                    self.home_of(who),
                    ttl=self.ttl,
                    tier=cast("Tier", served),
                    shared=self._shared_tiers(who),
                    embedder=embedder,
                    scrub=scrubber if scrubber is not None else False,
                )
            return cache

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            for served in self._served.values():
                served.close_readers()
            self._served.clear()
            for store in self._stores.values():
                store.close()
            self._writers.clear()
            for tiers in self._shared.values():
                for tier in tiers:
                    tier.close()
            self._stores.clear()
            self._shared.clear()
            self._caches.clear()


def _warm_embedder(home: Path) -> Embedder:
    """ONNX Runtime with THREADS_VAR threads (command.py: the cores shared out among the
    workers, so two workers on two cores do not fight over four threads), else the
    process-wide default."""
    threads = os.environ.get(THREADS_VAR)
    if threads and threads.isdigit() and int(threads) > 0:
        from thrift_cli.errors import EmbedError

        try:
            from thrift_cli.minilm_onnx import OnnxMiniLMEmbedder

            return OnnxMiniLMEmbedder(home, threads=int(threads))
        except (ImportError, EmbedError, OSError):
            pass
    from thrift_cli.embed import default_embedder

    return default_embedder(warm=True, home=home)


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
