"""The `thrift` commands (typer). Each parses, calls the core, and renders.

`thrift_cli.cli` is the entry point: it runs a plain `thrift ask` without importing
typer (~45 ms of every start) and hands everything else to the app here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from thrift_cli import config
from thrift_cli.config_cmd import config_app
from thrift_cli.errors import StoreError, UsageError
from thrift_cli.remote_cmd import remote_app


def where_the_cache_lives() -> str:
    """The last paragraph of every help page, computed when it is shown."""
    from rich.markup import escape

    from thrift_cli.home import DB_NAME, default_home

    default = escape(str(default_home()))
    current = os.environ.get(config.HOME)
    if not current:
        return f"The cache is {DB_NAME} in THRIFT_HOME, by default {default} on this machine."
    return f"The cache is {DB_NAME} in THRIFT_HOME, now {escape(current)} (by default {default})."


class _Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = where_the_cache_lives()
        super().format_help(ctx, formatter)


class _Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = where_the_cache_lives()
        super().format_help(ctx, formatter)


# The completion options are typer's own; `cli.main` routes click's completion requests
# (`_THRIFT_COMPLETE`) here, so the fast `thrift ask` path never imports typer for them.
app = typer.Typer(
    cls=_Group,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="thrift: a semantic cache for LLM calls, in the shell.",
)
app.add_typer(config_app, name="config")
app.add_typer(remote_app, name="remote")


def _namespaces(given: list[str] | None) -> list[str] | None:
    return [config.namespace(ns, "--namespace") for ns in given] if given is not None else None


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


@app.command(cls=_Command)
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
            help="Share answers under this name instead of the command line. (env THRIFT_NAMESPACE)",
        ),
    ] = None,
    # Text, not float: `config.fraction` checks it, for typer and the fast parser alike.
    min_similarity: Annotated[
        Optional[str],
        typer.Option(
            "--min-similarity",
            "-s",
            metavar="X",
            help="Cosine similarity a paraphrase needs to be served, in (0, 1]; default 0.85. "
            "(env THRIFT_MIN_SIMILARITY)",
            show_default=False,
        ),
    ] = None,
    # The environment is read by cli.ask_settings (not typer's envvar=), so that an error
    # names the variable a bad value came from.
    ttl: Annotated[
        Optional[str],
        typer.Option("--ttl", help="Expire the answer after 90, 15m, 2h, 7d... (env THRIFT_TTL)"),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Call the command and replace the cached answer.")
    ] = False,
    no_store: Annotated[bool, typer.Option("--no-store", help="Never write to the cache.")] = False,
    no_scrub: Annotated[
        bool,
        typer.Option(
            "--no-scrub", help="Store the answer as it is, personal data included (env THRIFT_SCRUB)."
        ),
    ] = False,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Serve a paraphrase on its similarity and guards alone, no verifier (env THRIFT_VERIFY).",
        ),
    ] = False,
    lookup_only: Annotated[
        bool, typer.Option("--lookup-only", help="Never call the command; exit 3 on a miss.")
    ] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="Pipe the question to the command's stdin.")] = False,
    timeout: Annotated[
        Optional[str],
        typer.Option("--timeout", help="Kill the command after this long (exit 124); 30, 2m..."),
    ] = None,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="After a local miss, ask the team's remote too (env THRIFT_REMOTE_LOOKUP; needs "
            "database_url and api_key).",
        ),
    ] = False,
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

    The question is appended to the command, or replaces an argument "{}"; with --stdin it goes to the command's stdin instead and the arguments are passed as is.

    Exit codes: 0 answered; the command's own code when it fails; 1 thrift's own error; 2 bad usage; 3 a miss under --lookup-only; 124 timed out; 126 command not executable; 127 command not found; 130 interrupted.
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    from thrift_cli.cli import ask_command

    return ask_command(
        ctx.obj,
        {
            "question": question,
            "namespace": namespace,
            "min_similarity": min_similarity,
            "ttl": ttl,
            "refresh": refresh,
            "no_store": no_store,
            "no_scrub": no_scrub,
            "no_verify": no_verify,
            "lookup_only": lookup_only,
            "stdin": stdin,
            "timeout": timeout,
            "remote": remote,
            "as_json": as_json,
            "verbose": verbose,
        },
    )


@app.command(cls=_Command)
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

    config.check_environment()
    namespace = _namespaces(namespace)
    with SQLiteStore(db_path()) as store:
        for ns in namespace or store.namespaces():
            count = store.count(ns)
            if count < hnsw.min_entries():
                message = f"{ns}: {count} entries, searched exactly (no index below {hnsw.min_entries()})"
            else:
                try:
                    graph = store.build_index(ns, wait=not background)
                except StoreError:
                    if background:
                        continue  # noted: lookups stop starting builds for a while
                    raise
                message = (
                    f"{ns}: {count} entries, index up to date ({len(graph.index)} vectors)"
                    if graph is not None
                    else f"{ns}: {count} entries, another process is building its index"
                )
            if not (quiet or background):
                print(message)
    return 0


@contextmanager
def _spooled_stdin(file: str) -> Iterator[str]:
    """`file`, or for `-` a temporary copy of stdin (an import reads its file twice: once
    to check every record, once to store them), named `<stdin>` in any error line."""
    if file != "-":
        yield file
        return
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="thrift-import-") as tmp:
        spooled = os.path.join(tmp, "stdin")  # no suffix: the format is told by the content
        with open(spooled, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        try:
            yield spooled
        except UsageError as exc:
            raise UsageError(str(exc).replace(spooled, "<stdin>")) from None


@app.command("import", cls=_Command)
def import_(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(help="JSONL, CSV or TSV of questions and answers (- for stdin), or llm's logs.db."),
    ],
    namespace: Annotated[
        Optional[str],
        typer.Option(
            "--namespace",
            "-n",
            help="Store every pair under this name (default: the command after --, or each record's own). "
            "(env THRIFT_NAMESPACE)",
        ),
    ] = None,
    ttl: Annotated[
        Optional[str],
        typer.Option("--ttl", help="Expire the answers after 90, 15m, 2h, 7d... (env THRIFT_TTL)"),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the answers already cached for these questions.")
    ] = False,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="The command after -- reads the question on stdin (as in ask).")
    ] = False,
    no_scrub: Annotated[
        bool,
        typer.Option("--no-scrub", help="Store the answers as they are, personal data included."),
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

    if not file:
        raise UsageError("FILE must not be empty: name the file to import")
    config.check_environment()
    namespace = config.resolve(namespace, "--namespace", config.NAMESPACE, config.namespace)
    seconds = config.value("ttl", ttl)
    command: list[str] | None = ctx.obj
    if command is not None and not command:
        raise UsageError("no command after --")
    if stdin and command is None:
        raise UsageError("--stdin needs the command after --")
    if not namespace and command:
        namespace = keys.command_namespace(command, stdin=stdin)
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
        with _spooled_stdin(file) as path:
            summary = import_file(
                path,
                namespace=namespace,
                ttl=seconds,
                ttl_wins=ttl is not None,  # a record's own expires_at beats THRIFT_TTL, not --ttl
                replace=replace,
                progress=show if tty else None,
                scrub=False if no_scrub else None,
            )
        summary.path = file
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
    for warning in summary.warnings:
        print(f"thrift: warning: {warning}", file=sys.stderr)
    if not namespace and count <= 10:  # the namespaces came from the file: say what they are
        for name in summary.namespaces:
            print(f"thrift: namespace {name}", file=sys.stderr)
    return 0


@app.command(cls=_Command)
def export(
    file: Annotated[
        Optional[str],
        typer.Argument(help="Where to write the JSONL; stdout when absent or '-'.", show_default=False),
    ] = None,
    namespace: Annotated[
        Optional[str],
        typer.Option("--namespace", "-n", help="Only this namespace's entries (default: all of them)."),
    ] = None,
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since", metavar="WHEN", help="Only entries stored since: 1h, 7d... ago, or a date: 2026-12-01."
        ),
    ] = None,
    vectors: Annotated[
        bool, typer.Option("--vectors", help="Add each entry's embedding, so import need not embed again.")
    ] = False,
) -> int:
    """Write the cache's live entries as JSONL, one object a line, that thrift import reads back.

    thrift export [OPTIONS] [FILE]

    Example: thrift export --vectors backup.jsonl && THRIFT_HOME=~/new thrift import backup.jsonl

    Each line holds id, namespace, question, answer, created_at, expires_at, last_hit_at (unix seconds, exact) and hit_count; --vectors adds embedding_model and embedding (base64 of the little-endian float32 vector). Expired entries are left out. A FILE is replaced whole or not at all.

    Exit codes: 0 exported (an empty export too); 1 thrift's own error (unreadable cache, cannot write FILE); 2 bad usage; 3 nothing to export (no cache file, no such namespace); 141 the reader of stdout left early.
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    from thrift_cli.export import run

    return run(file, namespace=namespace, since=since, with_vectors=vectors)


@app.command(cls=_Command)
def helper() -> int:
    """Keep the model and indexes loaded for thrift ask, until Ctrl-C or SIGTERM.

    While it runs, a thrift ask that misses the exact tier asks it over a socket in THRIFT_HOME instead of loading the model itself (a semantic hit in ~0.1 s instead of ~0.3 s). thrift ask works the same without it.
    """  # noqa: E501
    from thrift_cli import helper as helper_module
    from thrift_cli.home import db_path

    def ready(path: object) -> None:
        print(f"thrift helper: ready on {path}", file=sys.stderr, flush=True)

    config.check_environment()  # the helper looks up for every ask: refuse a bad setting now

    try:
        helper_module.serve(db_path().parent, ready=ready)
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


@app.command(cls=_Command)
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
) -> int:
    """Check the cache file, the model, the indexes, the helper, Redis and the settings.

    Example: thrift doctor

    One line per check: ok, -- (nothing to check: not configured, not running, no cache yet), warn, or FAIL with how to fix it. It only reads: nothing is created or changed. Exit codes: 0 nothing failed; 1 something needs fixing.
    """  # noqa: E501
    from thrift_cli import doctor as doctor_module

    checks = doctor_module.run()
    if as_json:
        print(json.dumps(doctor_module.as_json(checks), ensure_ascii=False))
    else:
        print(doctor_module.render(checks))
    return 0 if all(check.ok for check in checks) else 1


@app.command(cls=_Command)
def forget(
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
            help="The namespace instead of the command line, as in ask. (env THRIFT_NAMESPACE)",
        ),
    ] = None,
    similar: Annotated[
        bool,
        typer.Option("--similar", help="Forget the entry thrift ask serves for QUESTION, paraphrase or not."),
    ] = False,
    entry_id: Annotated[
        Optional[str],
        typer.Option("--id", metavar="ID", help="Forget this entry (the entry_id of thrift ask --json)."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Forget every entry of the namespace given with --namespace.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --all deletes.")] = False,
    min_similarity: Annotated[
        Optional[str],
        typer.Option(
            "--min-similarity",
            "-s",
            metavar="X",
            help="With --similar: the similarity a paraphrase needs, as in ask. (env THRIFT_MIN_SIMILARITY)",
            show_default=False,
        ),
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="The command after -- reads the question on stdin (as in ask).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was deleted as one JSON object.")
    ] = False,
) -> int:
    """Delete a wrong or stale answer from every tier of the cache (local and Redis).

    thrift forget [OPTIONS] [QUESTION] -- COMMAND [ARGS]...

    Example: thrift forget --similar "Explain semantic caching" -- llm -m gpt-4o-mini

    QUESTION alone forgets the entry stored for exactly that question, in the namespace thrift ask would use (the command after --, or --namespace); --similar forgets the one thrift ask would serve for it, a paraphrase's included, and says which; --id forgets one entry; --namespace NS --all forgets the whole namespace, after asking (--yes on a script). The next thrift ask runs the command again. Prints one line per entry deleted: its question, namespace and tiers.

    Exit codes: 0 forgotten; 1 thrift's own error (a read-only cache, Redis unreachable: run it again), or --all not confirmed; 2 bad usage; 3 nothing to forget.
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    from thrift_cli.forget import ForgetOptions, run

    options = ForgetOptions(
        question=question,
        namespace=namespace,
        similar=similar,
        entry_id=entry_id,
        all=all_,
        yes=yes,
        min_similarity=min_similarity,
        stdin=stdin,
        as_json=as_json,
    )
    return run(ctx.obj, options, confirm=lambda prompt: typer.confirm(prompt, default=False, err=True))


@app.command(cls=_Command)
def sync(
    push: Annotated[bool, typer.Option("--push", help="Only push local changes to the remote.")] = False,
    pull: Annotated[bool, typer.Option("--pull", help="Only pull the remote's changes.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would move; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    background: Annotated[
        bool,
        # What thrift ask starts after a stored miss with push_on_store (thrift_sync/background.py).
        typer.Option("--background", hidden=True, help="Push as push_on_store does: logged, queued once."),
    ] = False,
) -> int:
    """Two-way sync of the local cache with the team's remote (DATABASE_URL, or SUPABASE_URL + SUPABASE_KEY).

    Example: thrift sync

    Pushes the entries, forgets and hit counts made here since the last sync, then pulls those made elsewhere (with their vectors: nothing is embedded again). Resumable: a sync interrupted at any point and run again ends as one never interrupted. Exit codes: 0 synced; 1 the remote cannot be reached or refused (nothing local changes); 2 no remote configured.
    """  # noqa: E501
    from thrift_sync.command import run

    return run(push_only=push, pull_only=pull, dry_run=dry_run, as_json=as_json, background=background)


@app.command(cls=_Command)
def stats(
    since: Annotated[
        Optional[str],
        typer.Option("--since", metavar="WHEN", help="Only events from then on: 1h, 7d, 2026-12-01..."),
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="How many top questions to list.")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object (schema in the README).")
    ] = False,
) -> int:
    """Print the cache's figures: hit rate, tiers, time, tokens and money saved, latency, top questions.

    Example: thrift stats --since 7d --json

    Counts come from the events every lookup records; entries are what is cached now. Time saved by a hit is the call time of the miss that stored its entry minus the hit's lookup; hits on entries no local miss stored (imported, pulled) are estimated at the namespace's median call time. Tokens are estimated as UTF-8 bytes / 4 of the question and the answer; prices per 1,000 tokens come from price_per_1k and the price table of config.toml. It only reads: with no cache yet it prints zeros and creates nothing.
    """  # noqa: E501
    from thrift_cli.stats_cmd import run

    return run(since=since, namespace=namespace, as_json=as_json, top=top)


@app.command(cls=_Command)
def top(
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            metavar="WHEN",
            help="The time window: 15m, 1h, 24h, 7d, 30d, all (t cycles them), any duration, or a date.",
        ),
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
    interval: Annotated[
        Optional[str],
        typer.Option("--interval", metavar="SECONDS", help="How often to look for new lookups."),
    ] = None,
    light: Annotated[bool, typer.Option("--light", help="Colours for a light terminal.")] = False,
) -> int:
    """Watch the cache live: hit rate, time, tokens and money saved, tiers, latency, lookups as they happen.

    Example: thrift top --since 1h

    The figures are thrift stats' for the window (last 24h unless --since), read again whenever another process records a lookup; it only reads the cache and never makes a writer wait. Keys: q quit, p pause, / filter by namespace, t time window, enter the selected entry, f forget it (asks first), ? help. NO_COLOR is honoured. Exit codes: 0 quit; 1 thrift's own error; 2 bad usage (or no terminal: use thrift stats --json).
    """  # noqa: E501
    from thrift_cli.tui.command import run

    return run(since=since, namespace=namespace, interval=interval, light=light)


@app.command(cls=_Command)
def serve(
    host: Annotated[
        str, typer.Option("--host", help="The address to listen on (0.0.0.0: every interface).")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8000,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open the dashboard.")] = False,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="The admin key (also THRIFT_SERVE_API_KEY); default: a new one, printed once.",
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", help="Worker processes (default: one per core, at most 4)."),
    ] = None,
    serial: Annotated[
        bool,
        typer.Option(
            "--serial",
            help="One request at a time, each embedded alone (bench_serve's baseline).",
            hidden=True,
        ),
    ] = False,
) -> int:
    """Serve the web dashboard and the multi-tenant cache API (a drop-in for ThriftLM's api/).

    Example: thrift serve --api-key "$KEY" --no-browser

    GET / is the dashboard; POST /lookup, /store, /forget, /keys and /keys/revoke, GET /metrics and /health are the API, documented at /docs (OpenAPI at /openapi.json). Every endpoint but / and /health needs a key (X-API-Key, Authorization: Bearer, or api_key in the body). The admin key opens $THRIFT_HOME's own cache, the one thrift ask fills, and alone creates and revokes tenant keys (POST /keys, /keys/revoke); each tenant key opens its tenant's cache, a file of its own. It stops once the requests in flight are answered. Exit codes: 0 stopped by Ctrl+C or SIGTERM (143 for SIGTERM with --workers 1, where uvicorn passes the signal on); 1 thrift's own error; 2 bad usage (a port in use, a bad option).
    """  # noqa: E501
    from thrift_cli.server.command import run

    return run(
        host=host, port=port, api_key=api_key, no_browser=no_browser, workers=workers, batch=not serial
    )
