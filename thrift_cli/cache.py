"""The cache engine: a chain of tiers asked in order, then a miss.

`SemanticCache` is the Python API (compatible with ThriftLM's) and the engine that
`thrift ask` drives. The chain is Redis (exact only, when configured), the local store
(exact, then semantic), then any remote tier; the first hit wins. An exact hit reads one
row (or one Redis key) and never loads the model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from thrift_cli import guards as guards_module
from thrift_cli import keys, locks
from thrift_cli.errors import StoreError, UsageError
from thrift_cli.home import db_path
from thrift_cli.models import CacheEntry, CacheHit, Candidate, Event, Lookup, Verdict, Veto
from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:
    import numpy as np

    from thrift_cli.embed import Embedder
    from thrift_cli.privacy import Scrubber
    from thrift_cli.verifier import Verifier

# The cosine a candidate needs before the verifier reads it: chosen with the verifier on
# its calibration pairs (thrift_cli/verifier/card.json, "floor"). Without the verifier the
# cosine decides alone, and the default is issue 3's 0.85.
DEFAULT_MIN_SIMILARITY = 0.70
NO_VERIFIER_MIN_SIMILARITY = 0.85
DEFAULT_NAMESPACE = "default"
# How many nearest entries a search returns. Expired ones are dropped after the search,
# so a few spares keep them from hiding a live entry; the nearest live one decides.
SEARCH_K = 5
# Texts per embedding pass and per write transaction in bulk operations.
EMBED_BATCH = 256


def check_min_similarity(value: float) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value <= 1.0:
        raise UsageError(f"min_similarity must be in (0, 1], got {value!r}")
    return float(value)


def check_ttl(value: float | None) -> float | None:
    if value is not None and (not isinstance(value, (int, float)) or math.isnan(value) or value <= 0):
        raise UsageError(f"ttl must be a positive number of seconds, got {value!r}")
    return value


def storable(answer: object) -> bool:
    """A non-empty string that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(answer, str) or not answer.strip():
        return False
    try:
        answer.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_question(question: object) -> str:
    """The question as it is looked up and stored: stripped, and refused if it is empty
    or not text."""
    if not isinstance(question, str):
        raise UsageError(f"the question must be a string, got {type(question).__name__}")
    cleaned = question.strip()
    if not cleaned:
        raise UsageError("the question is empty")
    if not storable(cleaned):
        raise UsageError("the question is not valid text")
    return cleaned


class Query:
    """A question prepared for lookup: cleaned, keyed, and embedded at most once."""

    def __init__(self, cache: SemanticCache, question: str) -> None:
        self.question = clean_question(question)
        self.namespace = cache.namespace
        self.key = keys.exact_key(self.namespace, self.question)
        self._cache = cache
        self._vector: np.ndarray | None = None

    @property
    def vector(self) -> np.ndarray:
        if self._vector is None:
            self._vector = self._cache.embedder.embed([self.question])[0]
        return self._vector


class SemanticCache:
    """A semantic cache of answers, stored under `home` (default: `THRIFT_HOME`).

    >>> cache = SemanticCache(min_similarity=0.85, namespace="docs")
    >>> cache.get_or_call("What is semantic caching?", call_llm)

    `threshold=` and `api_key=` are ThriftLM's names for `min_similarity` and the
    namespace; the api key itself is never stored, only a hash of it.

    `tier` is the local tier (default: the SQLite store under `home`), which keeps the
    events and hit counts. `shared` are the other tiers of the chain (default: those
    the settings configure: Redis when `REDIS_URL` or `redis_url` in config.toml is
    set); `shared=()` keeps the cache local. Given with `tier`, `home` is where lock
    files go, so processes sharing a home share single flight.
    """

    def __init__(
        self,
        min_similarity: float | None = None,
        namespace: str | None = None,
        home: str | Path | None = None,
        *,
        threshold: float | None = None,
        api_key: str | None = None,
        ttl: float | None = None,
        tier: Tier | None = None,
        shared: Sequence[Tier] | None = None,
        embedder: Embedder | None = None,
        memory_index: bool = True,
        guards: bool | Callable[[str, str], str | None] = True,
        scrub: bool | Scrubber | None = None,
        verify: bool | Verifier | None = None,
    ) -> None:
        if min_similarity is not None and threshold is not None and min_similarity != threshold:
            raise UsageError("min_similarity and threshold are the same setting; pass one")
        chosen = min_similarity if min_similarity is not None else threshold
        if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
            raise UsageError(f"the namespace must be a non-empty string, got {namespace!r}")
        self.namespace = namespace or (keys.api_key_namespace(api_key) if api_key else DEFAULT_NAMESPACE)
        self.ttl = check_ttl(ttl)
        if tier is None:
            from thrift_cli.store import SQLiteStore

            path = db_path(home)
            tier = SQLiteStore(path, memory_index=memory_index)
            self._home: Path | None = path.parent
        else:
            self._home = Path(home).expanduser() if home is not None else None
        self._lock_dir = self._home / "locks" if self._home is not None else None
        self._warm = memory_index
        self.tier = tier
        if shared is None:
            from thrift_cli.tiers import configured

            shared = configured(self._home)
        # The chain, in lookup order (Tier.order; the local tier between the shared ones).
        self.tiers: list[Tier] = sorted([tier, *shared], key=lambda t: t.order)
        # False-hit guards (thrift_cli/guards.py), or your own veto(query, candidate) -> name.
        self.guards = bool(guards)
        self._veto = guards if callable(guards) else guards_module.veto
        # The verifier (thrift_cli/verifier/) reads a candidate that passed the guards with
        # the query; None follows the `verify` setting. It loads on the first candidate.
        if verify is None:
            from thrift_cli import config

            verify = bool(config.value("verify", home=self._home))
        self.verify = bool(verify)
        self._verifier: Verifier | None = None if isinstance(verify, bool) else verify
        if chosen is None:
            chosen = DEFAULT_MIN_SIMILARITY if self.verify else NO_VERIFIER_MIN_SIMILARITY
        self.min_similarity = check_min_similarity(chosen)
        self._embedder = embedder
        self._model_checked = False
        # PII scrubbing of stored answers (privacy.py): None follows the `scrub` settings.
        if scrub is None or scrub is True:
            from thrift_cli import privacy

            self.scrubber: Scrubber | None = (
                privacy.configured(self._home) if scrub is None else privacy.Scrubber()
            )
        else:
            self.scrubber = scrub or None

    @property
    def home(self) -> Path | None:
        """Where the cache's lock files (and queue, scrub_queue.py) live; None: nowhere."""
        return self._home

    # -- the embedder, loaded only when a lookup gets past the exact tier ----------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from thrift_cli.embed import default_embedder

            self._embedder = default_embedder(warm=self._warm, home=self._home)
        if not self._model_checked:
            model = f"{self._embedder.name}/{self._embedder.dim}"
            stored = self.tier.claim_meta("embedding_model", model)
            if stored != model:
                raise StoreError(
                    f"this cache's vectors come from {stored}, not {model}; use another THRIFT_HOME"
                )
            self._model_checked = True
        return self._embedder

    # -- the API -----------------------------------------------------------------------

    def query(self, question: str) -> Query:
        return Query(self, question)

    def queries(self, questions: list[str]) -> list[Query]:
        """Prepare many questions at once: one batched embedding pass for all of them."""
        prepared = [Query(self, q) for q in questions]
        for start in range(0, len(prepared), EMBED_BATCH):
            chunk = prepared[start : start + EMBED_BATCH]
            for query, vector in zip(chunk, self.embedder.embed([q.question for q in chunk]), strict=True):
                query._vector = vector
        return prepared

    def lookup(self, question: str | Query) -> CacheHit | None:
        """The cached answer for `question` or a paraphrase of it, else None. Records an event."""
        look = self.explain(question)
        self.record(look, outcome=None if look.hit else "lookup")
        return look.hit

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            from thrift_cli import verifier

            self._verifier = verifier.shared()
        return self._verifier

    def explain(
        self, question: str | Query, *, min_similarity: float | None = None, verify: bool | None = None
    ) -> Lookup:
        """Look up without recording: the hit, or the best candidate that fell short.
        Each tier is asked by exact key, then (if it can) for paraphrases; the first hit
        ends the lookup. `verify` overrides the cache's for this lookup."""
        query = question if isinstance(question, Query) else self.query(question)
        floor = self.min_similarity if min_similarity is None else check_min_similarity(min_similarity)
        verify = self.verify if verify is None else verify
        start, now = time.perf_counter(), time.time()
        best: Candidate | None = None
        vetoes: list[Veto] = []
        verdict = None
        hit = None
        for tier in self.tiers:
            entry = tier.lookup(query.key, now)
            if entry is not None:
                hit = CacheHit(entry.answer, "exact", 1.0, entry, _ms(start), tier.name)
            elif tier.semantic:
                hit, near, vetoed, said = self._search(tier, query, floor, verify, now, start)
                vetoes += vetoed
                verdict = said or verdict
                if near is not None and (best is None or near.similarity > best.similarity):
                    best = near
            if hit is not None:
                break
        return Lookup(
            query.namespace, query.key, hit, best, _ms(start), tuple(vetoes), query.question, verdict
        )

    def _search(
        self, tier: Tier, query: Query, floor: float, verify: bool, now: float, start: float
    ) -> tuple[CacheHit | None, Candidate | None, list[Veto], Verdict | None]:
        """One tier's semantic lookup: (the hit, the nearest candidate, the vetoes, the
        verifier's verdict)."""
        if query._vector is None:
            # A tier that embeds by itself (the local store through `thrift helper`)
            # spares this process the model.
            done = tier.explain_text(query.namespace, query.question, floor, verify)
            if done is not None and done.namespace == query.namespace:
                hit = dataclasses.replace(done.hit, source=tier.name) if done.hit else None
                return hit, done.best, list(done.vetoes), done.verdict
        candidates = tier.search(query.namespace, query.vector, SEARCH_K, now)
        best = candidates[0] if candidates else None
        same = next((c for c in candidates if c.entry.question_hash == query.key), None)
        if same is not None:
            # This very question, stored by another process after our exact lookup
            # (while we loaded the model): an exact hit, whatever the cosine says.
            hit = CacheHit(same.entry.answer, "exact", 1.0, same.entry, _ms(start), tier.name)
            return hit, best, [], None
        # The nearest entry decides alone. When a guard or the verifier vetoes it, a
        # farther entry is not tried: measured on the benchmark, falling back to the next
        # neighbour doubled the wrong-hit rate on PAWS (0.036 -> 0.083) and GPTCache's pairs.
        if best is None or best.similarity < floor:
            return None, best, [], None
        guard = self._veto(query.question, best.entry.question) if self.guards else None
        if guard is not None:
            return None, best, [Veto(best.entry.question, best.similarity, guard)], None
        verdict = None
        if verify:
            score = self.verifier.score(query.question, best.entry.question)
            threshold = self.verifier.threshold
            verdict = Verdict(round(score, 4), threshold, score >= threshold)
            if not verdict.served:
                return (
                    None,
                    best,
                    [Veto(best.entry.question, best.similarity, "verifier", verdict.score)],
                    verdict,
                )
        hit = CacheHit(best.entry.answer, "semantic", best.similarity, best.entry, _ms(start), tier.name)
        return hit, best, [], verdict

    def store(
        self, question: str | Query, answer: str, *, ttl: float | None = None, replace: bool = False
    ) -> CacheEntry:
        """Store `answer` for `question`. An existing entry for the same question is kept
        unless `replace`; the entry now in the cache is returned."""
        query = question if isinstance(question, Query) else self.query(question)
        stored = self.store_warm(query, answer, ttl=ttl, replace=replace)
        if stored is None:
            entry = self._entry(query, answer, ttl)
            stored = self.tier.store(self._scrubbed(entry), query.vector, replace=replace)
            self._share(query, stored, replace)
        return stored

    def store_warm(
        self, query: Query, answer: str, *, ttl: float | None = None, replace: bool = False
    ) -> CacheEntry | None:
        """`store` through a local tier that embeds and scrubs in a process of its own with
        everything loaded (a running helper); None when there is none, or it did not answer
        (then `store` does the work here, or `thrift ask` queues it: scrub_queue.py)."""
        if query._vector is not None:
            return None
        spec = None if self.scrubber is None else self.scrubber.spec()
        # The local tier decides which entry is kept (the one stored first, unless
        # `replace`); every other tier then gets that one.
        stored = self.tier.store_text(self._entry(query, answer, ttl), replace=replace, scrub=spec)
        if stored is not None:
            self._share(query, stored, replace)
        return stored

    def _share(self, query: Query, stored: CacheEntry, replace: bool) -> None:
        shared = [tier for tier in self.tiers if tier is not self.tier]
        if shared:
            copy = self.for_sharing(stored)
            for tier in shared:
                tier.store(copy, query.vector if tier.semantic else None, replace=replace)

    def for_sharing(self, entry: CacheEntry) -> CacheEntry:
        """The copy of `entry` that a shared tier (Redis, the remote) gets: with scrubbing
        on, its question scrubbed too (its key stays the raw question's: an exact lookup
        keys the raw text here, and finds it)."""
        if self.scrubber is None:
            return entry
        question = entry.shared_question
        if question is None:
            question = self.scrubber.scrub(entry.question).text
        return dataclasses.replace(entry, question=question, shared_question=None)

    def store_many(
        self, pairs: list[tuple[str, str]], *, ttl: float | None = None, replace: bool = False
    ) -> list[CacheEntry]:
        """Store (question, answer) pairs: embedded in batches, each batch one transaction.
        Questions already stored keep their answer unless `replace`."""
        stored: list[CacheEntry] = []
        for start in range(0, len(pairs), EMBED_BATCH):
            chunk = pairs[start : start + EMBED_BATCH]
            queries = self.queries([q for q, _ in chunk])
            entries = [
                self._scrubbed(self._entry(query, answer, ttl))
                for query, (_, answer) in zip(queries, chunk, strict=True)
            ]
            stored += self.tier.store_many(
                [(entry, query.vector) for entry, query in zip(entries, queries, strict=True)],
                replace=replace,
            )
        return stored

    def _scrubbed(self, entry: CacheEntry) -> CacheEntry:
        """The entry with its answer's personal data replaced by placeholders, when scrubbing
        is on. The question stays (the exact key and the embedding come from it); its
        scrubbed copy, what shared tiers get, is kept beside it (entries.shared_question)."""
        if self.scrubber is None:
            return entry
        return dataclasses.replace(
            entry,
            answer=self.scrubber.scrub(entry.answer).text,
            shared_question=self.scrubber.scrub(entry.question).text,  # kept for sync and Redis
        )

    def _entry(self, query: Query, answer: str, ttl: float | None) -> CacheEntry:
        if not storable(answer):
            raise UsageError("the answer is empty or not valid text; nothing stored")
        ttl = check_ttl(ttl) if ttl is not None else self.ttl
        now = time.time()
        return CacheEntry(
            namespace=query.namespace,
            question=query.question,
            question_hash=query.key,
            answer=answer,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
        )

    def get_or_call(self, question: str, fn: Callable[[str], str]) -> str:
        """The cached answer, or `fn(question)` stored for next time (ThriftLM's wrapper)."""
        query = self.query(question)
        look = self.explain(query)
        if look.hit is None:
            with self.single_flight(query):
                look = self.explain(query)  # another caller may have answered meanwhile
                if look.hit is None:
                    started = time.perf_counter()
                    try:
                        answer = fn(query.question)
                    except BaseException:
                        self.record(look, outcome="failed", call_ms=_ms(started))
                        raise
                    call_ms = _ms(started)
                    if not isinstance(answer, str):
                        self.record(look, outcome="failed", call_ms=call_ms)
                        raise TypeError(f"fn must return str, got {type(answer).__name__}")
                    stored = self.store(query, answer) if storable(answer) else None
                    self.record(
                        look,
                        outcome="stored" if stored else "empty",
                        call_ms=call_ms,
                        answer_bytes=len(answer.encode("utf-8", "surrogatepass")),
                        entry_id=stored.id if stored else None,
                    )
                    return answer
        self.record(look)
        assert look.hit is not None
        return look.hit.answer

    def forget(self, question: str | Query) -> bool:
        """Delete the entry stored for exactly this question, from every tier; True if
        one held it."""
        return bool(self.forget_exact(question))

    def forget_exact(self, question: str | Query) -> list[tuple[str, CacheEntry]]:
        """Delete what each tier holds for exactly this question: (tier name, entry)
        for each deletion. Tiers may hold different entries for one question (two
        machines that each answered it)."""
        query = question if isinstance(question, Query) else self.query(question)
        self._check_writable()
        now, removed = time.time(), []
        for tier in self._local_first():
            entry = tier.lookup(query.key, now)
            if entry is not None and tier.remove(entry):
                removed.append((tier.name, entry))
        return sorted(removed, key=lambda r: self._position(r[0]))  # reported in lookup order

    def remove(self, entry: CacheEntry) -> list[str]:
        """Delete `entry` (by its id, or by its exact key where a tier keys on that) from
        every tier, the local one first; the names of the tiers that held it."""
        self._check_writable()
        removed = [tier.name for tier in self._local_first() if tier.remove(entry)]
        return sorted(removed, key=self._position)

    def delete(self, entry_id: str) -> bool:
        """Delete the entry with this id (found locally, else in the tier that holds it)
        and its copies in the other tiers."""
        entry = next((e for t in self._local_first() if (e := t.entry(entry_id)) is not None), None)
        if entry is None:
            return False
        return bool(self.remove(entry))

    def _local_first(self) -> list[Tier]:
        """The tiers, the local one first: a delete that fails there (a read-only file)
        must not have emptied a shared tier that the next local hit would refill."""
        return [self.tier, *(t for t in self.tiers if t is not self.tier)]

    def _position(self, name: str) -> int:
        return next((i for i, t in enumerate(self.tiers) if t.name == name), len(self.tiers))

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.read_only}: nothing deleted")

    @property
    def read_only(self) -> str | None:
        """Why this cache can be read but not written (a read-only file or directory),
        else None. Lookups work; stores fail; events are not recorded."""
        return self.tier.read_only

    @contextmanager
    def single_flight(self, query: Query, timeout: float | None = None) -> Iterator[bool]:
        """Serialise misses on one question across threads and processes. A read-only
        cache stores no answer a waiter could be given, and cannot hold lock files: its
        misses run at once (in-process locks only)."""
        lock_dir = None if self.read_only else self._lock_dir
        with locks.single_flight(lock_dir, query.key, timeout) as got:
            yield got

    def last_event_id(self) -> int | None:
        """The id of the newest recorded event (None: the tier keeps none), to find later
        the calls made after this moment."""
        return self.tier.last_event_id()

    def calls_since(self, query: Query, event_id: int) -> list[Event]:
        """Events of `query`'s question, recorded after event `event_id`, of misses that
        ran the command (their outcome says how it ended), oldest first."""
        return self.tier.calls_since(query.key, event_id)

    def record(
        self,
        look: Lookup,
        *,
        outcome: str | None = None,
        call_ms: float | None = None,
        answer_bytes: int | None = None,
        entry_id: str | None = None,
        at: float | None = None,
    ) -> None:
        """Record the event of a lookup: a hit (counted on its entry) or a miss; `at`: when
        it happened (default: now; a miss stored later, scrub_queue.py, keeps its time)."""
        hit = look.hit
        if hit is not None:
            event = Event(
                look.namespace,
                hit.tier,
                look.latency_ms,
                hit.similarity,
                len(hit.answer.encode()),
                entry_id=hit.entry.id,
                question_hash=look.question_hash,
                source=hit.source,
                question=look.question,
                vetoes=look.vetoes,
            )
            # First the copies (a remote hit lands in the local file), then the count, so
            # that a remote hit is counted once, locally, and pushed by the next sync.
            self._spread(hit, event.at)
            self.tier.record_hit(hit.entry, event)
            return
        self.tier.record(
            Event(
                look.namespace,
                "miss",
                look.latency_ms,
                look.best.similarity if look.best else None,
                answer_bytes,
                call_ms,
                outcome,
                entry_id,
                look.question_hash,
                at=time.time() if at is None else at,
                question=look.question,
                vetoes=look.vetoes,
            )
        )

    def _spread(self, hit: CacheHit, now: float) -> None:
        """After a hit: count it in the tier that served it (if not the local one), and
        write the entry back to the tiers asked before that one, under the entry's own
        key (a paraphrase's key never gets another question's answer). Tiers that search
        get it only with its own vector (the remote sends it), never the query's."""
        position = self._position(hit.source)
        if position == len(self.tiers):
            return  # served by a tier not in this chain
        source = self.tiers[position]
        if source is not self.tier:
            source.touch(hit.entry, now)
        vector = source.vector(hit.entry)
        raw = keys.exact_key(hit.entry.namespace, hit.entry.question) == hit.entry.question_hash
        for tier in self.tiers[:position]:
            if not tier.semantic:
                if self.scrubber is not None and raw and tier is not self.tier:
                    # Scrubbing its question here would load Presidio on a hit: the next
                    # store of the question fills this tier instead.
                    continue
                tier.store(hit.entry, None)
            elif vector is not None and not tier.read_only:
                tier.mirror(hit.entry, vector)  # the remote's hit into the local mirror

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()

    def __enter__(self) -> SemanticCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
