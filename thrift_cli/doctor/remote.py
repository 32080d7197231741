"""Doctor's check of the team's remote, when configured: reachable, set up by this
thrift (schema, embedding model), and the key known (its tenant and rows)."""

from __future__ import annotations

from collections.abc import Iterator

from thrift_cli import config
from thrift_cli.doctor import FAIL, OFF, OK, WARN, Check, Context
from thrift_cli.errors import UsageError


def check_remote(context: Context) -> Iterator[Check]:
    from thrift_cli import remote_db

    settings = context.settings
    try:
        url, source = settings.value("database_url")
        api_key = settings.value("api_key")[0]
    except UsageError as exc:
        yield Check("remote", FAIL, f"cannot tell: {exc}", "see the environment line")
        return
    if url is None:
        yield from _check_rest(context, api_key)
        return
    shown = config.masked("database_url", url)
    unset = (
        f"unset {source}"
        if source in ("SUPABASE_DB_URL", "DATABASE_URL")
        else "thrift config unset database_url"
    )
    try:
        conn = remote_db.connect(url, api_key)
    except remote_db.RemoteError as exc:
        yield Check(
            "remote", FAIL, f"{shown}: {exc.reason}", f"check the URL and that the server is up, or {unset}"
        )
        return
    try:
        with remote_db.errors_reported(url):
            version = remote_db.schema_version(conn)
            if version is None:
                yield Check("remote", FAIL, f"{shown}: not a thrift remote yet", "thrift remote init")
                return
            try:
                remote_db.check_model(conn)
            except remote_db.RemoteError as exc:
                yield Check("remote", FAIL, f"{shown}: {exc}", "point database_url at a remote of this model")
                return
            if api_key is None:
                yield Check(
                    "remote", FAIL, f"{shown}: schema {version}, but no api_key", "set THRIFT_API_KEY"
                )
                return
            report = remote_db.status(conn)
    except remote_db.RemoteError as exc:
        yield Check(
            "remote",
            FAIL,
            f"{shown}: {exc.reason}",
            "thrift remote key create EMAIL, then set THRIFT_API_KEY",
        )
        return
    finally:
        conn.close()
    detail = (
        f"{shown}: schema {report['schema']}, tenant {report['tenant']}, {report['entries']:,} entries, "
        f"round trip {report['rtt_ms']:.1f} ms"
    )
    yield Check("remote", OK, detail)


def _check_rest(context: Context, api_key: str | None) -> Iterator[Check]:
    """The Supabase REST path, when SUPABASE_URL + SUPABASE_KEY are set instead."""
    from thrift_cli import remote_db, remote_rest

    try:
        url, key = context.settings.value("supabase_url")[0], context.settings.value("supabase_key")[0]
    except UsageError as exc:
        yield Check("remote", FAIL, f"cannot tell: {exc}", "see the environment line")
        return
    if url is None and key is None:
        yield Check("remote", OFF, "not configured (set SUPABASE_DB_URL, DATABASE_URL or database_url)")
        return
    if url is None or key is None:
        missing = "SUPABASE_KEY" if key is None else "SUPABASE_URL"
        yield Check("remote", FAIL, f"the Supabase REST path lacks {missing}", f"set {missing}")
        return
    if api_key is None:
        yield Check("remote", FAIL, f"{url} (REST): no api_key", "set THRIFT_API_KEY")
        return
    try:
        report = remote_rest.status(url, key, api_key)
    except remote_db.RemoteError as exc:
        yield Check(
            "remote",
            FAIL,
            f"{url} (REST): {exc.reason}",
            "thrift remote init (over SUPABASE_DB_URL), "
            "check SUPABASE_KEY, THRIFT_API_KEY and that the project is up",
        )
        return
    yield Check(
        "remote",
        OK,
        f"{url} (REST): schema {report['schema']}, tenant {report['tenant']}, {report['entries']:,} entries, "
        f"round trip {report['rtt_ms']:.1f} ms",
    )


def check_push_on_store(context: Context) -> Iterator[Check]:
    """push_on_store: whether a miss is pushed at once, and how the last push went (its
    log, push_on_store.py)."""
    from thrift_cli import push_on_store

    settings = context.settings
    try:
        on, source = settings.value("push_on_store")
        rest = [settings.value(k)[0] for k in ("supabase_url", "supabase_key")]
        remote = settings.value("database_url")[0] is not None or None not in rest
    except UsageError as exc:
        yield Check("push on store", FAIL, f"cannot tell: {exc}", "see the environment line")
        return
    if not on:
        yield Check("push on store", OFF, "off: thrift sync pushes new answers")
        return
    if not remote:
        yield Check(
            "push on store",
            WARN,
            f"on ({source}), but no remote is configured: nothing is pushed",
            "set SUPABASE_DB_URL or DATABASE_URL, or thrift config set push_on_store false",
        )
        return
    home = context.home
    last = push_on_store.last_outcome(home) if home is not None else None
    if home is None or last is None:
        yield Check("push on store", OK, "on: no background push yet")
    elif last.failed:
        log = home / push_on_store.LOG_NAME
        yield Check(
            "push on store",
            WARN,
            f"the last background push ({last.when}) failed: {last.text}",
            f"see the remote line; thrift sync pushes what is left (the log: {log})",
        )
    else:
        yield Check("push on store", OK, f"on: the last background push ({last.when}): {last.text}")
