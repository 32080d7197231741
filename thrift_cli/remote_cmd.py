"""`thrift remote init|status|key`: setting up the team's Postgres remote and its keys.

A shell module, as `commands.py`: it parses, calls remote_db.py, and renders. The remote
is `database_url` (SUPABASE_DB_URL, DATABASE_URL or config.toml); `init` and `key` need a
role that may create tables and manage keys (the database owner, or a member of
thrift_admin), `status` runs as a client with `api_key` (THRIFT_API_KEY).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from thrift_cli import config
from thrift_cli.errors import UsageError

remote_app = typer.Typer(
    no_args_is_help=True,
    help="Set up the team's remote (Postgres + pgvector, as Supabase runs) and its API keys.",
)
key_app = typer.Typer(
    no_args_is_help=True, help="Create and revoke the remote's API keys (only hashes are stored)."
)
remote_app.add_typer(key_app, name="key")


def _url() -> str:
    config.check_environment()
    url = config.value("database_url")
    if url is None:
        raise UsageError(
            "no remote: set SUPABASE_DB_URL or DATABASE_URL, or thrift config set database_url URL"
        )
    return str(url)


@remote_app.command()
def init(
    adopt: Annotated[
        bool, typer.Option("--adopt", help="Migrate ThriftLM's cache_entries in place (needs --namespace).")
    ] = False,
    namespace: Annotated[
        Optional[str],
        typer.Option("--namespace", "-n", help="With --adopt: the namespace ThriftLM's entries go under."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> int:
    """Create or upgrade the remote's schema (sql/postgres/): tables, the HNSW index, the match_cache_entries function, row-level security. Safe to run again: applied migrations are skipped.

    With --adopt --namespace NS, a database holding ThriftLM's cache_entries is migrated in place: every row keeps its id, answer and embedding; each ThriftLM api_key becomes a tenant whose key (only its hash is kept) works with thrift; then thrift sync pulls those answers.
    """  # noqa: E501
    from thrift_cli import remote_db

    if adopt and namespace is None:
        raise UsageError("--adopt needs --namespace NS: the namespace ThriftLM's entries go under")
    if namespace is not None and not adopt:
        raise UsageError("--namespace goes with --adopt")
    if namespace is not None:
        config.namespace(namespace, "--namespace")
    url = _url()
    with remote_db.connect(url) as conn, remote_db.errors_reported(url):
        if adopt:
            report = remote_db.adopt(conn, namespace or "")
            version = remote_db.schema_version(conn)
            if as_json:
                print(json.dumps({**report, "schema": version}))
            else:
                print(
                    f"remote {remote_db.shown_url(url)}: adopted {report['rows']:,} ThriftLM rows as "
                    f"{report['entries']:,} entries of {report['tenants']:,} tenants under namespace "
                    f"{report['namespace']!r}; schema {version}"
                )
            for table in report["kept_aside"]:
                print(
                    f"thrift: note: ThriftLM's {table} is kept aside, unread; drop it when done",
                    file=sys.stderr,
                )
            return 0
        if remote_db.is_thriftlm(conn):
            raise UsageError(
                "this database holds ThriftLM's cache_entries: thrift remote init --adopt --namespace NS"
            )
        applied = remote_db.migrate(conn)
        version = remote_db.schema_version(conn)
    if as_json:
        print(json.dumps({"applied": applied, "schema": version}))
    elif applied:
        print(f"remote {remote_db.shown_url(url)}: applied {', '.join(applied)}; schema {version}")
    else:
        print(f"remote {remote_db.shown_url(url)}: up to date, schema {version}")
    return 0


@remote_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as one JSON object.")] = False,
) -> int:
    """Report the remote's schema version, this key's tenant and its row counts, and the round-trip time."""
    from thrift_cli import remote_db

    config.check_environment()
    where = config.remote()
    if where is None:
        raise UsageError(
            "no remote: set SUPABASE_DB_URL or DATABASE_URL (or SUPABASE_URL and SUPABASE_KEY), "
            "or thrift config set database_url URL"
        )
    url, rest_key = where
    api_key = config.value("api_key")
    if api_key is None:
        raise UsageError(
            "no API key: set THRIFT_API_KEY or thrift config set api_key KEY (thrift remote key create)"
        )
    if rest_key is not None:
        from thrift_cli import remote_rest

        report = remote_rest.status(url, rest_key, api_key)
        shown = f"{url} (REST)"
    else:
        with remote_db.connect(url, api_key) as conn, remote_db.errors_reported(url):
            report = remote_db.status(conn)
        shown = remote_db.shown_url(url)
    if as_json:
        print(json.dumps({"remote": shown, **report}))
        return 0
    print(
        f"remote {shown}: schema {report['schema']}, tenant {report['tenant']}: "
        f"{report['entries']:,} entries in {report['namespaces']:,} namespaces "
        f"({report['tombstones']:,} deleted), round trip {report['rtt_ms']:.1f} ms"
    )
    return 0


@key_app.command("create")
def key_create(
    email: Annotated[str, typer.Argument(help="Whose key this is (kept with the key's hash).")],
    tenant: Annotated[
        Optional[str],
        typer.Option(
            "--tenant", help="Share this tenant's entries (a team's second key); default: a new tenant."
        ),
    ] = None,
) -> int:
    """Create an API key and print it once: only its SHA-256 is stored, so it cannot be shown again."""
    from thrift_cli import remote_db

    remote_db.check_email(email)
    if tenant is not None:
        config.tenant(tenant, "--tenant")
    url = _url()
    with remote_db.connect(url) as conn, remote_db.errors_reported(url):
        if remote_db.schema_version(conn) is None:
            raise UsageError("this database is not a thrift remote yet; run thrift remote init")
        key = remote_db.create_key(conn, email, tenant)
    print(key)
    return 0


@key_app.command("revoke")
def key_revoke(key: Annotated[str, typer.Argument(help="The key to revoke.")]) -> int:
    """Revoke an API key: every later call with it is refused. Exit 3 if no such live key."""
    from thrift_cli import remote_db

    url = _url()
    with remote_db.connect(url) as conn, remote_db.errors_reported(url):
        revoked = remote_db.revoke_key(conn, key)
    if not revoked:
        print("thrift: no such key, or it was revoked already", file=sys.stderr)
        return 3
    print("revoked")
    return 0
