"""`thrift sync` as the shell runs it: settings in, progress and one summary line out."""

from __future__ import annotations

import json
import sys

from thrift_cli import config
from thrift_cli.errors import UsageError
from thrift_sync.engine import SyncResult, sync


def run(*, push_only: bool, pull_only: bool, dry_run: bool, as_json: bool) -> int:
    """Sync (both ways, or --push / --pull only); print the summary; the exit code."""
    from thrift_cli.home import db_path

    config.check_environment()
    if push_only and pull_only:
        raise UsageError("--push and --pull cannot be used together (without either, sync does both)")
    where = config.remote()
    if where is None:
        raise UsageError(
            "no remote: set SUPABASE_DB_URL or DATABASE_URL (or SUPABASE_URL and SUPABASE_KEY), "
            "or thrift config set database_url postgresql://..."
        )
    url, rest_key = where
    progress = _progress_line if sys.stderr.isatty() and not as_json else None
    result = sync(
        db_path(),
        url,
        config.value("api_key"),
        push=not pull_only,
        pull=not push_only,
        dry_run=dry_run,
        progress=progress,
        rest_key=rest_key,
    )
    if progress:
        print("\r\033[K", end="", file=sys.stderr)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        print(summary(result), file=sys.stderr)
    return 0


def _progress_line(phase: str, done: int, total: int | None) -> None:
    of = f"/{total:,}" if total else ""
    print(f"\rthrift sync: {phase} {done:,}{of}\033[K", end="", file=sys.stderr, flush=True)


def summary(result: SyncResult) -> str:
    """One line: what moved each way, how long it took."""
    would = "would push" if result.dry_run else "pushed"
    parts = [f"{would} {result.pushed:,}"]
    if result.forgotten:
        parts[0] += f" (+{result.forgotten:,} forgotten)"
    parts.append(f"{'would pull' if result.dry_run else 'pulled'} {result.pulled:,}")
    if not result.dry_run:
        parts += [f"merged {result.merged:,}", f"deleted {result.deleted:,}"]
    rate = f", {result.per_second:,.0f} entries/s" if result.moved and not result.dry_run else ""
    where = f"{result.remote} as {result.tenant}"
    return f"thrift sync: {', '.join(parts)} in {result.seconds:.2f} s{rate} ({where})"
