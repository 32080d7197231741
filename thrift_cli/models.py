"""The values thrift passes around: entries, hits, candidates and lookup events."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

Tier = Literal["exact", "semantic"]


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer."""

    namespace: str
    question: str
    question_hash: str
    answer: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    last_hit_at: float | None = None
    hit_count: int = 0
    expires_at: float | None = None
    # The question as the shared tiers get it, PII scrubbed, from the store that scrubbed
    # the answer (privacy.py); never kept locally, where the question stays raw.
    shared_question: str | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Candidate:
    """An entry found by the semantic search, with its cosine similarity to the query."""

    entry: CacheEntry
    similarity: float


@dataclass(frozen=True)
class CacheHit:
    """A lookup that found an answer: which tier served it and how close it was."""

    answer: str
    tier: Tier
    similarity: float
    entry: CacheEntry
    latency_ms: float
    source: str = "local"  # the tier that held the entry: local | redis | memory | remote...

    @property
    def question(self) -> str:
        """The stored question whose answer was served."""
        return self.entry.question


@dataclass(frozen=True)
class Veto:
    """A candidate close enough to be served that a guard, or the verifier, refused."""

    question: str
    similarity: float
    guard: str  # a guard's name (guards.GUARDS), or "verifier"
    score: float | None = None  # the verifier's, when it was the one


@dataclass(frozen=True)
class Verdict:
    """What the verifier said of the candidate it read with the query."""

    score: float  # the probability that one answer serves both
    threshold: float  # served from this score on
    served: bool


@dataclass(frozen=True)
class Lookup:
    """Everything one lookup learned: the hit (if any) and the best candidate seen."""

    namespace: str
    question_hash: str
    hit: CacheHit | None
    best: Candidate | None
    latency_ms: float
    vetoes: tuple[Veto, ...] = ()
    question: str | None = None  # the question asked (recorded with its vetoes)
    verdict: Verdict | None = None  # the verifier's, when it read a candidate


@dataclass(frozen=True)
class Event:
    """One row of the events table: every lookup records one."""

    namespace: str
    tier: str  # exact | semantic | miss
    latency_ms: float
    similarity: float | None = None
    answer_bytes: int | None = None
    call_ms: float | None = None
    outcome: str | None = None
    entry_id: str | None = None
    question_hash: str | None = None
    at: float = field(default_factory=time.time)
    source: str | None = None  # of a hit: the tier that held the entry (CacheHit.source)
    question: str | None = None  # the question asked (events.question: sql/sqlite/0005_feed.sql)
    vetoes: tuple[Veto, ...] = ()  # candidates a guard refused in this lookup (table vetoes)
