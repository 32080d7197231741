"""The local store, reached through a running `thrift helper` for what needs the model.

A cold `thrift ask` that misses the exact tier would import numpy and load the model
(~0.2 s) before it could search. When a helper is running, this tier hands it the
question instead: the helper embeds, searches and applies the guards on the same file,
and answers in a few milliseconds. Exact lookups, events and hit counts stay in this
process, on the file itself. Whenever the helper cannot answer (none, dead, hung, another
version), `explain_text` and `store_text` return None and the cache does the work itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thrift_cli.helper import HelperClient
from thrift_cli.models import CacheEntry, Candidate, Event, Lookup
from thrift_cli.store import SQLiteStore
from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:
    import numpy as np


class HelperTier(Tier):
    name = "local"

    def __init__(self, store: SQLiteStore, client: HelperClient) -> None:
        self.local, self.client = store, client
        self.read_only = store.read_only

    @classmethod
    def around(cls, store: SQLiteStore) -> Tier:
        """`store`, reached through the helper running on its home if there is one."""
        client = HelperClient.find(store.path.parent)
        return store if client is None else cls(store, client)

    def explain_text(
        self, namespace: str, question: str, min_similarity: float, verify: bool = True
    ) -> Lookup | None:
        return self.client.explain(namespace, question, min_similarity, verify)

    def store_text(
        self, entry: CacheEntry, *, replace: bool = False, scrub: dict[str, Any] | None = None
    ) -> CacheEntry | None:
        ttl = entry.expires_at - entry.created_at if entry.expires_at is not None else None
        return self.client.store(entry.namespace, entry.question, entry.answer, ttl, replace, scrub)

    # -- everything else is the store's --------------------------------------------------

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        return self.local.lookup(question_hash, now)

    def store(self, entry: CacheEntry, vector: np.ndarray | None, *, replace: bool = False) -> CacheEntry:
        return self.local.store(entry, vector, replace=replace)

    def mirror(self, entry: CacheEntry, vector: np.ndarray) -> CacheEntry:
        return self.local.mirror(entry, vector)

    def search(self, namespace: str, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        return self.local.search(namespace, vector, k, now)

    def entry(self, entry_id: str) -> CacheEntry | None:
        return self.local.entry(entry_id)

    def delete(self, entry_id: str) -> bool:
        return self.local.delete(entry_id)

    def record(self, event: Event) -> None:
        self.local.record(event)

    def record_hit(self, entry: CacheEntry, event: Event) -> None:
        self.local.record_hit(entry, event)

    def last_event_id(self) -> int | None:
        return self.local.last_event_id()

    def calls_since(self, question_hash: str, event_id: int) -> list[Event]:
        return self.local.calls_since(question_hash, event_id)

    def claim_meta(self, key: str, value: str) -> str:
        return self.local.claim_meta(key, value)

    def close(self) -> None:
        self.local.close()
