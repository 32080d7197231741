"""`thrift doctor`: check each part thrift relies on, say what is wrong and how to fix it.

Each check is a function of the `Context` that yields `Check`s, one line each of the
report, in this order: the config file and the environment (settings.py), the cache file
and sqlite-vec (cache.py), the embedding model, its ONNX build and the HNSW graphs
(model.py), the helper and Redis (services.py), the remote and push_on_store
(remote.py), PII scrubbing and its queue (privacy.py).

A check never raises (`run` turns anything unexpected into a failed line) and changes
nothing: the cache file is opened as a lookup opens it and only read, and nothing is
created where there is nothing yet (no THRIFT_HOME, cache file, ONNX model or graph). A
bad config file fails its own line; the other checks read the settings without its bad
lines, as far as they can.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli.errors import ThriftError

if TYPE_CHECKING:
    from thrift_cli.doctor.settings import Settings

OK, OFF, WARN, FAIL = "ok", "off", "warn", "fail"
LABELS = {OK: "ok", OFF: "--", WARN: "warn", FAIL: "FAIL"}
# How long the helper and a slow Redis get to answer doctor (thrift ask gives them less).
PATIENCE_S = 1.0

_BUG = "this is a bug in thrift doctor: please report it with this line"


@dataclass(frozen=True)
class Check:
    """One line of the report. `off`: nothing to check (not configured, not running, no
    cache yet), which is no failure; `warn`: works, but should be fixed."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != FAIL


@dataclass
class Context:
    """What the checks share: the home, the settings, and the cache file once its check
    has opened it (read-only use; `run` closes it)."""

    home: Path | None
    home_error: str | None
    settings: Settings
    conn: Any = None
    no_cache: str = "no cache yet"  # why `conn` is None, for the checks that need it


Step = Callable[[Context], Iterator[Check]]


def run(home: Path | None = None) -> list[Check]:
    """Every check, in the order of the report, on `home` (default: THRIFT_HOME)."""
    from thrift_cli.doctor import cache, model, privacy, remote, services, settings

    home_error = None
    if home is None:
        from thrift_cli.home import thrift_home

        try:
            home = thrift_home()
        except ThriftError as exc:
            home_error = str(exc)
    context = Context(home, home_error, settings.Settings(home))
    steps: list[tuple[str, Step]] = [
        ("config", settings.check_config),
        ("environment", settings.check_environment),
        ("cache file", cache.check_cache_file),
        ("sqlite-vec", cache.check_sqlite_vec),
        ("model", model.check_model),
        ("onnx model", model.check_onnx_model),
        ("index", model.check_indexes),
        ("helper", services.check_helper),
        ("redis", services.check_redis),
        ("remote", remote.check_remote),
        ("push on store", remote.check_push_on_store),
        ("scrub", privacy.check_scrub),
    ]
    try:
        return [check for name, step in steps for check in _guarded(name, step, context)]
    finally:
        if context.conn is not None:
            context.conn.close()


def _guarded(name: str, step: Step, context: Context) -> list[Check]:
    try:
        return list(step(context))
    except Exception as exc:  # a check must report, never end the report
        return [Check(name, FAIL, f"could not be checked: {type(exc).__name__}: {exc}", _BUG)]


def render(checks: list[Check]) -> str:
    """The report: `status  name  detail — fix: ...`, one line per check, aligned."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        line = f"{LABELS[c.status]:<6}{c.name:<{width}}  {_one_line(c.detail)}"
        lines.append(line + (f" — fix: {_one_line(c.fix)}" if c.fix else ""))
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict[str, Any]:
    """The report as one object: `ok` (nothing failed) and every check."""
    return {"ok": all(c.ok for c in checks), "checks": [{**asdict(c), "ok": c.ok} for c in checks]}


def _one_line(text: str) -> str:
    """`text` with its control characters escaped (a path or an error message may hold a
    newline): one check, one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
