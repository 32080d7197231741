"""The `thrift` entry point. Everything after the first `--` is the LLM command, untouched.

A plain `thrift ask` (the call a shell script makes thousands of times) is parsed here
without importing typer and click, which cost ~45 ms of each start; anything else, and
any `ask` this parser is not sure about, goes to the typer app in `commands.py`, so both
accept exactly the same command lines (tests/test_cli_fast.py compares them).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from thrift_cli import config
from thrift_cli.errors import RunnerError, ThriftError, UsageError

if TYPE_CHECKING:
    from thrift_cli.ask import AskResult


def ask_settings(parsed: dict[str, Any]) -> dict[str, Any]:
    """`ask`'s keywords as a parser gave them (option values as typed, None when absent),
    with the environment and the config file filled in and every value checked, the error
    naming the option, the variable or the file it came from. Both parsers go through
    here, so they cannot differ."""
    config.check_environment()
    return {
        **parsed,
        "namespace": config.resolve(parsed["namespace"], "--namespace", config.NAMESPACE, config.namespace),
        "min_similarity": config.value("min_similarity", parsed["min_similarity"]),
        "ttl": config.value("ttl", parsed["ttl"]),
        "timeout": config.value("timeout", parsed["timeout"]),
        "scrub": False if parsed.get("no_scrub") else config.value("scrub"),
        "verify": False if parsed.get("no_verify") else config.value("verify"),
    }


def _read_question(question: str | None) -> str:
    if question is not None and question != "-":
        return question
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no question: pass it as an argument or on stdin")
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the question on stdin is not UTF-8 text") from None


def ask_command(command: list[str] | None, parsed: dict[str, Any]) -> int:
    """`thrift ask`, its options as a parser gave them (by typer, or by `_parse_ask`);
    checked here, so that a bad value gets its --json report too."""
    from thrift_cli import keys
    from thrift_cli.ask import AskResult

    stdin = parsed["stdin"]
    # Known as soon as the command is: even a refused ask reports its namespace.
    result = AskResult(namespace=keys.command_namespace(command, stdin=stdin) if command else None)
    try:
        settings = ask_settings(parsed)
        result.namespace = settings["namespace"] or result.namespace
        _ask(
            result,
            command,
            settings["question"],
            namespace=result.namespace,
            min_similarity=settings["min_similarity"],
            ttl=settings["ttl"],
            refresh=settings["refresh"],
            no_store=settings["no_store"],
            scrub=settings["scrub"],
            verify=settings["verify"],
            lookup_only=settings["lookup_only"],
            stdin=stdin,
            timeout=settings["timeout"],
            remote=settings["remote"] or None,  # no flag: the remote_lookup setting decides
        )
    except (ThriftError, KeyboardInterrupt, SystemExit) as exc:
        failure = _failure(exc)
        if failure is None:
            raise
        # Nothing was answered: the same `thrift:` line as any error, and the report
        # (with what was known by then) after it, still the last line of stderr.
        result.error, result.exit_code = failure
        result.tier, result.stored = "error", False
    if result.error:
        print(f"thrift: {result.error}", file=sys.stderr)
    _report(result, as_json=parsed["as_json"], verbose=parsed["verbose"])
    if result.stored and not result.scrub_pending:  # the scrub worker pushes what it stores
        _push_on_store()
    return result.exit_code


def _push_on_store() -> None:
    """With push_on_store, the answer just stored goes to the remote now, through a process
    of its own (push_on_store.py). Last: the answer and the report are written, the cache
    closed and the single-flight lock released, so the user waits for nothing but a fork."""
    from thrift_cli import push_on_store
    from thrift_cli.home import db_path

    try:
        home = db_path().parent
        if push_on_store.wanted(home):
            push_on_store.start(home)
    except ThriftError:
        # The settings were checked before the ask (a bad one was its error); one that
        # changed since must not change the outcome of an ask already answered.
        pass


def _ask(
    result: AskResult,
    command: list[str] | None,
    question: str | None,
    *,
    namespace: str | None,
    min_similarity: float | None,
    ttl: float | None,
    refresh: bool,
    no_store: bool,
    lookup_only: bool,
    stdin: bool,
    timeout: float | None,
    remote: bool | None = None,
    scrub: bool = True,
    verify: bool = True,
) -> None:
    from thrift_cli.ask import AskOptions, nothing_cached
    from thrift_cli.ask import ask as run_ask
    from thrift_cli.cache import SemanticCache
    from thrift_cli.home import db_path
    from thrift_cli.store import SQLiteStore
    from thrift_cli.tiers import Tier, configured
    from thrift_cli.tiers.base import EmptyTier
    from thrift_cli.tiers.helper import HelperTier

    if command is not None and not command:
        raise UsageError("no command after --")
    if command is None and not (lookup_only and namespace):
        raise UsageError("missing the LLM command: thrift ask QUESTION -- COMMAND [ARGS...]")
    if refresh and lookup_only:
        raise UsageError("--refresh and --lookup-only cannot be used together")
    # Values were checked by ask_settings (config.py), naming the option or variable.
    options = AskOptions(
        command=command,
        stdin=stdin,
        min_similarity=min_similarity,
        ttl=ttl,
        refresh=refresh,
        no_store=no_store,
        lookup_only=lookup_only,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k not in _ADDED_ENV} if _ADDED_ENV else None,
    )
    text = _read_question(question)
    if not text.strip():
        raise UsageError("the question is empty")
    path = db_path()
    local: Tier
    shared = configured(path.parent, remote=remote)
    if lookup_only and not path.exists():
        # A lookup creates nothing, not even THRIFT_HOME: only the shared tiers (Redis)
        # can answer, through a local tier that holds nothing.
        if not shared:
            nothing_cached(text, options, result)
            return
        local = EmptyTier()
    else:
        # One search per process: sqlite-vec on disk beats loading every vector into memory.
        local = HelperTier.around(SQLiteStore(path))  # through a running `thrift helper`, if any
    with SemanticCache(
        min_similarity,
        namespace,
        path.parent,
        tier=local,
        shared=shared,
        memory_index=False,
        scrub=None if scrub else False,
        verify=verify,
    ) as cache:
        # fd 1 itself: works when sys.stdout is None (stdout closed with >&-).
        run_ask(cache, text, options, 1, result)


# -- the fast path's parser ------------------------------------------------------------

_FLAGS = {
    "--refresh": "refresh",
    "--no-store": "no_store",
    "--no-scrub": "no_scrub",
    "--no-verify": "no_verify",
    "--lookup-only": "lookup_only",
    "--stdin": "stdin",
    "--remote": "remote",
    "--json": "as_json",
    "-v": "verbose",
    "--verbose": "verbose",
}
_VALUED = {
    "-n": "namespace",
    "--namespace": "namespace",
    "-s": "min_similarity",
    "--min-similarity": "min_similarity",
    "--ttl": "ttl",
    "--timeout": "timeout",
}


def _parse_ask(args: list[str]) -> dict[str, Any] | None:
    """`ask`'s arguments as `ask_settings` takes them, or None for anything unusual (help,
    a repeated or unknown option, a cluster of short options...), which typer then
    parses and reports in its own words. Values are checked by `ask_settings`."""
    parsed: dict[str, Any] = dict.fromkeys(_FLAGS.values(), False)
    parsed.update(dict.fromkeys(_VALUED.values()))
    seen: set[str] = set()
    question = None
    i = 0
    while i < len(args):
        arg = args[i]
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        if name in _FLAGS and value is None:
            key = _FLAGS[name]
            parsed[key] = True
        elif name in _VALUED:
            key = _VALUED[name]
            if value is None:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            parsed[key] = value
        elif arg.startswith("-") and arg != "-":
            return None
        elif question is None:
            question, key = arg, "question"
        else:
            return None
        if key in seen:
            return None
        seen.add(key)
        i += 1
    return {"question": question, **parsed}


def _report(result: object, *, as_json: bool, verbose: bool) -> None:
    from dataclasses import asdict

    from thrift_cli.ask import AskResult

    assert isinstance(result, AskResult)
    if verbose and result.tier != "error":  # an error has said everything in its line
        for line in _describe(result):
            print(line, file=sys.stderr)
    if as_json:  # last, so a script can read the last line of stderr
        record = asdict(result)
        total_ms = _process_age_ms()
        # What thrift added to the call: on a hit (or an error), all of it.
        record.update(total_ms=total_ms, overhead_ms=total_ms - (result.call_ms or 0.0))
        for name in ("lookup_ms", "waited_ms", "call_ms", "total_ms", "overhead_ms", "similarity"):
            if record[name] is not None:
                record[name] = round(record[name], 4 if name == "similarity" else 2)
        print(json.dumps(record, ensure_ascii=False), file=sys.stderr)


# When this module was imported: the process's start where the kernel cannot tell.
_IMPORTED = time.monotonic()


def _process_age_ms() -> float:
    """Milliseconds since this process started. On Linux the kernel records the start
    (in /proc/self/stat, to the clock tick: 10 ms), so the interpreter's own start-up
    and imports count as they should; elsewhere, since thrift's entry point was imported."""
    try:
        with open("/proc/self/stat", "rb") as f:
            # Field 22, counted after the command name, which may hold spaces and ")".
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        started = ticks / os.sysconf("SC_CLK_TCK")
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 0.0) * 1000.0
    except (OSError, ValueError, IndexError, AttributeError):
        return (time.monotonic() - _IMPORTED) * 1000.0


def _describe(result: AskResult) -> list[str]:
    if result.tier != "miss":
        line = f"thrift: {result.tier} hit"
        if result.source not in (None, "local"):
            line += f" from {result.source}"
        line += f", similarity {result.similarity:.3f}"
        if result.tier == "semantic":
            line += f", matched {result.matched_question!r}"
        line += f" ({result.lookup_ms:.0f} ms)"
    else:
        line = "thrift: miss"
        if result.similarity is not None:
            line += f" (closest: {result.similarity:.3f}, {result.matched_question!r})"
    if result.waited_ms is not None and result.waited_ms >= _SHOWN_WAIT_MS:
        line += f", waited {result.waited_ms / 1000:.2f} s for another thrift ask's call"
    if result.call_ms is not None:
        line += f", command ran {result.call_ms / 1000:.2f} s"
        if result.scrub_pending:
            line += ", stored once scrubbed (in the background)"
        else:
            line += ", stored" if result.stored else f", not stored: {result.not_stored_because}"
    elif result.tier == "miss" and result.not_stored_because is not None:
        line += f", not run: {result.not_stored_because}"
    lines = [f"{line} [namespace {result.namespace}]"]
    for veto in result.vetoed:
        guard, question, similarity = veto["guard"], veto["question"], veto["similarity"]
        who = "the verifier" if guard == "verifier" else f"the {guard} guard"
        lines.append(f"thrift:   vetoed by {who}: {question!r} (similarity {similarity})")
    if result.verifier is not None:
        score, threshold, decision = (result.verifier[k] for k in ("score", "threshold", "decision"))
        relation = ">=" if decision == "serve" else "<"
        lines.append(f"thrift:   verifier: score {score:.3f} {relation} {threshold}: {decision}")
    return lines


# -v mentions a wait from this long on (a free lock takes well under a millisecond;
# a lock that was held is polled every 20 ms). --json always gives the measured time.
_SHOWN_WAIT_MS = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run `thrift` with `argv` (default: sys.argv[1:]); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in args:
        split = args.index("--")
        args, command = args[:split], args[split + 1 :]
    try:
        # Shell completion (click's protocol, `_THRIFT_COMPLETE=...`) is typer's job.
        fast = _parse_ask(args[1:]) if args[:1] == ["ask"] and _COMPLETE_VAR not in os.environ else None
        if fast is not None:
            return ask_command(command, fast)
        return _typer_main(args, command)
    except (ThriftError, KeyboardInterrupt) as exc:
        message, code = _failure(exc) or (str(exc), 1)
        return _fail(message, code)


def _failure(exc: BaseException) -> tuple[str, int] | None:
    """The `thrift:` message and exit code of an error that ends thrift, or None for an
    exception that is not one of ours."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, SystemExit):  # raised by the SIGTERM and SIGHUP handlers, see run()
        code = exc.code
        if not isinstance(code, int) or code <= 128:
            return None
        import signal

        try:
            return f"terminated by {signal.Signals(code - 128).name}", code
        except ValueError:
            return None
    if isinstance(exc, RunnerError):
        return str(exc), exc.exit_code
    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, ThriftError):
        return str(exc), 1
    return None


def _typer_main(args: list[str], command: list[str] | None) -> int:
    import typer

    try:  # recent typer releases vendor their own click; older ones use the click package
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException  # type: ignore[assignment]

    from thrift_cli.commands import app

    try:
        code = app(args=args, prog_name="thrift", standalone_mode=False, obj=command)
    except ClickException as exc:
        message = exc.format_message()  # empty after `thrift` alone printed its help
        return _fail(message, exc.exit_code) if message else exc.exit_code
    except typer.Abort:
        return _fail("interrupted", 130)
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int) -> int:
    print(f"thrift: {message}", file=sys.stderr)
    return code


_ADDED_ENV: set[str] = set()
_COMPLETE_VAR = "_THRIFT_COMPLETE"


def _park_closed_std_fds() -> None:
    """Put /dev/null on whichever of fds 0-2 we were started without (`>&-`), before anything
    opens a file: the next file opened takes the lowest free number, and writing the answer
    to fd 1 would then write it into the cache file or a lock file.

    stdout gets a read-only /dev/null, so writing the answer still fails with EBADF, as on
    the closed descriptor, and is reported as `echo` reports it (exit 1); the command's
    answer is still stored. A closed stderr needs a stream too: Python's print() falls
    back to stdout when sys.stderr is None, which would mix our messages into the answer.
    """
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError as exc:
            if exc.errno != errno.EBADF:
                continue
        null = os.open(os.devnull, mode)  # the lowest free number: `fd` itself
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if fd == 2:  # the stream lives as long as the process: no `with`
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the runner, which ends the command


def run() -> None:
    """Console-script entry point."""
    import signal

    _park_closed_std_fds()
    # One question is a tiny matrix product: BLAS threads only add wake-up and contention
    # cost (measured 9 ms single-threaded against 18-280 ms with two threads on a busy
    # 2-core machine). Set before numpy is first imported; a user's setting wins.
    # The LLM command gets the environment as it was (a local model wants its threads).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if var not in os.environ:
            os.environ[var] = "1"
            _ADDED_ENV.add(var)

    # A closed terminal (SIGHUP) ends the command as SIGTERM does: it runs in its own
    # session, so nobody else would.
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)
    code = main()
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except OSError:
            # The reader left (`| head -1`) or stdout is gone: silence the flush at exit,
            # keep our exit code.
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.exit(code)
