"""An in-process tier: a dict for exact keys and a numpy matrix for cosine search.

It keeps nothing across processes. Applications use it for a per-process cache, and the
tests use it as the reference tier (httpx ships MockTransport the same way).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from thrift_cli.models import CacheEntry, Candidate, Event
from thrift_cli.tiers.base import Tier


class MemoryTier(Tier):
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}  # by question_hash
        self._vectors: dict[str, np.ndarray] = {}  # by entry id
        self.events: list[Event] = []

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        entry = self._entries.get(question_hash)
        return None if entry is None or entry.expired(now) else entry

    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        if vector is None:
            raise ValueError("the memory tier searches by vector: store needs one")
        with self._lock:
            old = self._entries.get(entry.question_hash)
            if old is not None and not replace:
                return old
            if old is not None:
                self._vectors.pop(old.id, None)
            self._entries[entry.question_hash] = entry
            self._vectors[entry.id] = np.asarray(vector, dtype=np.float32)
            return entry

    def search(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        with self._lock:
            live = [e for e in self._entries.values() if e.namespace == namespace and not e.expired(now)]
            if not live:
                return []
            matrix = np.stack([self._vectors[e.id] for e in live])
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        top = np.argsort(-scores)[:k]
        return [Candidate(live[i], float(scores[i])) for i in top]

    def entry(self, entry_id: str) -> CacheEntry | None:
        return next((e for e in self._entries.values() if e.id == entry_id), None)

    def delete(self, entry_id: str) -> bool:
        with self._lock:
            for key, entry in self._entries.items():
                if entry.id == entry_id:
                    del self._entries[key]
                    self._vectors.pop(entry_id, None)
                    return True
        return False

    def touch(self, entry: CacheEntry, now: float) -> None:
        with self._lock:
            for key, held in self._entries.items():
                if held.id == entry.id:
                    self._entries[key] = dataclasses.replace(
                        held, hit_count=held.hit_count + 1, last_hit_at=now
                    )
                    return

    def record(self, event: Event) -> None:
        self.events.append(event)
