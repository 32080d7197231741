"""The warm helper: one long-lived process that keeps the model and the indexes loaded.

A cold `thrift ask` that misses the exact tier must import numpy and load the model
(~0.2 s) before it can search. When `thrift helper` is running, it asks the helper
instead, over a Unix socket in `THRIFT_HOME` (mode 0600): one JSON line there, one back.
The helper runs the same `SemanticCache.explain` and `store` on the same SQLite file, so
answers are the same with or without it. Any failure (no helper, a dead one, a slow one)
makes the client return None and `thrift ask` does the work itself. A helper that
timed out (hung, stopped with SIGSTOP) is skipped by every client of the home for a
minute (`HUNG_NAME`), so only one ask a minute pays the timeout.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from thrift_cli.models import CacheEntry, CacheHit, Candidate, Lookup, Verdict, Veto

SOCKET_NAME = "helper.sock"
LOCK_NAME = "helper.lock"
# Touched when a client gave up waiting for the helper: every client of the home skips
# the helper until it is RETRY_HUNG_S old; then the first to see that tries again.
# A helper that starts removes it.
HUNG_NAME = "helper.hung"
RETRY_HUNG_S = 60.0
# Bumped when a request or reply changes: a helper left running across an upgrade is
# then ignored, not misread.
PROTOCOL = 3  # 2: store carries the scrubber's options; 3: explain, the verifier's
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
        self._hung = path.with_name(HUNG_NAME)
        self._retrying = False
        self._gave_up = False  # this process asks a failed helper nothing more

    @classmethod
    def find(cls, home: Path) -> HelperClient | None:
        path = socket_path(home)
        return cls(path) if path.exists() else None

    def explain(
        self, namespace: str, question: str, min_similarity: float | None, verify: bool = True
    ) -> Lookup | None:
        request = {"op": "explain", "namespace": namespace, "question": question, "min": min_similarity}
        reply = self._call({**request, "verify": verify})
        try:
            look = lookup_from_json(reply["lookup"]) if reply else None
        except (KeyError, TypeError, ValueError):
            return None  # a helper from another thrift version: do the work here
        return look if look is not None and look.namespace == namespace else None

    def store(
        self,
        namespace: str,
        question: str,
        answer: str,
        ttl: float | None,
        replace: bool,
        scrub: dict[str, Any] | None = None,
    ) -> CacheEntry | None:
        request = {"op": "store", "namespace": namespace, "question": question, "answer": answer}
        reply = self._call({**request, "ttl": ttl, "replace": replace, "scrub": scrub})
        try:
            entry = CacheEntry(**reply["entry"]) if reply else None
        except (KeyError, TypeError, ValueError):
            return None
        return entry if entry is not None and entry.namespace == namespace else None

    def _call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if self._gave_up or self._recently_hung():
            return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                if not _same_user(s):
                    return None  # never send a question to, or trust an answer from, another user
                s.sendall(json.dumps({**request, "version": PROTOCOL}).encode() + b"\n")
                reply = json.loads(_read_line(s, time.monotonic() + self.timeout))
        except TimeoutError:
            self._gave_up = True
            _touch(self._hung)  # a hung helper: the next minute of asks skip it
            return None
        except (ConnectionRefusedError, FileNotFoundError):
            self._gave_up = True
            _remove_stale_socket(self.path)  # a dead helper: later asks need not connect
            return None
        except (OSError, ValueError):
            return None  # a helper that failed this request: the caller does the work
        if self._retrying:
            self._hung.unlink(missing_ok=True)  # it answers again
            self._retrying = False
        ok = isinstance(reply, dict) and reply.get("ok") and reply.get("version") == PROTOCOL
        return reply if ok else None

    def _recently_hung(self) -> bool:
        """Whether a client timed out on the helper less than RETRY_HUNG_S ago. The first
        client to find the mark older tries again, and renews the mark first, so the
        others keep skipping the helper while it waits."""
        try:
            age = time.time() - self._hung.stat().st_mtime
        except OSError:
            return False  # the usual case: no mark
        if 0 <= age < RETRY_HUNG_S:
            return True
        _touch(self._hung)
        self._retrying = True
        return False


def _touch(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.utime(path)
    except OSError:
        pass  # a read-only home: every ask then pays the timeout, nothing worse


def _remove_stale_socket(path: Path) -> None:
    """Remove the socket of a helper that died (killed, crashed), and only then: a live
    helper holds LOCK_NAME for its whole life, including while it starts, before it
    binds its socket; while we hold the lock, none can bind one."""
    import fcntl

    try:
        fd = os.open(path.with_name(LOCK_NAME), os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a helper holds it (starting up), or the home is read-only: leave it
    finally:
        os.close(fd)


def _same_user(s: socket.socket) -> bool:
    """Whether the process at the other end of `s` runs as this user (Linux; elsewhere the
    socket's 0600 mode in a 0700 directory is the only check)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _read_line(s: socket.socket, deadline: float) -> bytes:
    chunks = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
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
    from thrift_cli.errors import ThriftError

    path = socket_path(home)
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ThriftError(f"cannot use {home}: {exc.strerror or exc}") from None
    if not _lock_for_life(lock):
        os.close(lock)
        raise ThriftError(f"a helper is already running on {path}")
    try:
        _serve(home, path, ready)
    finally:
        os.close(lock)


def _lock_for_life(fd: int) -> bool:
    """Take the helper lock, held for the helper's lifetime. A client that found a dead
    helper's socket holds it for an instant (`_remove_stale_socket`): a lock still held
    after a second belongs to a running helper."""
    import fcntl

    deadline = time.monotonic() + 1.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


class _Caches:
    """The helper's model, loaded once, and its store, opened for each request and closed
    after it, as a one-shot `thrift ask` does. A helper that kept the file open would keep
    its `-wal` and `-shm` under their names: SQLite finds them by name, so after a `mv`,
    `cp` or `rm` of `cache.db` every other process would read the old file's WAL frames
    over the new file and checkpoint them into it. Closed, the last connection removes
    them. The store keeps its in-memory indexes across reopens only while the file is
    provably the same (`SQLiteStore.reopen`)."""

    def __init__(self, home: Path) -> None:
        from thrift_cli.embed import default_embedder
        from thrift_cli.home import db_path
        from thrift_cli.store import SQLiteStore

        self.store = SQLiteStore(db_path(home), memory_index=True)  # a bad file fails here
        self.store.close()
        self.embedder = default_embedder(warm=True, home=home)

    @contextmanager
    def opened(self) -> Iterator[Callable[[str], Any]]:
        """The file, open for one request: yields the cache of a namespace."""
        from thrift_cli.cache import SemanticCache

        try:
            self.store.reopen()
            # The local tiers only: Redis is the asking process's to use.
            yield lambda namespace: SemanticCache(
                namespace=namespace, tier=self.store, shared=(), embedder=self.embedder, scrub=False
            )
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()


def _serve(home: Path, path: Path, ready: Callable[[Path], None] | None) -> None:
    from thrift_cli.errors import ThriftError

    path.unlink(missing_ok=True)  # left by a helper that was killed: we hold the lock
    caches = _Caches(home)
    caches.embedder.embed(["warm up"])  # load the model before a client waits
    _warm_scrubber(home)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is created 0600: only its owner may ask
    try:
        server.bind(str(path))
    except OSError as exc:  # e.g. a path longer than a Unix socket's ~107 bytes
        caches.close()
        raise ThriftError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    bound = os.stat(path).st_ino
    server.listen(64)
    (home / HUNG_NAME).unlink(missing_ok=True)  # clients skipping a hung predecessor: ask us
    if ready is not None:
        ready(path)
    try:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(TIMEOUT_S)
                try:
                    if not _same_user(conn):
                        continue
                    request = json.loads(_read_line(conn, time.monotonic() + TIMEOUT_S))
                    with caches.opened() as cache_for:
                        reply = _handle(request, cache_for)
                except ThriftError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                    reply = {"ok": False, "error": f"bad request: {exc}"}
                try:
                    conn.sendall(
                        json.dumps({**reply, "version": PROTOCOL}, ensure_ascii=False).encode() + b"\n"
                    )
                except OSError:
                    pass  # the client gave up; it does the work itself
    finally:
        server.close()
        try:
            if os.stat(path).st_ino == bound:  # still ours, not a successor's
                path.unlink()
        except OSError:
            pass
        caches.close()


def _warm_scrubber(home: Path) -> None:
    """Load Presidio before a client waits, when its asks scrub (the default): a store that
    waited for the load would time out, and the ask would queue its answer instead."""
    from thrift_cli import privacy
    from thrift_cli.errors import ThriftError

    try:
        scrubber = privacy.configured(home)
        if scrubber is not None:
            scrubber.scrub("Warm up for Ana at ana@example.org.")
    except ThriftError:
        pass  # each store says what is wrong, or the ask queues its answer


def _handle(request: dict[str, Any], cache_for: Callable[[str], Any]) -> dict[str, Any]:
    op = request["op"]
    if request.get("version") != PROTOCOL:
        return {"ok": False, "error": "another thrift version"}
    if op == "ping":  # `thrift doctor` compares the helper's version with its own
        from thrift_cli import __version__

        return {"ok": True, "thrift": __version__}
    cache = cache_for(request["namespace"])
    if op == "explain":
        look = cache.explain(request["question"], min_similarity=request["min"], verify=request["verify"])
        return {"ok": True, "lookup": lookup_to_json(look)}
    if op == "store":
        from thrift_cli.privacy import Scrubber

        # The asking process's scrubbing, done here where the engines stay loaded.
        spec = request["scrub"]
        cache.scrubber = None if spec is None else Scrubber.from_spec(spec)
        entry = cache.store(
            request["question"], request["answer"], ttl=request["ttl"], replace=request["replace"]
        )
        if cache.scrubber is not None:  # for the asking process's shared tiers (Redis)
            entry = replace(entry, shared_question=cache.for_sharing(entry).question)
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
        question=data.get("question"),
        verdict=None if data["verdict"] is None else Verdict(**data["verdict"]),
    )
