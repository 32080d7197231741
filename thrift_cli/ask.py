"""The main job: serve a cached answer, or run the LLM command once and keep its answer."""

from __future__ import annotations

from dataclasses import dataclass

from thrift_cli.cache import SemanticCache
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
    timeout: float | None = None
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


def ask(cache: SemanticCache, question: str, options: AskOptions, out_fd: int) -> AskResult:
    query = cache.query(question)
    if not options.refresh:
        look = cache.explain(query, min_similarity=options.min_similarity)
        if look.hit is not None:
            return _serve(cache, look, out_fd)
        if options.lookup_only or options.command is None:
            cache.record(look, outcome="lookup-only")
            return _miss(look, LOOKUP_ONLY_MISS_EXIT)

    assert options.command is not None
    with cache.single_flight(query, timeout=options.timeout):
        # Another process may have answered while we waited for the lock. Under
        # --refresh this finds the entry the new answer replaces.
        look = cache.explain(query, min_similarity=options.min_similarity)
        if look.hit is not None and not options.refresh:
            return _serve(cache, look, out_fd)
        run = run_command(
            command_argv(options.command, query.question, stdin=options.stdin),
            stdin_data=query.question.encode() if options.stdin else None,
            out_fd=out_fd,
            timeout=options.timeout,
            env=options.env,
        )
        result = _miss(look, run.exit_code)
        result.call_ms, result.answer_bytes = run.duration_ms, len(run.output)
        answer, result.not_stored_because = _storable(run.output, run.exit_code, run.timed_out, options)
        if answer is not None:
            entry = cache.store(query, answer, ttl=options.ttl, replace=options.refresh)
            if options.refresh and look.hit is not None and look.hit.entry.id != entry.id:
                cache.delete(look.hit.entry.id)  # the paraphrase it replaces
            result.stored, result.entry_id = True, entry.id
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
    write_all(out_fd, data)
    cache.record(look)
    return AskResult(
        0,
        hit.tier,
        look.namespace,
        look.latency_ms,
        hit.similarity,
        hit.question,
        hit.entry.id,
        answer_bytes=len(data),
    )


def _miss(look: Lookup, exit_code: int) -> AskResult:
    best = look.best
    return AskResult(
        exit_code,
        "miss",
        look.namespace,
        look.latency_ms,
        best.similarity if best else None,
        best.entry.question if best else None,
    )
