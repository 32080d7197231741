"""Scrubbing a miss's answer after `thrift ask` has exited: the pending queue and its worker.

Presidio and spaCy take ~5 s to load in a fresh process, so a `thrift ask` that must
scrub its answer, with no helper running to do it warm, does not store the answer
itself. Once the answer is on stdout, and still inside its single-flight lock, it writes
the miss to `$THRIFT_HOME/pending/KEY.json` (one file per question, written atomically,
mode 0600; the raw answer never leaves this directory), starts the worker unless one
runs, and exits. The worker (`python -m thrift_cli.scrub_queue HOME`, a session of its
own, output to pending/worker.log) scrubs and stores each pending miss through the same
engine as the ask (the local file, then the shared tiers), records the miss's event as
the ask would have, deletes the file, and exits when none is left.

- Nothing is lost: a file goes only once its entry is stored (or cannot be, said in the
  log); one a worker left behind, dying, is stored by the next, which any later
  deferred miss starts.
- Nothing is asked twice: an ask that misses, inside its lock, waits for the misses
  pending then to be stored (up to WAIT_SECONDS) and looks up again, so the same
  question or a paraphrase of it is served the stored entry; the worker needs no lock
  the ask holds.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrift_cli.cache import Query, SemanticCache
    from thrift_cli.models import Lookup

DIRECTORY = "pending"
LOCK = "worker.lock"
LOG = "worker.log"
WAIT_SECONDS = 30.0  # how long an ask waits for a pending answer of its question


def directory(home: Path) -> Path:
    return home / DIRECTORY


def _file(home: Path, key: str) -> Path:
    return directory(home) / (key.replace(":", "-") + ".json")


def pending(home: Path) -> list[Path]:
    """The misses waiting to be scrubbed and stored, oldest first."""
    try:
        files = [p for p in directory(home).glob("*.json") if p.is_file()]
    except OSError:
        return []
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def defer(
    cache: SemanticCache,
    query: Query,
    answer: str,
    look: Lookup,
    *,
    ttl: float | None,
    replace: bool,
    call_ms: float,
    answer_bytes: int,
) -> None:
    """Queue the miss for the worker, and make sure one runs. Raises OSError when the
    file cannot be written (the caller stores the answer itself then)."""
    from thrift_cli.helper import lookup_to_json
    from thrift_cli.home import write_atomically

    assert cache.scrubber is not None and cache.home is not None
    vector = query._vector
    item = {
        "namespace": cache.namespace,
        "question": query.question,
        "answer": answer,
        "ttl": ttl,
        "replace": replace,
        "min_similarity": cache.min_similarity,
        "scrub": cache.scrubber.spec(),
        "vector": None if vector is None else base64.b64encode(vector.astype("<f4").tobytes()).decode(),
        "look": lookup_to_json(look),
        "call_ms": call_ms,
        "answer_bytes": answer_bytes,
        "at": time.time(),
    }
    folder = directory(cache.home)
    folder.mkdir(mode=0o700, exist_ok=True)
    target = _file(cache.home, query.key)

    # mkstemp's file (mode 0600), fsynced and renamed whole: a reader never sees half of it.
    write_atomically(
        folder, lambda tmp: tmp.write_text(json.dumps(item), encoding="utf-8"), lambda _: target.name
    )
    start(cache.home)


def wait_for_queue(home: Path, timeout: float = WAIT_SECONDS) -> bool:
    """Wait (up to `timeout`) for the misses pending now to be stored; whether there were
    any. A miss waits for them before it calls: one of them may answer its question, or a
    paraphrase of it (the worker takes ~1.3 s to start, then ~30 ms a miss)."""
    waiting = pending(home)
    if not waiting:
        return False
    deadline = time.monotonic() + timeout
    for path in waiting:
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return True


def start(home: Path) -> None:
    """Start a worker unless one runs. Never waits for it, never raises."""
    if running(home):
        return
    try:
        log = os.open(directory(home) / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return  # the next deferred miss starts it
    try:
        subprocess.Popen(
            [sys.executable, "-m", "thrift_cli.scrub_queue", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # neither ^C nor a closed terminal stops it
            env={**os.environ, "THRIFT_HOME": str(home)},
        )
    except OSError:
        pass
    finally:
        os.close(log)


def running(home: Path) -> bool:
    try:
        fd = os.open(directory(home) / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


# -- the worker ---------------------------------------------------------------------------


def work(home: Path) -> int:
    """Store every pending miss of `home`; how many were stored. One worker at a time (the
    lock); a file that appears while it ends is picked up before it lets go."""
    stored = 0
    fd = os.open(directory(home) / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        while True:
            files = pending(home)
            if not files:
                break
            progress = False
            for path in files:
                done = _store(home, path)
                stored += done
                progress = progress or done or not path.exists()
            if not progress:
                break  # what is left fails the same way each time: the next worker retries
    finally:
        os.close(fd)
    return stored


def _store(home: Path, path: Path) -> bool:
    """Scrub and store one pending miss, record its event, delete its file."""
    import numpy as np

    from thrift_cli.cache import SemanticCache
    from thrift_cli.errors import ThriftError
    from thrift_cli.helper import lookup_from_json
    from thrift_cli.privacy import PrivacyError, Scrubber

    try:
        item: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False  # another worker took it
    except (OSError, ValueError) as exc:
        _log(f"{path.name}: unreadable, removed: {exc}")
        path.unlink(missing_ok=True)
        return False
    try:
        with SemanticCache(
            item["min_similarity"],
            item["namespace"],
            home,
            memory_index=False,
            scrub=Scrubber.from_spec(item["scrub"]),
        ) as cache:
            query = cache.query(item["question"])
            if item["vector"] is not None:
                query._vector = np.frombuffer(base64.b64decode(item["vector"]), dtype="<f4").copy()
            entry = cache.store(query, item["answer"], ttl=item["ttl"], replace=item["replace"])
            look = lookup_from_json(item["look"])
            cache.record(
                look,
                outcome="stored",
                call_ms=item["call_ms"],
                answer_bytes=item["answer_bytes"],
                entry_id=entry.id,
                at=item["at"],
            )
    except PrivacyError as exc:
        # It may not be stored raw: the user asked for it scrubbed.
        _log(f"{path.name}: not stored, the scrubber cannot run: {exc}")
        path.unlink(missing_ok=True)
        return False
    except ThriftError as exc:
        _log(f"{path.name}: not stored yet: {exc}")
        return False
    path.unlink(missing_ok=True)
    _push(home)
    return True


def _push(home: Path) -> None:
    from thrift_cli import push_on_store
    from thrift_cli.errors import ThriftError

    try:
        if push_on_store.wanted(home):
            push_on_store.start(home)
    except ThriftError:
        pass


def _log(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} thrift scrub worker: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    work(Path(sys.argv[1]))
