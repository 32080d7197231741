"""`thrift sync`: push the local mirror's changes to the remote, pull the remote's.

Resumable at any point, because each step is one transaction on one side and the step
that spans both sides leaves a record first:

- a push batch is one remote transaction. Before it commits, the mirror records the
  batch (its rowids and hit deltas) and its id in the remote's push ledger (sync_pushes,
  written in the batch's transaction); after, the batch's rows are marked synced and the
  record dropped, in one local transaction. A sync killed in between finds the record and
  asks the remote to settle it (`Remote.settle`): over Postgres, it waits while the
  batch's transaction is still open (its COMMIT may be in flight), then looks the id up
  in the ledger: there, the batch is finished; absent, the record is dropped and the
  rows go again. Over REST, the batch is sent again with the same id: the ledger makes a
  second copy change nothing. So a hit delta is added to the remote exactly once.
  Entries and tombstones are upserts, idempotent by themselves.
- a pull page is read from the remote, then applied with the position it reached in one
  local transaction; the pull's target snapshot is recorded before the first page, so a
  killed pull resumes at the next page of the same window, and the window becomes the
  cursor only once its last page is applied.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from thrift_sync.errors import SyncError
from thrift_sync.mirror import Mirror, now

if TYPE_CHECKING:
    from thrift_sync.remote import Remote
    from thrift_sync.rest import RestRemote

DEFAULT_BATCH = 2000

Progress = Callable[[str, int, int | None], None]  # (phase, done, total)


@dataclass
class SyncResult:
    """What a sync did (or, with dry_run, would do); `--json` prints it."""

    remote: str = ""
    tenant: str = ""
    pushed: int = 0  # entries written to the remote (new answers, hit counts)
    forgotten: int = 0  # tombstones pushed (local forgets)
    pulled: int = 0  # entries written here from the remote
    merged: int = 0  # entries here whose hit count alone changed
    deleted: int = 0  # entries deleted here by the remote's tombstones or expiry
    resumed: list[str] = field(default_factory=list)  # what an interrupted sync left, finished
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def moved(self) -> int:
        return self.pushed + self.forgotten + self.pulled + self.merged + self.deleted

    @property
    def per_second(self) -> float:
        return self.moved / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "entries_per_s": round(self.per_second)}


def batch_size(most: int | None = None) -> int:
    """THRIFT_SYNC_BATCH: entries per push transaction and per pull page; at most `most`
    (what one request to the remote may carry)."""
    raw = os.environ.get("THRIFT_SYNC_BATCH")
    size = int(raw) if raw and raw.isdigit() and int(raw) > 0 else DEFAULT_BATCH
    return min(size, most) if most else size


def _fault(point: str) -> None:
    """THRIFT_SYNC_FAULT=point[:n]: SIGKILL this process the nth time it reaches `point`
    (push-before-commit, push-after-commit, pull-after-page). The tests' deterministic
    kills, at the moments a random kill rarely hits; unset, it costs one lookup."""
    wanted = os.environ.get("THRIFT_SYNC_FAULT")
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    count = _fault_counts[point] = _fault_counts.get(point, 0) + 1
    if count >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_fault_counts: dict[str, int] = {}


class _SyncLock:
    """One sync at a time per THRIFT_HOME: an flock the kernel drops if the holder dies."""

    def __init__(self, home: Path) -> None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(home / "sync.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> _SyncLock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def sync(
    db_path: Path,
    url: str,
    api_key: str | None,
    *,
    push: bool = True,
    pull: bool = True,
    dry_run: bool = False,
    batch: int | None = None,
    progress: Progress | None = None,
    rest_key: str | None = None,
    locked: Callable[[], None] | None = None,
) -> SyncResult:
    """Sync the cache file at `db_path` with the remote at `url`, as `api_key`'s tenant:
    a Postgres URL, or with `rest_key` (SUPABASE_KEY) a Supabase project's URL, reached
    through its REST API. The remote is reached (and checked) before the cache file is
    opened: when it cannot be, nothing local changes. `locked` is called once this sync
    holds the home's sync lock, before it reads anything (the background push's queue,
    background.py)."""
    started = time.monotonic()
    remote = open_remote(url, api_key, rest_key)
    batch = batch or batch_size(remote.max_batch)
    result = SyncResult(remote=remote.where, tenant=remote.tenant, dry_run=dry_run)
    try:
        with _SyncLock(db_path.parent):
            if locked:
                locked()
            from thrift_cli import privacy

            # Nothing private leaves the machine: questions go scrubbed like the answers
            # were; their keys and vectors, from the raw text, go as they are.
            mirror = Mirror(db_path, scrubber=privacy.configured(db_path.parent))
            try:
                if dry_run:
                    _dry_run(mirror, remote, result, push=push, pull=pull)
                else:
                    _adopt_remote(mirror, remote)
                    _resolve_pending(mirror, remote, result)
                    if push:
                        _push(mirror, remote, batch, result, progress)
                    if pull:
                        _pull(mirror, remote, batch, result, progress)
            finally:
                mirror.close()
    except remote.errors as exc:
        raise SyncError(
            f"lost the remote {remote.where} ({remote.reason(exc)}); nothing is lost: run thrift sync again"
        ) from None
    finally:
        remote.close()
    result.seconds = time.monotonic() - started
    return result


def open_remote(url: str, api_key: str | None, rest_key: str | None = None) -> Remote | RestRemote:
    """The remote at `url`: over REST when a Supabase key is given, else over Postgres."""
    if rest_key is not None:
        from thrift_sync.rest import RestRemote

        return RestRemote(url, rest_key, api_key)
    from thrift_sync.remote import Remote

    return Remote(url, api_key)


def _dry_run(
    mirror: Mirror, remote: Remote | RestRemote, result: SyncResult, *, push: bool, pull: bool
) -> None:
    if push:
        result.pushed, result.forgotten = mirror.count_unpushed(now())
    if pull:
        same = mirror.state("remote") == remote.identity
        result.pulled = remote.count_changes(mirror.state("pull_cursor") if same else None)


def _adopt_remote(mirror: Mirror, remote: Remote | RestRemote) -> None:
    """A cursor belongs to one remote and tenant: another one starts with a full pull."""
    if mirror.state("remote") != remote.identity:
        mirror.set_state(remote=remote.identity, pull_cursor=None, pull_target=None, pull_after=None)


def _resolve_pending(mirror: Mirror, remote: Remote | RestRemote, result: SyncResult) -> None:
    """Finish or drop the push batch an interrupted sync left (see the module's doc)."""
    pending = mirror.pending()
    if pending is None:
        return
    if pending.get("remote") != remote.identity:
        mirror.drop_pending()  # another remote's transaction: its rows go again, here
        return
    if remote.settle(pending, mirror):
        mirror.finish_push(pending)
        remote.forget_batch(pending["batch_id"])
        result.resumed.append(f"push batch {pending['batch_id']} (committed)")
    else:
        mirror.drop_pending()
        result.resumed.append(f"push batch {pending['batch_id']} (not committed: sent again)")


def _push(
    mirror: Mirror, remote: Remote | RestRemote, batch: int, result: SyncResult, progress: Progress | None
) -> None:
    """Each batch's entries and tombstones, in one remote transaction each. Rows come in
    rowid order past the last batch, so a row that gathers hits while the sync runs waits
    for the next sync instead of keeping this one going."""
    entries, tombs = mirror.count_unpushed(now())
    total, done, after_row, after_hash = entries + tombs, 0, 0, ""
    while True:
        rows = mirror.unpushed(batch, now(), after=after_row)
        gone = mirror.tombstones(batch - len(rows), after=after_hash) if len(rows) < batch else []
        if not rows and not gone:
            return

        batch_id = str(uuid.uuid4())

        def record(xid: str, rows: list = rows, gone: list = gone, batch_id: str = batch_id) -> None:  # type: ignore[type-arg]
            mirror.record_pending(remote.identity, batch_id, xid, rows, gone)
            _fault("push-before-commit")

        remote.push(batch_id, rows, gone, record)
        _fault("push-after-commit")
        pending = mirror.pending()
        assert pending is not None
        mirror.finish_push(pending)
        remote.forget_batch(batch_id)
        result.pushed += len(rows)
        result.forgotten += len(gone)
        if rows:
            after_row = rows[-1].rowid
        if gone:
            after_hash = gone[-1].question_hash
        done += len(rows) + len(gone)
        if progress:
            progress("push", done, max(total, done))


def _pull(
    mirror: Mirror, remote: Remote | RestRemote, batch: int, result: SyncResult, progress: Progress | None
) -> None:
    cursor = mirror.state("pull_cursor")
    target = mirror.state("pull_target")
    after = mirror.state("pull_after")
    if target is None:  # a new pull; else the interrupted one goes on from its last page
        target, after = remote.snapshot(), None
        mirror.set_state(pull_target=target, pull_after=None)
    else:
        result.resumed.append("pull")
    total = remote.count_changes(cursor) if progress else None
    done = 0
    while True:
        rows = remote.pull_page(cursor, target, after, batch)
        if not rows:
            break
        after = [rows[-1].changed_xid, rows[-1].id]
        applied = mirror.apply(rows, {"pull_after": after}, now())
        result.pulled += applied.pulled
        result.merged += applied.merged
        result.deleted += applied.deleted
        done += len(rows)
        _fault("pull-after-page")
        if progress:
            progress("pull", done, total)
    mirror.set_state(pull_cursor=target, pull_target=None, pull_after=None)
