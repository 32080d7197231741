"""`thrift top`: check the options, then run the app until q.

Options are checked before Textual takes the terminal, so a bad one is one line on
stderr and exit 2, as everywhere else.
"""

from __future__ import annotations

import sys
import time

from thrift_cli import config
from thrift_cli.errors import UsageError

MIN_INTERVAL = 0.2


def run(*, since: str | None, namespace: str | None, interval: str | None, light: bool) -> int:
    from thrift_cli.home import db_path
    from thrift_cli.stats_cmd import parse_since
    from thrift_cli.tui.app import DEFAULT_WINDOW, WINDOWS, Window

    config.check_environment()
    view = Window(DEFAULT_WINDOW, None if namespace is None else config.namespace(namespace, "--namespace"))
    if since is not None:
        given = config.checked_text(since, "--since").strip()
        if given in dict(WINDOWS):
            view.name = given
        else:
            try:
                config.duration(given, "--since")
                view.name = given  # a sliding window of that length
            except UsageError:
                view.custom_since = parse_since(given, time.time())
    seconds = 1.0 if interval is None else _interval(interval)
    if not sys.stdout.isatty():
        raise UsageError("thrift top needs a terminal; for figures in a script use thrift stats --json")

    from thrift_cli.tui.app import TopApp

    app = TopApp(
        db_path(),
        window=view,
        interval=seconds,
        prices=config.prices(),
        default_price=float(config.value("price_per_1k")),
        light=light,
    )
    app.run()
    return 0


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds >= MIN_INTERVAL or seconds == float("inf"):
        raise UsageError(
            f"--interval must be a number of seconds, at least {MIN_INTERVAL}, got {config.shown(value)}"
        )
    return seconds
