"""A stand-in for a Supabase project's REST API, in front of the tests' real PostgreSQL.

No PostgREST server exists on PyPI or Debian, so thrift's Supabase REST path is tested at
the HTTP level: this server answers the part of PostgREST's documented API that path uses,
and refuses any request that documentation would not accept. What it checks, and where
PostgREST's documentation says so (docs/references/ in PostgREST's repository):

- the route: `POST /rest/v1/rpc/<function>` (api/functions.rst, "Functions as RPC"; `/rest/v1`
  is Supabase's prefix); the body is a JSON object whose keys are the function's argument
  names, every argument without a default given, no unknown key, else 404 PGRST202; a body
  that is not a JSON object is 400 PGRST102; a Content-Type other than JSON is 415 PGRST107;
  another method is 405 PGRST101; `Accept-Profile` / `Content-Profile`, when sent, must name
  an exposed schema (`public`), else 406 PGRST106 (api/schemas.rst);
- the keys: Supabase's gateway wants the project key in `apikey`, and PostgREST the same
  key as `Authorization: Bearer` (the anon key is a JWT whose role is `anon`); a wrong or
  missing key is 401;
- the transaction (transactions.rst): `BEGIN` READ WRITE only for POST to a VOLATILE
  function, READ ONLY otherwise; `SET LOCAL ROLE anon`; `request.headers` (JSON, the
  header names lowercased), `request.method`, `request.path` and `request.jwt.claims` as
  transaction-scoped settings; the main query; COMMIT, or ROLLBACK on any error;
- the main query reads the arguments with `json_to_record` into the function's own
  argument types, as PostgREST does, so a value PostgreSQL would not accept fails there;
- the answer: a set-returning function's rows as a JSON array of objects, at most
  `max_rows` of them (db-max-rows: 1,000 on a Supabase project), a scalar function's value
  as JSON; an error as {code, message, details, hint} with the HTTP status of errors.rst's
  table.

Every request is kept in `requests` (method, path, headers, JSON body) for the tests to
read. `fail` makes the next matching requests fail in the ways networks do.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from loopback import HOST
from psycopg import sql

PREFIX = "/rest/v1/rpc/"
SCHEMA = "public"
MAX_ROWS = 1000
ANON_ROLE = "anon"
AUTHENTICATOR = "authenticator"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """What to do to the next `times` calls of `function` (None: any)."""

    kind: str  # "drop-after-commit": commit, then close the socket unanswered; "status": answer `status`
    function: str | None = None
    times: int = 1
    status: int = 503


# PostgREST's SQLSTATE -> HTTP status (errors.rst), most specific first.
_STATUS = [
    ("08", 503), ("09", 500), ("0L", 403), ("0P", 403), ("23503", 409), ("23505", 409),
    ("25006", 405), ("25", 500), ("28", 403), ("2D", 500), ("38", 500), ("39", 500),
    ("3B", 500), ("40", 500), ("53400", 500), ("53", 503), ("54", 500), ("55", 500),
    ("57", 500), ("58", 500), ("F0", 500), ("HV", 500), ("P0001", 400), ("P0", 500),
    ("XX", 500), ("42883", 404), ("42P01", 404), ("42P17", 500), ("42501", 401),
]  # fmt: skip


def status_of(sqlstate: str) -> int:
    # 42501 is 401 for an anonymous role (this one), 403 for an authenticated one.
    return next((status for prefix, status in _STATUS if sqlstate.startswith(prefix)), 400)


@dataclass
class PostgrestServer:
    """The REST API of a project whose database is `dsn` (a DSN of the authenticator role
    on the tests' server), for the project key `key`, on a loopback port."""

    dsn: str
    key: str
    max_rows: int = MAX_ROWS
    requests: list[Seen] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                outer._handle(self)

            def do_GET(self) -> None:
                outer._handle(self)

            def do_PATCH(self) -> None:
                outer._handle(self)

            def do_DELETE(self) -> None:
                outer._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PostgrestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, kind: str, function: str | None = None, times: int = 1, status: int = 503) -> None:
        with self._lock:
            self.faults.append(Fault(kind, function, times, status))

    def calls(self, function: str) -> list[Seen]:
        return [r for r in self.requests if r.path == PREFIX + function]

    # -- one request -----------------------------------------------------------------------

    def _fault(self, function: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.function in (None, function) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self._lock:
            self.requests.append(Seen(h.command, path, headers, body))

        def answer(status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        def error(status: int, code: str, message: str, details: Any = None, hint: Any = None) -> None:
            answer(status, {"code": code, "details": details, "hint": hint, "message": message})

        if headers.get("apikey") != self.key or headers.get("authorization") != f"Bearer {self.key}":
            return error(401, "PGRST301", "Invalid API key", hint="Double check your Supabase `anon` key.")
        if not path.startswith(PREFIX):
            return error(404, "PGRST125", f"Invalid path specified in request URL: {path}")
        if h.command != "POST":
            return error(405, "PGRST101", "Only GET and POST verbs are allowed (thrift calls POST)")
        for profile in ("accept-profile", "content-profile"):
            if profile in headers and headers[profile] != SCHEMA:
                return error(406, "PGRST106", f"The schema must be one of the following: {SCHEMA}")
        if not headers.get("content-type", "").startswith("application/json"):
            return error(415, "PGRST107", f"Content-Type not acceptable: {headers.get('content-type')}")
        if not isinstance(body, dict):
            return error(400, "PGRST102", "Empty or invalid json")
        function = path[len(PREFIX) :]
        fault = self._fault(function)
        if fault is not None and fault.kind == "status":
            return error(fault.status, "PGRST000", "Database client error. Retrying the connection.")
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                status, payload = self._call(conn, function, body, headers, h.command, path)
                if status == 200 and fault is not None and fault.kind == "drop-after-commit":
                    conn.commit()
                    h.close_connection = True
                    h.connection.shutdown(2)  # the answer never reaches the client
                    return None
        except psycopg.OperationalError as exc:
            return error(503, "PGRST000", str(exc).splitlines()[0])
        answer(status, payload)
        return None

    def _call(
        self, conn: psycopg.Connection, function: str, args: dict, headers: dict, method: str, path: str
    ) -> tuple[int, Any]:
        found = conn.execute(
            "SELECT p.oid, coalesce(p.proargnames[1:p.pronargs], '{}'), p.pronargdefaults, "
            "p.proretset, p.provolatile, array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s",
            (SCHEMA, function),
        ).fetchall()
        conn.rollback()
        match = None
        for _, names, defaults, retset, volatile, types in found:
            required = set(names[: len(names) - defaults])
            if required <= set(args) <= set(names):
                match = (names, retset, volatile, types)
        if match is None:
            return 404, {
                "code": "PGRST202",
                "details": "Searched for the function with the given argument names: no match",
                "hint": None,
                "message": f"Could not find the function {SCHEMA}.{function}({', '.join(sorted(args))}) "
                "in the schema cache",
            }
        names, retset, volatile, types = match
        given = [(n, t) for n, t in zip(names, types, strict=True) if n in args]
        call = sql.SQL("{}.{}({})").format(
            sql.Identifier(SCHEMA),
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} := pgrst_args.{}").format(sql.Identifier(n), sql.Identifier(n)) for n, _ in given
            ),
        )
        record = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in given)
        source = (
            sql.SQL("json_to_record(%(args)s::json) AS pgrst_args({}), LATERAL ").format(record)
            if given
            else sql.SQL("")
        )
        if retset:  # rows: a JSON array, at most max_rows long
            query = sql.SQL(
                "SELECT coalesce(json_agg(r), '[]') "
                "FROM (SELECT pgrst_call.* FROM {}{} pgrst_call LIMIT {}) r"
            ).format(source, call, sql.Literal(self.max_rows))
        else:  # a scalar: its JSON
            query = sql.SQL("SELECT to_json(pgrst_call) FROM {}{} pgrst_call").format(source, call)
        read_write = method == "POST" and volatile == "v"
        claims = json.dumps({"role": ANON_ROLE})
        try:
            conn.execute(
                "BEGIN ISOLATION LEVEL READ COMMITTED " + ("READ WRITE" if read_write else "READ ONLY")
            )
            conn.execute(
                "SELECT set_config('role', %s, true), set_config('search_path', %s, true), "
                "set_config('request.headers', %s, true), set_config('request.method', %s, true), "
                "set_config('request.path', %s, true), set_config('request.jwt.claims', %s, true)",
                (ANON_ROLE, SCHEMA, json.dumps(headers), method, path, claims),
            )
            row = conn.execute(query, {"args": json.dumps(args)}).fetchone()
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            diag = exc.diag
            code = diag.sqlstate or "XX000"
            return status_of(code), {
                "code": code,
                "details": diag.message_detail,
                "hint": diag.message_hint,
                "message": diag.message_primary or str(exc),
            }
        return 200, row[0] if row else None


def setup_roles(server: Any, admin_dsn: str) -> str:
    """The roles a Supabase project has for PostgREST (PostgREST's auth.rst, "Roles";
    Supabase makes `anon` NOINHERIT): `authenticator` logs in and becomes `anon` for each
    request. Returns the authenticator's DSN for `admin_dsn`'s database."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        database = conn.info.dbname
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANON_ROLE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(sql.Identifier(ANON_ROLE)))
        dsn: str = server.create_role(AUTHENTICATOR, database=database)
        conn.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(sql.Identifier(AUTHENTICATOR)))
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(ANON_ROLE), sql.Identifier(AUTHENTICATOR))
        )
    return dsn
