"""The remote: connecting to the team's Postgres (what Supabase runs), its schema, its keys.

`sql/postgres/` holds the numbered migrations, applied in order by `thrift remote init`
and recorded in `thrift_migrations`, as `sql/sqlite/` is for the local file. Every client
session presents its API key in the setting `thrift.api_key`; the server hashes it and
row-level security shows the session its tenant's rows only (sql/postgres/0001).

psycopg is imported here only, and only by the commands that talk to the remote.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli import keys
from thrift_cli.errors import ThriftError, UsageError

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_TABLE = "thrift_migrations"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2/384"
CONNECT_TIMEOUT_S = 5
# A migration run takes this advisory lock: two `thrift remote init` at once apply each
# file once.
_LOCK_KEY = 0x7468726966  # "thrif"


class RemoteError(ThriftError):
    """The remote cannot be reached, refuses us, or is not a thrift remote."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message  # without the URL, for a line that names it already


def sql_dir() -> Path:
    """`sql/postgres/` of the source tree, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sql" / "postgres", here.parent / "sql" / "postgres"):
        if candidate.is_dir():
            return candidate
    raise ThriftError("thrift's remote schema files are missing; reinstall thrift-cli")


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every remote migration, in the order of their number."""
    files = sorted(p for p in sql_dir().glob("*.sql") if re.match(r"\d{4}_", p.name))
    return [(p.stem, p.read_text(encoding="utf-8")) for p in files]


def connect(
    url: str, api_key: str | None = None, *, timeout: float = CONNECT_TIMEOUT_S
) -> psycopg.Connection:
    """A connection to the remote at `url` (autocommit: each statement or `with
    conn.transaction()` block commits), presenting `api_key` when given."""
    import psycopg

    try:
        conn = psycopg.connect(
            url, connect_timeout=max(int(timeout), 1), autocommit=True, application_name="thrift"
        )
    except psycopg.Error as exc:
        raise RemoteError(
            f"cannot reach the remote at {shown_url(url)}: {reason(exc)}", reason(exc)
        ) from None
    try:
        if _has_vector(conn):
            from pgvector.psycopg import register_vector

            register_vector(conn)
        if api_key is not None:
            conn.execute("SELECT set_config('thrift.api_key', %s, false)", (api_key,))
    except psycopg.Error as exc:
        conn.close()
        raise RemoteError(f"the remote at {shown_url(url)} refused us: {reason(exc)}") from None
    return conn


def _has_vector(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_type WHERE typname = 'vector'").fetchone() is not None


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations this remote lacks, in one transaction; return their names.
    Refuses a remote written by a newer thrift, and one whose vectors come from another
    embedding model."""
    import psycopg

    wanted = migrations()
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
            unknown = sorted(applied - {name for name, _ in wanted})
            if unknown:
                raise RemoteError(
                    f"the remote was set up by a newer thrift (migration {unknown[-1]}); upgrade thrift-cli"
                )
            done = []
            for name, sql in wanted:
                if name in applied:
                    continue
                conn.execute(sql)  # type: ignore[call-overload]  # a file of statements, no parameters
                conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name) VALUES (%s)", (name,))
                done.append(name)
            claim_model(conn)
            if conn.execute("SELECT to_regprocedure('thrift_grant_api_roles()')").fetchone() != (None,):
                conn.execute("SELECT thrift_grant_api_roles()")  # Supabase's API roles, every run
    except psycopg.Error as exc:
        raise RemoteError(f"cannot set up the remote: {reason(exc)}") from None
    from pgvector.psycopg import register_vector

    register_vector(conn)  # the extension may be new
    return done


def claim_model(conn: psycopg.Connection) -> None:
    """Record this thrift's embedding model on the remote, or refuse a remote whose
    vectors come from another one (mixing them would make every similarity meaningless)."""
    conn.execute(
        "INSERT INTO thrift_meta (key, value) VALUES ('embedding_model', %s) ON CONFLICT (key) DO NOTHING",
        (EMBEDDING_MODEL,),
    )
    check_model(conn)


def check_model(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT value FROM thrift_meta WHERE key = 'embedding_model'").fetchone()
    if row is not None and row[0] != EMBEDDING_MODEL:
        raise RemoteError(
            f"the remote's vectors come from {row[0]}, not {EMBEDDING_MODEL}; use another database"
        )


def schema_version(conn: psycopg.Connection) -> str | None:
    """The newest applied migration, or None on a database thrift has not set up."""
    if conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone() == (None,):
        return None
    row = conn.execute(f"SELECT max(name) FROM {MIGRATIONS_TABLE}").fetchone()
    return row[0] if row else None


# -- ThriftLM users come over with their cache ------------------------------------------

THRIFTLM_COLUMNS = {
    "id",
    "api_key",
    "query",
    "response",
    "embedding",
    "created_at",
    "last_hit_at",
    "hit_count",
}


def is_thriftlm(conn: psycopg.Connection) -> bool:
    """Whether `cache_entries` is ThriftLM's table (its columns, none of thrift's)."""
    columns = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'cache_entries'"
        )
    }
    return columns >= THRIFTLM_COLUMNS and "question_hash" not in columns


def adopt(conn: psycopg.Connection, namespace: str) -> dict[str, Any]:
    """Turn ThriftLM's `cache_entries` into thrift's, in one transaction: every row keeps
    its id, answer, embedding, times and hit count, under `namespace`; each `api_key` (a
    plain key in ThriftLM) becomes a tenant, and only its hash is kept, in `api_keys`, so
    the same key works with thrift. Rows that are the same question for one key (ThriftLM
    has no unique key) become one entry: the newest answer, their hits added up."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if not is_thriftlm(conn):
                raise RemoteError(
                    "cache_entries is not ThriftLM's table (or was adopted already); nothing done"
                )
            conn.execute("ALTER TABLE cache_entries RENAME TO thriftlm_cache_entries")
            conn.execute("ALTER INDEX IF EXISTS cache_entries_embedding_idx RENAME TO thriftlm_embedding_idx")
            for (signature,) in conn.execute(
                "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = 'match_cache_entries'"
            ).fetchall():
                conn.execute(f"DROP FUNCTION {signature}")  # ThriftLM's; ours replaces it
            moved_keys = conn.execute("SELECT to_regclass('api_keys') IS NOT NULL").fetchone() == (True,)
            if moved_keys:  # ThriftLM's own key table: kept aside, never read
                conn.execute("ALTER TABLE api_keys RENAME TO thriftlm_api_keys")
            migrate(conn)
            rows = conn.execute("SELECT id, api_key, query FROM thriftlm_cache_entries").fetchall()
            conn.execute(
                "CREATE TEMP TABLE adopted (id uuid PRIMARY KEY, tenant text, question_hash text) "
                "ON COMMIT DROP"
            )
            plain_keys = {key for _, key, _ in rows}
            with conn.cursor().copy("COPY adopted (id, tenant, question_hash) FROM STDIN") as copy:
                for entry_id, key, query in rows:
                    copy.write_row((entry_id, tenant_of_key(key), keys.exact_key(namespace, query.strip())))
            for key in plain_keys:
                conn.execute(
                    "INSERT INTO api_keys (key_hash, tenant, email) VALUES (%s, %s, 'adopted from ThriftLM') "
                    "ON CONFLICT (key_hash) DO NOTHING",
                    (key_hash(key), tenant_of_key(key)),
                )
            entries = conn.execute(
                """
                INSERT INTO cache_entries (id, api_key, query, response, embedding, created_at,
                                           last_hit_at, hit_count, namespace, question_hash)
                SELECT DISTINCT ON (a.tenant, a.question_hash)
                       o.id, a.tenant, o.query, o.response, o.embedding, coalesce(o.created_at, now()),
                       max(o.last_hit_at) OVER same, (sum(coalesce(o.hit_count, 0)) OVER same)::integer,
                       %s, a.question_hash
                FROM thriftlm_cache_entries o JOIN adopted a USING (id)
                WINDOW same AS (PARTITION BY a.tenant, a.question_hash)
                ORDER BY a.tenant, a.question_hash, o.created_at DESC NULLS LAST, o.id
                """,
                (namespace,),
            ).rowcount
            # The old table holds every key in plain text: it goes, now that its rows are in.
            conn.execute("DROP TABLE thriftlm_cache_entries")
    except psycopg.Error as exc:
        raise RemoteError(f"cannot adopt ThriftLM's table: {reason(exc)}") from None
    return {
        "rows": len(rows),
        "entries": entries,
        "tenants": len({tenant_of_key(k) for k in plain_keys}),
        "namespace": namespace,
        "kept_aside": ["thriftlm_api_keys"] if moved_keys else [],
    }


# -- keys ----------------------------------------------------------------------------


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def tenant_of_key(key: str) -> str:
    """The tenant a key gets by default: the one thrift derives on the client too
    (tiers.tenant), so Redis and the remote scope a key's entries alike."""
    return keys.api_key_namespace(key).replace(":", "-")


def new_key() -> str:
    """A new API key, `sc_...` as ThriftLM's: 256 random bits."""
    return "sc_" + secrets.token_urlsafe(32)


def create_key(conn: psycopg.Connection, email: str | None = None, tenant: str | None = None) -> str:
    """A new key (`sc_...`, as ThriftLM's), returned once; only its hash is stored. A new
    key gets its own tenant unless `tenant` names one to share (a team's second key)."""
    import psycopg

    key = new_key()
    try:
        conn.execute(
            "INSERT INTO api_keys (key_hash, tenant, email) VALUES (%s, %s, %s)",
            (key_hash(key), tenant or tenant_of_key(key), email),
        )
    except psycopg.Error as exc:
        raise RemoteError(f"cannot create a key: {reason(exc)}") from None
    return key


def revoke_key(conn: psycopg.Connection, key: str) -> bool:
    """Revoke `key`; True if it existed and was not revoked yet."""
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_hash = %s AND revoked_at IS NULL RETURNING 1",
        (key_hash(key),),
    ).fetchone()
    return row is not None


def tenant(conn: psycopg.Connection) -> str:
    """The tenant of the key this session presents; RemoteError for an unknown or revoked
    key (every remote call needs one)."""
    row = conn.execute("SELECT thrift_tenant()").fetchone()
    if row is None or row[0] is None:
        raise RemoteError("the remote does not know this API key, or it was revoked (set THRIFT_API_KEY)")
    return str(row[0])


def status(conn: psycopg.Connection) -> dict[str, Any]:
    """Schema version, this tenant's row counts, and the round-trip time."""
    started = time.perf_counter()
    conn.execute("SELECT 1")
    rtt_ms = (time.perf_counter() - started) * 1000.0
    version = schema_version(conn)
    if version is None:
        raise RemoteError("this database is not a thrift remote yet; run thrift remote init")
    check_model(conn)
    who = tenant(conn)
    live, tombstones, namespaces = conn.execute(
        "SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NOT NULL), "
        "count(DISTINCT namespace) FILTER (WHERE deleted_at IS NULL) FROM cache_entries"
    ).fetchone() or (0, 0, 0)
    return {
        "schema": version,
        "tenant": who,
        "entries": int(live),
        "tombstones": int(tombstones),
        "namespaces": int(namespaces),
        "rtt_ms": round(rtt_ms, 2),
    }


@contextmanager
def errors_reported(url: str) -> Iterator[None]:
    """Around a command's talk with the remote: a psycopg error is one RemoteError line
    (the connection lost, a permission refused), never a traceback."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        raise RemoteError(f"lost the remote at {shown_url(url)}: {reason(exc)}") from None
    except psycopg.Error as exc:
        raise RemoteError(f"the remote at {shown_url(url)} refused: {reason(exc)}") from None


def shown_url(url: str) -> str:
    from thrift_cli.config import masked

    return masked("database_url", url)


def reason(exc: BaseException) -> str:
    """psycopg's message, first line only (its context lines are for a DBA)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise UsageError(f"EMAIL must look like name@example.com, got {value!r}")
    return value
