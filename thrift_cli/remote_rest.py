"""The remote through Supabase's REST API, for a project reached with only SUPABASE_URL and
SUPABASE_KEY (no database password): `thrift sync` and `thrift ask --remote` call the same
server functions as over Postgres (sql/postgres/0003_rpc.sql), as PostgREST RPCs.

Every call is `POST {SUPABASE_URL}/rest/v1/rpc/<function>` with the arguments as a JSON
object, through the `supabase` client, which sends SUPABASE_KEY as `apikey` and
`Authorization: Bearer`; thrift's API key goes in `x-api-key`, and the server hashes it
(`thrift_key_hash()` reads PostgREST's `request.headers`) to find the caller's tenant. So
SUPABASE_KEY only opens the API; the tenant is the thrift key's. Use the project's anon
(publishable) key: the service_role key bypasses row-level security (the functions still
name the caller's tenant themselves).

`supabase` is imported here only, and only on this path: importing it costs ~0.25 s.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from thrift_cli.remote_db import RemoteError

REQUEST_TIMEOUT_S = 30.0
# Supabase answers at most this many rows per request (PostgREST's db-max-rows, 1,000 on
# a new project): a pull page asks for no more.
MAX_ROWS = 1000


def preload() -> None:
    """Import the client library now (what RestClient would), if it is installed."""
    try:
        import httpx  # noqa: F401
        import postgrest.exceptions  # noqa: F401
        import supabase  # noqa: F401
    except ImportError:
        pass  # RestClient says so, in one line


class RestClient:
    """The PostgREST API of one Supabase project, as the tenant of `api_key`."""

    def __init__(self, url: str, key: str, api_key: str, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"supabase_url must be the project's https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self.where = f"{parts.hostname}{f':{parts.port}' if parts.port else ''} (REST)"
        try:
            from supabase import ClientOptions, create_client
        except ImportError:
            raise RemoteError(
                "the Supabase REST path needs the supabase package: pip install 'thrift-cli[supabase]'"
            ) from None
        import httpx

        # An HTTP client of our own: the one supabase would make takes the timeout in whole
        # seconds (int(0.3) is no time at all) and warns that the argument is deprecated.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
        options = ClientOptions(
            headers={"x-api-key": api_key},
            auto_refresh_token=False,
            persist_session=False,
            httpx_client=self._http,
        )
        self._client = create_client(self.url, key, options)

    def call(self, function: str, args: dict[str, Any]) -> Any:
        """The JSON the function returns: a list of rows for a table function, a value for
        a scalar one. RemoteError, one line, when the API refuses or cannot be reached."""
        import httpx
        from postgrest.exceptions import APIError

        try:
            return self._client.rpc(function, args).execute().data
        except APIError as exc:
            raise RemoteError(
                f"the remote {self.where} refused {function}: {api_reason(exc)}", api_reason(exc)
            ) from None
        except httpx.TimeoutException:
            raise RemoteError(
                f"the remote {self.where} did not answer {function} in time", "timed out"
            ) from None
        except httpx.HTTPError as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RemoteError(f"cannot reach the remote {self.where}: {why}", why) from None

    def session(self) -> dict[str, Any]:
        """`thrift_session()`: who the key is and what the remote is. RemoteError for a key
        the remote does not know, or has revoked."""
        found = self.call("thrift_session", {})  # there since 0003_rpc, as all we call
        if not isinstance(found, dict) or found.get("tenant") is None:
            why = "does not know this API key, or it was revoked"
            raise RemoteError(f"the remote {self.where} {why} (set THRIFT_API_KEY)", f"the remote {why}")
        return found

    def close(self) -> None:
        self._http.close()


def check_model(session: dict[str, Any]) -> None:
    """Refuse a remote whose vectors come from another embedding model (remote_db.check_model)."""
    from thrift_cli.remote_db import EMBEDDING_MODEL

    if session.get("model") not in (None, EMBEDDING_MODEL):
        raise RemoteError(
            f"the remote's vectors come from {session['model']}, not {EMBEDDING_MODEL}; use another database"
        )


def api_reason(exc: Any) -> str:
    """PostgREST's error as one line: its message, and the code for the ones a user acts on."""
    message = (exc.message or "").strip().splitlines()
    text = message[0] if message else "an error without a message"
    if exc.code in ("PGRST202", "42883"):  # no such function: an older schema
        return f"{text} (the remote has an older thrift schema: run thrift remote init)"
    if exc.code == "PGRST301" or exc.code == "28000" or exc.code == "401":
        return text
    return f"{text} ({exc.code})" if exc.code else text


def status(url: str, key: str, api_key: str) -> dict[str, Any]:
    """`remote_db.status` over REST: schema, this tenant's row counts, the round trip of a
    call (connecting included)."""
    import time

    client = RestClient(url, key, api_key)
    try:
        started = time.perf_counter()
        session = client.session()
        rtt_ms = (time.perf_counter() - started) * 1000.0
        check_model(session)
        report = client.call("thrift_status", {})
    finally:
        client.close()
    return {**report, "rtt_ms": round(rtt_ms, 2)}


# -- values as PostgREST writes them --------------------------------------------------


def vector_text(vector: Any) -> str:
    """A float32 vector as pgvector's text input, exact: each float32 widened to a double
    prints digits enough to round back to the same float32."""
    import numpy as np

    return json.dumps(np.asarray(vector, dtype=np.float64).tolist())


def parse_vector(value: Any) -> Any:
    """pgvector's text output ("[0.1,0.2,...]") in PostgREST's JSON, as float32."""
    import numpy as np

    if value is None:
        return None
    return np.asarray(json.loads(value) if isinstance(value, str) else value, dtype=np.float32)


def parse_time(value: str | None) -> float | None:
    """A timestamptz in PostgREST's JSON (ISO 8601), as unix seconds."""
    return None if value is None else datetime.fromisoformat(value).timestamp()
