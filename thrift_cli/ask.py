"""The main job: serve a cached answer, or run the LLM command once and keep its answer."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from thrift_cli import scrub_queue
from thrift_cli.cache import Query, SemanticCache, clean_question
from thrift_cli.errors import StoreError, UsageError
from thrift_cli.models import CacheEntry, Event, Lookup
from thrift_cli.runner import command_argv, run_command, write_all

LOOKUP_ONLY_MISS_EXIT = 3
# The outcome of a miss whose command failed; a waiter for the same question reads it.
_FAILED = "command failed (exit {})"


@dataclass
class AskOptions:
    command: list[str] | None
    stdin: bool = False
    min_similarity: float | None = None
    ttl: float | None = None
    refresh: bool = False
    no_store: bool = False
    lookup_only: bool = False
    timeout: float | None = None  # for the whole ask: waiting for another caller included
    env: dict[str, str] | None = None  # the command's environment; None: ours


@dataclass
class AskResult:
    """What happened, for `-v` and `--json`. `ask` fills it in as it goes, so an ask that
    stops on an error still reports what it knew (the namespace, the lookup)."""

    exit_code: int = 0
    tier: str = "error"  # exact | semantic | miss; error: thrift stopped before an answer
    source: str | None = None  # of a hit: the tier that held it (local | redis | ...)
    namespace: str | None = None
    lookup_ms: float | None = None  # both lookups (before and after the wait), model load included
    waited_ms: float | None = None  # for another process's call of the question; None: no wait
    similarity: float | None = None  # of the hit, or of the best candidate on a miss
    matched_question: str | None = None
    entry_id: str | None = None
    call_ms: float | None = None
    stored: bool = False
    scrub_pending: bool = False  # stored by the scrub worker once this ask has exited
    not_stored_because: str | None = None
    answer_bytes: int = 0
    vetoed: list[dict[str, object]] = field(default_factory=list)  # candidates a guard refused
    # The verifier's reading of the candidate: {"score", "threshold", "decision": serve | veto};
    # None when it read none (an exact hit, no candidate above the floor, a guard's veto).
    verifier: dict[str, object] | None = None
    error: str | None = None  # the `thrift:` line: an error, or a problem after the answer


def ask(
    cache: SemanticCache, question: str, options: AskOptions, out_fd: int, result: AskResult | None = None
) -> AskResult:
    """Serve `question` from `cache`, or run the command once for it; `result` (new if
    None) is filled in and returned."""
    result = result if result is not None else AskResult()
    result.namespace = cache.namespace
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    query = cache.query(question)
    check_question(query.question, options)
    if cache.read_only:
        # One line for the whole ask, not one per write it cannot make.
        print(
            f"thrift: warning: {cache.read_only}: answers are not cached, lookups not recorded",
            file=sys.stderr,
        )
    if not options.refresh:
        look = _looked(result, cache.explain(query, min_similarity=options.min_similarity))
        if look.hit is not None:
            return _serve(cache, look, out_fd, result)
        if options.lookup_only or options.command is None:
            with _best_effort():
                cache.record(look, outcome="lookup-only")
            return _missed(result, LOOKUP_ONLY_MISS_EXIT)

    assert options.command is not None
    since = cache.last_event_id()  # a call that fails after this, we waited for
    waiting = time.perf_counter()
    with cache.single_flight(query, timeout=options.timeout):
        result.waited_ms = (time.perf_counter() - waiting) * 1000.0
        # Another process may have answered while we waited for the lock.
        look = _looked(result, cache.explain(query, min_similarity=options.min_similarity))
        if look.hit is not None and not options.refresh:
            return _serve(cache, look, out_fd, result)
        if cache.home is not None and not options.refresh and scrub_queue.wait_for_queue(cache.home):
            # Answers being scrubbed when we looked, this question's or a paraphrase's: the
            # lookup again, now they are stored, rather than a second call.
            look = _looked(result, cache.explain(query, min_similarity=options.min_similarity))
            if look.hit is not None:
                return _serve(cache, look, out_fd, result)
        failed = None if since is None else _failed_call(cache.calls_since(query, since))
        if failed is not None:
            return _share_failure(cache, look, failed, result)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        return _call(cache, query, look, options, out_fd, remaining, result)


def _call(
    cache: SemanticCache,
    query: Query,
    look: Lookup,
    options: AskOptions,
    out_fd: int,
    timeout: float | None,
    result: AskResult,
) -> AskResult:
    """Run the command for a miss, store its answer if it may be stored, record the event."""
    assert options.command is not None
    run = run_command(
        command_argv(options.command, query.question, stdin=options.stdin),
        stdin_data=query.question.encode() if options.stdin else None,
        out_fd=out_fd,
        timeout=timeout,
        env=options.env,
    )
    _missed(result, run.exit_code)
    result.call_ms, result.answer_bytes = run.duration_ms, len(run.output)
    if run.timed_out:
        result.error = f"the command timed out after {options.timeout:g} s; nothing stored"
    elif run.write_error:
        result.error = f"cannot write the answer to stdout: {run.write_error}"
        result.exit_code = result.exit_code or 1
    answer, result.not_stored_because = _storable(run.output, run.exit_code, run.timed_out, options)
    if answer is not None and cache.read_only:
        result.not_stored_because = cache.read_only
    elif (
        answer is not None
        and cache.scrubber is not None
        and (warm := _store_warm(cache, query, answer, options))
    ):
        result.stored, result.entry_id = True, warm.id  # a running helper scrubbed and stored it
    elif answer is not None and _deferred(
        cache, query, answer, look, options, run.duration_ms, len(run.output)
    ):
        # The worker scrubs, stores and records it once we have exited (scrub_queue.py).
        result.stored, result.scrub_pending = True, True
        return result
    elif answer is not None:
        try:
            # --refresh replaces this question's own entry only: the paraphrase that
            # would have been served may be right for its own question.
            entry = cache.store(query, answer, ttl=options.ttl, replace=options.refresh)
            result.stored, result.entry_id = True, entry.id
        except StoreError as exc:
            result.not_stored_because = str(exc)
            result.error = f"the answer was not cached: {exc}"
    with _best_effort():
        # Inside the single-flight lock: a waiter reads the outcome from here.
        cache.record(
            look,
            outcome="stored" if result.stored else result.not_stored_because,
            call_ms=run.duration_ms,
            answer_bytes=len(run.output),
            entry_id=result.entry_id,
        )
    return result


def _store_warm(cache: SemanticCache, query: Query, answer: str, options: AskOptions) -> CacheEntry | None:
    try:
        return cache.store_warm(query, answer, ttl=options.ttl, replace=options.refresh)
    except StoreError:
        return None  # queued instead


def _deferred(
    cache: SemanticCache,
    query: Query,
    answer: str,
    look: Lookup,
    options: AskOptions,
    call_ms: float,
    answer_bytes: int,
) -> bool:
    """Hand the answer to the scrub worker when it must be scrubbed and no helper did it
    warm (cache.store would load Presidio in this process before it exits)."""
    if cache.scrubber is None or cache.home is None:
        return False
    try:
        scrub_queue.defer(
            cache,
            query,
            answer,
            look,
            ttl=options.ttl,
            replace=options.refresh,
            call_ms=call_ms,
            answer_bytes=answer_bytes,
        )
    except OSError:
        return False  # the queue cannot be written: store it here, slowly but surely
    return True


def _share_failure(cache: SemanticCache, look: Lookup, exit_code: int, result: AskResult) -> AskResult:
    """The call we waited for failed: as Go's singleflight, its waiters share its outcome.
    Running it again at once would most likely fail the same way, and the queued waiters
    would pay for one failure each, one after another."""
    _missed(result, exit_code)
    result.not_stored_because = f"another thrift ask's call failed (exit {exit_code})"
    result.error = (
        f"the same question's call by another thrift ask failed (exit {exit_code}); not retried here"
    )
    with _best_effort():
        cache.record(look, outcome=result.not_stored_because)
    return result


def check_question(question: str, options: AskOptions) -> None:
    if "\0" in question and not options.stdin:
        raise UsageError("the question contains a NUL byte, which no argument can carry; use --stdin")


def nothing_cached(question: str, options: AskOptions, result: AskResult) -> AskResult:
    """`--lookup-only` where no cache file exists: a miss, decided without creating the
    file (or THRIFT_HOME): a lookup writes nothing."""
    check_question(clean_question(question), options)
    result.lookup_ms = 0.0
    return _missed(result, LOOKUP_ONLY_MISS_EXIT)


def _failed_call(calls: list[Event]) -> int | None:
    """The exit code of the last of `calls` if the command failed in it (a timeout, or a
    call whose answer was stored or refused, is not shared)."""
    outcome = calls[-1].outcome if calls else None
    prefix = _FAILED.split("{", 1)[0]
    if outcome is None or not outcome.startswith(prefix) or not outcome.endswith(")"):
        return None
    code = outcome[len(prefix) : -1]
    return int(code) if code.isdigit() else None


def _storable(
    output: bytes, exit_code: int, timed_out: bool, options: AskOptions
) -> tuple[str | None, str | None]:
    """The answer to store, or why it must not be stored."""
    if timed_out:
        return None, "timed out"
    if exit_code != 0:
        return None, _FAILED.format(exit_code)
    if not output.strip():
        return None, "empty answer"
    if options.no_store:
        return None, "--no-store"
    try:
        return output.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "answer is not UTF-8 text"


def _serve(cache: SemanticCache, look: Lookup, out_fd: int, result: AskResult) -> AskResult:
    hit = look.hit
    assert hit is not None
    data = hit.answer.encode("utf-8")
    result.tier, result.similarity, result.matched_question = hit.tier, hit.similarity, hit.question
    result.source = hit.source
    result.entry_id, result.answer_bytes = hit.entry.id, len(data)
    status = write_all(out_fd, data)
    if status:
        result.error, result.exit_code = f"cannot write the answer to stdout: {status}", 1
    with _best_effort():
        cache.record(look)
    return result


@contextmanager
def _best_effort() -> Iterator[None]:
    """Around recording an event: the user already has the answer, so a cache that cannot
    be written (read-only, disk full) is reported, not fatal."""
    try:
        yield
    except StoreError as exc:
        print(f"thrift: warning: event not recorded: {exc}", file=sys.stderr)


def _looked(result: AskResult, look: Lookup) -> Lookup:
    """Add `look` to the report; the lookup returned with its latency the ask's lookup
    time so far, which is what its event records."""
    result.lookup_ms = (result.lookup_ms or 0.0) + look.latency_ms
    best = look.best
    result.similarity = best.similarity if best else None
    result.matched_question = best.entry.question if best else None
    result.vetoed = [
        {"question": v.question, "similarity": round(v.similarity, 4), "guard": v.guard} for v in look.vetoes
    ]
    verdict = look.verdict
    result.verifier = (
        None
        if verdict is None
        else {
            "score": verdict.score,
            "threshold": verdict.threshold,
            "decision": "serve" if verdict.served else "veto",
        }
    )
    return replace(look, latency_ms=result.lookup_ms)


def _missed(result: AskResult, exit_code: int) -> AskResult:
    result.tier, result.exit_code = "miss", exit_code
    return result
