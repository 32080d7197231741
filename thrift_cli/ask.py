"""The main job: serve a cached answer, or run the LLM command once and keep its answer."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from thrift_cli.cache import SemanticCache
from thrift_cli.errors import StoreError, UsageError
from thrift_cli.models import Lookup
from thrift_cli.runner import command_argv, run_command, write_all

LOOKUP_ONLY_MISS_EXIT = 3


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
    """What happened, for `-v` and `--json`."""

    exit_code: int
    tier: str  # exact | semantic | miss
    namespace: str
    lookup_ms: float
    similarity: float | None = None  # of the hit, or of the best candidate on a miss
    matched_question: str | None = None
    entry_id: str | None = None
    call_ms: float | None = None
    stored: bool = False
    not_stored_because: str | None = None
    answer_bytes: int = 0
    vetoed: list[dict[str, object]] | None = None  # candidates a guard refused
    error: str | None = None  # a problem after the answer was delivered


def ask(cache: SemanticCache, question: str, options: AskOptions, out_fd: int) -> AskResult:
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    query = cache.query(question)
    if "\0" in query.question and not options.stdin:
        raise UsageError("the question contains a NUL byte, which no argument can carry; use --stdin")
    if cache.read_only:
        # One line for the whole ask, not one per write it cannot make.
        print(
            f"thrift: warning: {cache.read_only}: answers are not cached, lookups not recorded",
            file=sys.stderr,
        )
    if not options.refresh:
        look = cache.explain(query, min_similarity=options.min_similarity)
        if look.hit is not None:
            return _serve(cache, look, out_fd)
        if options.lookup_only or options.command is None:
            with _best_effort():
                cache.record(look, outcome="lookup-only")
            return _miss(look, LOOKUP_ONLY_MISS_EXIT)

    assert options.command is not None
    with cache.single_flight(query, timeout=options.timeout):
        # Another process may have answered while we waited for the lock.
        look = cache.explain(query, min_similarity=options.min_similarity)
        if look.hit is not None and not options.refresh:
            return _serve(cache, look, out_fd)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        run = run_command(
            command_argv(options.command, query.question, stdin=options.stdin),
            stdin_data=query.question.encode() if options.stdin else None,
            out_fd=out_fd,
            timeout=remaining,
            env=options.env,
        )
        result = _miss(look, run.exit_code)
        result.call_ms, result.answer_bytes = run.duration_ms, len(run.output)
        if run.timed_out:
            result.error = f"the command timed out after {options.timeout:g} s; nothing stored"
        elif run.write_error:
            result.error = f"cannot write the answer to stdout: {run.write_error}"
            result.exit_code = result.exit_code or 1
        answer, result.not_stored_because = _storable(run.output, run.exit_code, run.timed_out, options)
        if answer is not None and cache.read_only:
            result.not_stored_because = cache.read_only
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
            cache.record(
                look,
                outcome="stored" if result.stored else result.not_stored_because,
                call_ms=run.duration_ms,
                answer_bytes=len(run.output),
                entry_id=result.entry_id,
            )
        return result


def _storable(
    output: bytes, exit_code: int, timed_out: bool, options: AskOptions
) -> tuple[str | None, str | None]:
    """The answer to store, or why it must not be stored."""
    if timed_out:
        return None, "timed out"
    if exit_code != 0:
        return None, f"command failed (exit {exit_code})"
    if not output.strip():
        return None, "empty answer"
    if options.no_store:
        return None, "--no-store"
    try:
        return output.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "answer is not UTF-8 text"


def _serve(cache: SemanticCache, look: Lookup, out_fd: int) -> AskResult:
    hit = look.hit
    assert hit is not None
    data = hit.answer.encode("utf-8")
    result = _result(look, 0, hit.tier, hit.similarity, hit.question)
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


def _miss(look: Lookup, exit_code: int) -> AskResult:
    best = look.best
    return _result(
        look, exit_code, "miss", best.similarity if best else None, best.entry.question if best else None
    )


def _result(
    look: Lookup, exit_code: int, tier: str, similarity: float | None, matched: str | None
) -> AskResult:
    vetoed = [
        {"question": v.question, "similarity": round(v.similarity, 4), "guard": v.guard} for v in look.vetoes
    ]
    return AskResult(exit_code, tier, look.namespace, look.latency_ms, similarity, matched, vetoed=vetoed)
