"""The tier interface: exact lookup and store are required, the rest are abilities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING

from thrift_cli.models import CacheEntry, Candidate, Event

if TYPE_CHECKING:
    import numpy as np


class Tier(ABC):
    """A place answers are kept. The cache asks tiers in order and writes to all of them."""

    name: str = "tier"
    # Why the tier can be read but not written (a read-only cache file), else None:
    # stores then fail and events are not kept.
    read_only: str | None = None

    @abstractmethod
    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        """The live entry whose exact key is `question_hash`, if any."""

    @abstractmethod
    def store(self, entry: CacheEntry, vector: np.ndarray, *, replace: bool = False) -> CacheEntry:
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

    def delete(self, entry_id: str) -> bool:
        """Remove an entry; True if it existed."""
        return False

    def touch(self, entry_id: str, now: float) -> None:
        """Count a hit on an entry."""

    def record(self, event: Event) -> None:
        """Keep a lookup event for the metrics. Default: dropped."""

    def last_event_id(self) -> int | None:
        """The id of the newest recorded event; None: this tier keeps no events."""
        return None

    def calls_since(self, question_hash: str, event_id: int) -> list[Event]:
        """Recorded misses of `question_hash` after event `event_id` that ran a call."""
        return []

    def record_hit(self, entry_id: str, event: Event) -> None:
        """Count a hit on an entry and record its event."""
        self.touch(entry_id, event.at)
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
