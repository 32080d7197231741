"""`thrift forget`: delete a wrong or stale answer from every tier of the cache.

Four ways to name what goes: the exact question (in the namespace `thrift ask` would use),
`--similar` (the entry a plain `thrift ask` would serve for the question: the usual
"that cached answer is wrong"), `--id` (one entry), and `--namespace NS --all`. Each
deletes from the local store and from the shared tiers (Redis), and says what it deleted.

Nothing here loads the model except `--similar` on a miss of the exact tier, and nothing
creates a cache file: where none exists there is nothing to forget.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from thrift_cli import config
from thrift_cli.errors import StoreError, UsageError

if TYPE_CHECKING:
    from thrift_cli.cache import SemanticCache
    from thrift_cli.models import CacheEntry, Lookup
    from thrift_cli.store import SQLiteStore

NOTHING_TO_FORGET_EXIT = 3


@dataclass
class ForgetOptions:
    """`forget`'s options as the parser gave them (text as typed, None when absent)."""

    question: str | None = None
    namespace: str | None = None
    similar: bool = False
    entry_id: str | None = None
    all: bool = False
    yes: bool = False
    min_similarity: str | None = None
    stdin: bool = False
    as_json: bool = False


@dataclass
class Forgotten:
    """One entry deleted, and the tiers it was deleted from (in lookup order)."""

    id: str
    question: str
    namespace: str
    tiers: list[str]


@dataclass
class ForgetResult:
    """What `thrift forget` did; `--json` prints it."""

    namespace: str | None = None
    deleted: list[Forgotten] = field(default_factory=list)
    tiers: dict[str, int] = field(default_factory=dict)  # tier -> entries deleted there
    matched: dict[str, object] | None = None  # --similar: the hit whose entry was deleted
    error: str | None = None  # a tier that could not be reached: the forget is incomplete
    exit_code: int = 0


# -- the operations, on an open cache ---------------------------------------------------


def forget_question(cache: SemanticCache, question: str) -> list[tuple[str, CacheEntry]]:
    """What every tier holds for exactly `question` (in the cache's namespace), deleted."""
    return cache.forget_exact(question)


def forget_similar(
    cache: SemanticCache, question: str, min_similarity: float | None
) -> tuple[Lookup, list[tuple[str, CacheEntry]]]:
    """The entry a plain lookup of `question` is served, deleted from every tier with
    whatever else is stored for its question (two machines may each have answered it)."""
    look = cache.explain(question, min_similarity=min_similarity)
    if look.hit is None:
        return look, []
    return look, cache.forget_exact(look.hit.entry.question)


def forget_id(cache: SemanticCache, entry_id: str) -> list[tuple[str, CacheEntry]]:
    """The entry with this id, deleted: from the local store by id, from the shared tiers
    by its question's key (where they hold only one entry per question), as
    `SemanticCache.remove` does; each tier's deleted entry is returned as it was there."""
    local = found = cache.tier.entry(entry_id)
    for tier in cache.tiers:
        if found is None and tier is not cache.tier:
            found = tier.entry(entry_id)  # Redis: a SCAN, so only when the local store lacks it
    if found is None:
        return []
    now, removed = time.time(), []
    for tier in cache.tiers:
        if tier is cache.tier:
            if local is not None and tier.delete(entry_id):
                removed.append((tier.name, local))
            continue
        held = tier.lookup(found.question_hash, now)
        if held is not None and tier.remove(held):
            removed.append((tier.name, held))
    return removed


def forget_entry(entry_id: str) -> ForgetResult:
    """`thrift forget --id`, for a caller with no command line (`thrift top`): open the
    cache `thrift ask` would use, forget the entry from every tier, close it."""
    result = ForgetResult()
    cache, _store = _open(None, similar=False)
    if cache is None:
        result.exit_code = NOTHING_TO_FORGET_EXIT
        return result
    with cache:
        removed = forget_id(cache, entry_id)
        result.deleted, result.tiers = _by_entry(removed), _counts(removed)
        result.namespace = result.deleted[0].namespace if result.deleted else None
        result.error = _unreached(cache)
    if result.error is not None:
        result.exit_code = 1
    elif not result.deleted:
        result.exit_code = NOTHING_TO_FORGET_EXIT
    return result


def _unreached(cache: SemanticCache) -> str | None:
    """Why the forget is incomplete: the shared tiers that could not be reached."""
    failed = [t for t in cache.tiers if getattr(t, "last_error", None)]
    if not failed:
        return None
    names = ", ".join(t.name for t in failed)
    return (
        f"{names} could not be reached: what it holds is not forgotten (and is still served); "
        "run this again when it answers"
    )


def namespace_entries(cache: SemanticCache, store: SQLiteStore | None, namespace: str) -> list[Forgotten]:
    """The entries of `namespace` in every tier that can list them, one per entry id."""
    from thrift_cli.tiers.redis import RedisTier

    held: list[tuple[str, CacheEntry]] = []
    for tier in cache.tiers:
        if store is not None and tier is cache.tier:
            held += [(tier.name, e) for e in store.entries(namespace)]
        elif isinstance(tier, RedisTier):
            held += [(tier.name, e) for e in tier.entries(namespace)]
    return _by_entry(held)


def forget_namespace(cache: SemanticCache, store: SQLiteStore | None, namespace: str) -> dict[str, int]:
    """Delete every entry of `namespace` from every tier; how many each tier held. The
    local store deletes them in one transaction."""
    from thrift_cli.tiers.redis import RedisTier

    counts: dict[str, int] = {}
    for tier in cache.tiers:
        if store is not None and tier is cache.tier:
            counts[tier.name] = store.delete_namespace(namespace)
        elif isinstance(tier, RedisTier):
            counts[tier.name] = tier.remove_namespace(namespace)
    return counts


def _by_entry(removed: list[tuple[str, CacheEntry]]) -> list[Forgotten]:
    """(tier, entry) pairs grouped by entry: one line per entry, naming its tiers."""
    grouped: dict[str, Forgotten] = {}
    for tier, entry in removed:
        item = grouped.setdefault(entry.id, Forgotten(entry.id, entry.question, entry.namespace, []))
        if tier not in item.tiers:
            item.tiers.append(tier)
    return list(grouped.values())


def _counts(removed: list[tuple[str, CacheEntry]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tier, _ in removed:
        counts[tier] = counts.get(tier, 0) + 1
    return counts


# -- the command ------------------------------------------------------------------------


def run(command: list[str] | None, options: ForgetOptions, confirm: Callable[[str], bool]) -> int:
    """`thrift forget`, its options as typer gave them; `confirm(prompt)` asks on the
    terminal before `--all` deletes. Prints what was deleted; returns the exit code."""
    config.check_environment()
    namespace = _check(command, options)
    min_similarity = config.value("min_similarity", options.min_similarity) if options.similar else None
    question = None if options.entry_id is not None or options.all else _read_question(options.question)
    result = ForgetResult(namespace=namespace)
    cache, store = _open(namespace, similar=options.similar)
    if cache is None:  # no cache file and no shared tier: nothing anywhere to forget
        _nothing(result, options, question, None)
        return _report(result, options)
    with cache:
        if options.all:
            assert namespace is not None
            listed = namespace_entries(cache, store, namespace)
            if listed and not options.yes and not _confirmed(confirm, listed, namespace):
                print("thrift: not confirmed; nothing forgotten", file=sys.stderr)
                return 1
            result.tiers = forget_namespace(cache, store, namespace) if listed else {}
            result.deleted = listed
        elif options.entry_id is not None:
            removed = forget_id(cache, options.entry_id)
            result.deleted, result.tiers = _by_entry(removed), _counts(removed)
            result.namespace = result.deleted[0].namespace if result.deleted else None
        elif options.similar:
            assert question is not None
            look, removed = forget_similar(cache, question, min_similarity)
            result.deleted, result.tiers = _by_entry(removed), _counts(removed)
            if look.hit is not None:
                hit = look.hit
                result.matched = {
                    "question": hit.question,
                    "similarity": round(hit.similarity, 4),
                    "tier": hit.tier,
                    "source": hit.source,
                    "id": hit.entry.id,
                }
            elif not removed:
                _nothing(result, options, question, look)
        else:
            assert question is not None
            removed = forget_question(cache, question)
            result.deleted, result.tiers = _by_entry(removed), _counts(removed)
        unreached = _unreached(cache)
        if unreached is not None:
            result.error, result.exit_code = unreached, 1
        elif not any(result.tiers.values()) and result.exit_code == 0:
            _nothing(result, options, question, None)
    return _report(result, options)


def _check(command: list[str] | None, options: ForgetOptions) -> str | None:
    """Refuse option combinations that cannot be meant (exit 2); the namespace to use."""
    from thrift_cli import keys

    if command is not None and not command:
        raise UsageError("no command after --")
    if options.stdin and command is None:
        raise UsageError("--stdin needs the command after --")
    if options.min_similarity is not None and not options.similar:
        raise UsageError("--min-similarity is for --similar only")
    if options.entry_id is not None:
        if not options.entry_id.strip():
            raise UsageError("--id must not be empty")
        for given, what in ((options.question, "a question"), (options.similar, "--similar")):
            if given:
                raise UsageError(f"--id and {what} cannot be used together: the id names the entry")
        if options.all:
            raise UsageError("--id and --all cannot be used together")
        if options.namespace is not None or command is not None:
            raise UsageError("--id takes no --namespace or command: the id names the entry")
        return None
    if options.all:
        if options.question is not None:
            raise UsageError("--all takes no question: it forgets every entry of the namespace")
        if options.similar:
            raise UsageError("--all and --similar cannot be used together")
        if options.namespace is None:
            raise UsageError("--all needs the namespace named: thrift forget --namespace NS --all")
        if not options.yes and not _on_a_terminal():
            raise UsageError("--all deletes every entry of the namespace: pass --yes (no terminal to ask on)")
        return config.namespace(options.namespace, "--namespace")
    namespace = config.resolve(options.namespace, "--namespace", config.NAMESPACE, config.namespace)
    if namespace is None and command is None:
        raise UsageError(
            "missing the LLM command: thrift forget QUESTION -- COMMAND [ARGS...] (or --namespace NS)"
        )
    return namespace or (keys.command_namespace(command, stdin=options.stdin) if command else None)


def _on_a_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _read_question(question: str | None) -> str:
    """The question as given, or all of stdin when absent or '-' (as `thrift ask` reads it)."""
    from thrift_cli.cache import clean_question

    if question is None or question == "-":
        if not _on_a_terminal() and sys.stdin is not None:
            try:
                question = sys.stdin.buffer.read().decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError("the question on stdin is not UTF-8 text") from None
        else:
            raise UsageError("no question: pass it as an argument or on stdin")
    return clean_question(question)


def _open(namespace: str | None, *, similar: bool) -> tuple[SemanticCache | None, SQLiteStore | None]:
    """The cache `thrift ask` would use (its local store, or a tier holding nothing when
    there is no cache file but a shared tier is configured), or None when there is
    neither. Only `--similar` goes through a running helper: it is the one that searches."""
    from thrift_cli.cache import SemanticCache
    from thrift_cli.home import db_path
    from thrift_cli.store import SQLiteStore
    from thrift_cli.tiers import Tier, configured
    from thrift_cli.tiers.base import EmptyTier

    path = db_path()
    if not path.exists():
        shared = configured(path.parent)
        if not shared:
            return None, None
        return SemanticCache(namespace=namespace, tier=EmptyTier(), shared=shared, memory_index=False), None
    store = SQLiteStore(path)
    if store.read_only:
        # Refused before any tier is touched: Redis is asked first, and a forget that
        # deleted the shared copy but not the local one would be undone by the next ask.
        reason = store.read_only
        store.close()
        raise StoreError(f"{reason}: nothing forgotten")
    local: Tier = store
    if similar:
        from thrift_cli.tiers.helper import HelperTier

        local = HelperTier.around(store)
    try:
        cache = SemanticCache(namespace=namespace, home=path.parent, tier=local, memory_index=False)
    except BaseException:
        store.close()
        raise
    return cache, store


def _confirmed(confirm: Callable[[str], bool], listed: list[Forgotten], namespace: str) -> bool:
    tiers: dict[str, int] = {}
    for item in listed:
        for tier in item.tiers:
            tiers[tier] = tiers.get(tier, 0) + 1
    where = ", ".join(f"{n} in {tier}" for tier, n in tiers.items())
    return confirm(f"Forget all {_entries(len(listed))} of [namespace {namespace}] ({where})?")


def _nothing(result: ForgetResult, options: ForgetOptions, question: str | None, look: Lookup | None) -> None:
    result.exit_code, result.deleted, result.matched = NOTHING_TO_FORGET_EXIT, [], None
    where = f"[namespace {result.namespace}]"
    if options.all:
        result.error = f"nothing cached in {where}"
    elif options.entry_id is not None:
        result.error = f"no entry has the id {options.entry_id!r}"
    elif options.similar:
        result.error = f"nothing cached for {question!r} or a paraphrase of it {where}"
        if look is not None and look.best is not None:
            result.error += f" (closest: {look.best.similarity:.3f}, {look.best.entry.question!r})"
    else:
        result.error = (
            f"nothing cached for exactly {question!r} {where}; "
            "--similar forgets the answer a paraphrase of it gets"
        )


def _report(result: ForgetResult, options: ForgetOptions) -> int:
    if result.error:
        print(f"thrift: {result.error}", file=sys.stderr)
    if options.as_json:
        print(json.dumps(asdict(result), ensure_ascii=False))
        return result.exit_code
    if result.matched is not None:
        m, similarity = result.matched, f"{result.matched['similarity']:.3f}"
        print(f"matched {m['question']!r} ({m['tier']} hit from {m['source']}, similarity {similarity})")
    for item in result.deleted:
        print(f"forgot {item.question!r} [namespace {item.namespace}] from {', '.join(item.tiers)}")
    for tier, count in result.tiers.items():  # --all: entries stored since they were listed
        extra = count - sum(tier in item.tiers for item in result.deleted)
        if extra > 0:
            print(f"forgot {_entries(extra)} more [namespace {result.namespace}] from {tier}, not listed")
    return result.exit_code


def _entries(n: int) -> str:
    return f"{n:,} {'entry' if n == 1 else 'entries'}"
