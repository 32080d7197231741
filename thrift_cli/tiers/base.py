"""The tier interface: exact lookup and store are required, the rest are abilities."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, Any

from thrift_cli.models import CacheEntry, Candidate, Event, Lookup

if TYPE_CHECKING:
    import numpy as np


def print_warning(message: str) -> None:
    """How a shared tier says it is failing (once per process): one `thrift:` line."""
    print(f"thrift: warning: {message}", file=sys.stderr)


class Tier(ABC):
    """A place answers are kept. The cache asks its tiers in `order` (shared exact tiers
    such as Redis first, then the local tier, then remote ones), stops at the first hit,
    and writes a miss's answer to all of them.

    One tier of a cache is its local tier: the source of truth for hit counts, events
    and facts (`claim_meta`). The others are shared: a failure there is the tier's own
    business (it warns and misses), never the caller's.
    """

    name: str = "tier"
    # Lookup order: 0 before the local tier (Redis), 1 the local tier, 2 after (a remote).
    order: int = 1
    # Whether `search` can find paraphrases; a tier without it is asked by exact key only,
    # and stores no vectors (`store` is passed None).
    semantic: bool = True
    # Why the tier can be read but not written (a read-only cache file), else None:
    # stores then fail and events are not kept.
    read_only: str | None = None

    @abstractmethod
    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        """The live entry whose exact key is `question_hash`, if any."""

    @abstractmethod
    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        """Keep `entry`. If its key is taken, keep the old one (or replace it) and return
        the entry that is now stored."""

    def store_many(
        self, items: list[tuple[CacheEntry, np.ndarray]], *, replace: bool = False
    ) -> list[CacheEntry]:
        """Store several entries; a tier that can should do it in one transaction."""
        return [self.store(entry, vector, replace=replace) for entry, vector in items]

    def search(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        """Up to `k` live entries of `namespace`, most similar first. Default: no index."""
        return []

    def entry(self, entry_id: str) -> CacheEntry | None:
        """The entry with this id, live or expired, if this tier can find one by id."""
        return None

    def delete(self, entry_id: str) -> bool:
        """Remove an entry; True if it existed."""
        return False

    def remove(self, entry: CacheEntry) -> bool:
        """Remove `entry`, found by whatever this tier keys on (its id; Redis: its exact
        key); True if it was there."""
        return self.delete(entry.id)

    def explain_text(
        self, namespace: str, question: str, min_similarity: float, verify: bool = True
    ) -> Lookup | None:
        """A whole lookup of a question not yet embedded, done by a tier that can embed
        it itself (the local store reached through `thrift helper`, which has the model
        loaded), so the caller loads no model; None: the caller embeds and calls search.
        `verify`: whether the verifier reads the candidate."""
        return None

    def store_text(
        self, entry: CacheEntry, *, replace: bool = False, scrub: dict[str, Any] | None = None
    ) -> CacheEntry | None:
        """`store` for an entry whose question is not yet embedded, by a tier that can
        embed it itself, scrubbing its answer with `scrub` (privacy.Scrubber.spec(); None:
        as it is); None: the caller embeds it, scrubs it and calls `store`."""
        return None

    def mirror(self, entry: CacheEntry, vector: np.ndarray) -> CacheEntry:
        """Keep a copy of an entry another tier holds (a remote hit). The local store
        writes it as already in step with the remote, so sync neither pushes it back nor
        counts its hits twice; other tiers simply store it."""
        return self.store(entry, vector)

    def vector(self, entry: CacheEntry) -> np.ndarray | None:
        """The embedding of an entry this tier returned, if it has it at hand (the remote
        sends it with each match), for writing a hit back into the semantic tiers."""
        return None

    def touch(self, entry: CacheEntry, now: float) -> None:
        """Count a hit on an entry."""

    def record(self, event: Event) -> None:
        """Keep a lookup event for the metrics. Default: dropped."""

    def last_event_id(self) -> int | None:
        """The id of the newest recorded event; None: this tier keeps no events."""
        return None

    def calls_since(self, question_hash: str, event_id: int) -> list[Event]:
        """Recorded misses of `question_hash` after event `event_id` that ran a call."""
        return []

    def record_hit(self, entry: CacheEntry, event: Event) -> None:
        """Count a hit on an entry and record its event."""
        self.touch(entry, event.at)
        self.record(event)

    def claim_meta(self, key: str, value: str) -> str:
        """Set a fact about the tier's contents unless set; return the stored value."""
        return value

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> Tier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EmptyTier(Tier):
    """A local tier that holds nothing and writes nothing: `thrift ask --lookup-only` on
    a machine with no cache file yet asks the shared tiers through it, creating no file."""

    name = "local"
    semantic = False  # nothing to search, and no model to load for it

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        return None

    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        raise ValueError("the empty tier stores nothing")
