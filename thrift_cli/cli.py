"""The `thrift` command line. Each command parses, calls the core, and renders."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

try:  # recent typer releases vendor their own click; older ones use the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]

from thrift_cli.errors import RunnerError, ThriftError, UsageError

if TYPE_CHECKING:
    from thrift_cli.ask import AskResult

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="thrift: a semantic cache for LLM calls, in the shell.",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | None, what: str) -> float | None:
    """`90`, `90s`, `15m`, `2h`, `7d`, `1w` -> seconds."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"{what} must be a positive duration such as 90, 15m, 2h or 7d, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


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


def _version(value: bool) -> None:
    if value:
        from thrift_cli import __version__

        print(f"thrift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """thrift: a semantic cache for LLM calls, in the shell."""


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[
        Optional[str],
        typer.Argument(help="The question; read from stdin when absent or '-'.", show_default=False),
    ] = None,
    namespace: Annotated[
        Optional[str],
        typer.Option(
            "--namespace",
            "-n",
            envvar="THRIFT_NAMESPACE",
            help="Share answers under this name instead of the command line.",
        ),
    ] = None,
    min_similarity: Annotated[
        Optional[float],
        typer.Option(
            "--min-similarity",
            "-s",
            envvar="THRIFT_MIN_SIMILARITY",
            help="Cosine similarity a paraphrase needs to be served, in (0, 1]; default 0.85.",
        ),
    ] = None,
    ttl: Annotated[
        Optional[str],
        typer.Option("--ttl", envvar="THRIFT_TTL", help="Expire the answer after 90, 15m, 2h, 7d..."),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Call the command and replace the cached answer.")
    ] = False,
    no_store: Annotated[bool, typer.Option("--no-store", help="Never write to the cache.")] = False,
    lookup_only: Annotated[
        bool, typer.Option("--lookup-only", help="Never call the command; exit 3 on a miss.")
    ] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="Pipe the question to the command's stdin.")] = False,
    timeout: Annotated[
        Optional[str],
        typer.Option("--timeout", help="Kill the command after this long (exit 124); 30, 2m..."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Report the lookup as one JSON line on stderr.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Report tier, similarity and timing on stderr.")
    ] = False,
) -> int:
    """Print the cached answer to QUESTION, or run the command after -- and cache its answer.

    thrift ask [OPTIONS] [QUESTION] -- COMMAND [ARGS]...

    Example: thrift ask "What is semantic caching?" -- llm -m gpt-4o-mini

    The question is appended to the command, replaces an argument "{}", or goes to its stdin with --stdin.

    Exit codes: 0 answered; the command's own code when it fails; 1 thrift's own error; 2 bad usage; 3 a miss under --lookup-only; 124 timed out; 127 command not found.
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    from thrift_cli import keys
    from thrift_cli.ask import AskOptions
    from thrift_cli.ask import ask as run_ask
    from thrift_cli.cache import SemanticCache, check_min_similarity
    from thrift_cli.helper import HelperClient
    from thrift_cli.home import db_path

    command: list[str] | None = ctx.obj
    if command is not None and not command:
        raise UsageError("no command after --")
    if command is None and not (lookup_only and namespace):
        raise UsageError("missing the LLM command: thrift ask QUESTION -- COMMAND [ARGS...]")
    if refresh and lookup_only:
        raise UsageError("--refresh and --lookup-only cannot be used together")
    if min_similarity is not None:
        check_min_similarity(min_similarity)
    options = AskOptions(
        command=command,
        stdin=stdin,
        min_similarity=min_similarity,
        ttl=parse_duration(ttl, "--ttl"),
        refresh=refresh,
        no_store=no_store,
        lookup_only=lookup_only,
        timeout=parse_duration(timeout, "--timeout"),
        env={k: v for k, v in os.environ.items() if k not in _ADDED_ENV} if _ADDED_ENV else None,
    )
    text = _read_question(question)
    if not text.strip():
        raise UsageError("the question is empty")
    ns = namespace or keys.command_namespace(command or [], stdin=stdin)
    # One search per process: sqlite-vec on disk beats loading every vector into memory.
    with SemanticCache(min_similarity=min_similarity, namespace=ns, memory_index=False) as cache:
        cache.helper = HelperClient.find(db_path().parent)  # a running `thrift helper`, if any
        # fd 1 itself: works when sys.stdout is None (stdout closed with >&-).
        result = run_ask(cache, text, options, 1)
    if result.error:
        print(f"thrift: {result.error}", file=sys.stderr)
    _report(result, as_json=as_json, verbose=verbose)
    return result.exit_code


@app.command()
def index(
    namespace: Annotated[
        Optional[list[str]],
        typer.Option("--namespace", "-n", help="Only this namespace (repeatable); default: all of them."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
    background: Annotated[
        bool, typer.Option("--background", hidden=True, help="Quiet, and leave an index being built alone.")
    ] = False,
) -> int:
    """Bring the HNSW index of each large namespace up to date with the cache.

    Namespaces with fewer entries than THRIFT_HNSW_MIN_ENTRIES (20000) are searched exactly and need no index. thrift ask starts this in the background when an index is missing or behind, so running it by hand is only needed to have it done now, e.g. after copying a cache file.
    """  # noqa: E501
    from thrift_cli import hnsw
    from thrift_cli.home import db_path
    from thrift_cli.store import SQLiteStore

    with SQLiteStore(db_path()) as store:
        for ns in namespace or store.namespaces():
            count = store.count(ns)
            if count < hnsw.min_entries():
                message = f"{ns}: {count} entries, searched exactly (no index below {hnsw.min_entries()})"
            else:
                graph = store.build_index(ns, wait=not background)
                message = (
                    f"{ns}: {count} entries, index up to date ({len(graph.index)} vectors)"
                    if graph is not None
                    else f"{ns}: {count} entries, another process is building its index"
                )
            if not (quiet or background):
                print(message)
    return 0


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(help="JSONL, CSV or TSV of questions and answers, or llm's logs.db."),
    ],
    namespace: Annotated[
        Optional[str],
        typer.Option(
            "--namespace",
            "-n",
            envvar="THRIFT_NAMESPACE",
            help="Store every pair under this name (default: the command after --, or each record's own).",
        ),
    ] = None,
    ttl: Annotated[
        Optional[str],
        typer.Option("--ttl", envvar="THRIFT_TTL", help="Expire the answers after 90, 15m, 2h, 7d..."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the answers already cached for these questions.")
    ] = False,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="The command after -- reads the question on stdin (as in ask).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> int:
    """Bulk-load question/answer pairs into the cache; importing again stores nothing new.

    thrift import [OPTIONS] FILE [-- COMMAND [ARGS]...]

    Example: thrift import answers.jsonl -- llm -m gpt-4o-mini

    JSONL, .json, CSV and TSV records need a question field (question, prompt, q or input) and an answer field (answer, response, completion, a or output), and may have a namespace. llm's logs.db (see: llm logs path) is imported under "llm -m MODEL", so thrift ask Q -- llm -m MODEL finds its answers. A bad record stops the import before anything is stored (exit 2).
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    import time
    from dataclasses import asdict

    from thrift_cli import keys
    from thrift_cli.importer import import_file

    command: list[str] | None = ctx.obj
    if command is not None and not command:
        raise UsageError("no command after --")
    if stdin and command is None:
        raise UsageError("--stdin needs the command after --")
    if not namespace and command:
        namespace = keys.command_namespace(command, stdin=stdin)
    seconds = parse_duration(ttl, "--ttl")
    started, shown = time.monotonic(), [0.0]

    def show(done: int, total: int) -> None:  # one line on a terminal, redrawn in place
        now = time.monotonic()
        if done < total and now - shown[0] < 0.1:
            return
        shown[0] = now
        rate = done / (now - started) if now > started else 0.0
        sys.stderr.write(f"\rimported {done:,}/{total:,} ({rate:,.0f}/s)\x1b[K")
        sys.stderr.flush()

    tty = sys.stderr is not None and sys.stderr.isatty()
    try:
        summary = import_file(
            file, namespace=namespace, ttl=seconds, replace=replace, progress=show if tty else None
        )
    finally:
        if tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    if as_json:
        rounded = {"seconds": round(summary.seconds, 3), "entries_per_s": round(summary.entries_per_s, 1)}
        print(json.dumps({**asdict(summary), **rounded}, ensure_ascii=False))
        return 0
    skipped = sum(summary.skipped.values())
    replaced = f"{summary.replaced:,} replaced, " if replace else ""
    count = len(summary.namespaces)
    print(
        f"imported {summary.imported:,} {'entry' if summary.imported == 1 else 'entries'} "
        f"({replaced}{summary.already_cached:,} already cached, {skipped:,} skipped) "
        f"into {count} {'namespace' if count == 1 else 'namespaces'} "
        f"in {summary.seconds:.1f} s ({summary.entries_per_s:,.0f} entries/s)"
    )
    if skipped:
        why = ", ".join(f"{reason} ({n:,})" for reason, n in summary.skipped.items())
        print(f"thrift: skipped: {why}", file=sys.stderr)
    if not namespace and count <= 10:  # the namespaces came from the file: say what they are
        for name in summary.namespaces:
            print(f"thrift: namespace {name}", file=sys.stderr)
    return 0


@app.command()
def helper() -> int:
    """Keep the model and indexes loaded for thrift ask, until Ctrl-C or SIGTERM.

    While it runs, a thrift ask that misses the exact tier asks it over a socket in THRIFT_HOME instead of loading the model itself (a semantic hit in ~0.1 s instead of ~0.3 s). thrift ask works the same without it.
    """  # noqa: E501
    from thrift_cli import helper as helper_module
    from thrift_cli.home import db_path

    def ready(path: object) -> None:
        print(f"thrift helper: ready on {path}", file=sys.stderr, flush=True)

    try:
        helper_module.serve(db_path().parent, ready=ready)
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


def _report(result: object, *, as_json: bool, verbose: bool) -> None:
    from dataclasses import asdict

    from thrift_cli.ask import AskResult

    assert isinstance(result, AskResult)
    if verbose:
        for line in _describe(result):
            print(line, file=sys.stderr)
    if as_json:  # last, so a script can read the last line of stderr
        record = asdict(result)
        for name in ("lookup_ms", "call_ms", "similarity"):
            if record[name] is not None:
                record[name] = round(record[name], 4 if name == "similarity" else 2)
        print(json.dumps(record, ensure_ascii=False), file=sys.stderr)


def _describe(result: AskResult) -> list[str]:
    if result.tier != "miss":
        line = f"thrift: {result.tier} hit, similarity {result.similarity:.3f}"
        if result.tier == "semantic":
            line += f", matched {result.matched_question!r}"
        line += f" ({result.lookup_ms:.0f} ms)"
    else:
        line = "thrift: miss"
        if result.similarity is not None:
            line += f" (closest: {result.similarity:.3f}, {result.matched_question!r})"
        if result.call_ms is not None:
            line += f", command ran {result.call_ms / 1000:.2f} s"
            line += ", stored" if result.stored else f", not stored: {result.not_stored_because}"
    lines = [f"{line} [namespace {result.namespace}]"]
    for veto in result.vetoed or []:
        guard, question, similarity = veto["guard"], veto["question"], veto["similarity"]
        lines.append(f"thrift:   vetoed by the {guard} guard: {question!r} (similarity {similarity})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point: everything after the first `--` is the LLM command, untouched."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in args:
        split = args.index("--")
        args, command = args[:split], args[split + 1 :]
    try:
        code = app(args=args, prog_name="thrift", standalone_mode=False, obj=command)
    except ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return _fail("interrupted", 130)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except RunnerError as exc:
        return _fail(str(exc), exc.exit_code)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except ThriftError as exc:
        return _fail(str(exc), 1)
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int) -> int:
    print(f"thrift: {message}", file=sys.stderr)
    return code


_ADDED_ENV: set[str] = set()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the runner, which ends the command


def run() -> None:
    """Console-script entry point."""
    import signal

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
