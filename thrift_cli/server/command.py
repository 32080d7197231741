"""`thrift serve`: check the options, then run the app under uvicorn.

The admin key is `--api-key` (or THRIFT_SERVE_API_KEY), else a new one printed once at
start. The worker processes get only its SHA-256 (app.ADMIN_DIGEST_VAR), never the key.
The browser opens the dashboard with the key in the URL's fragment (`/#key=...`), which a
browser never sends to the server nor writes to its logs.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from urllib.parse import quote

from thrift_cli import config
from thrift_cli.errors import UsageError

API_KEY_VAR = "THRIFT_SERVE_API_KEY"
MAX_WORKERS = 4


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run(
    *,
    host: str,
    port: int,
    api_key: str | None,
    no_browser: bool,
    workers: int | None,
    batch: bool = True,
) -> int:
    from thrift_cli.home import thrift_home
    from thrift_cli.server.app import ADMIN_DIGEST_VAR, BATCH_VAR
    from thrift_cli.server.auth import digest, new_key
    from thrift_cli.server.engine import THREADS_VAR

    config.check_environment()
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    workers = default_workers() if workers is None else workers
    if not 1 <= workers <= 64:
        raise UsageError(f"--workers must be in 1..64, got {workers}")
    key = api_key if api_key is not None else os.environ.get(API_KEY_VAR) or None
    if key is not None and (len(key) < 16 or not key.isprintable() or key.strip() != key):
        raise UsageError("--api-key must be at least 16 printable characters, without spaces around it")
    shown_key = key is None
    key = key or new_key()
    _check_port(host, port)

    import uvicorn

    home = thrift_home()
    os.environ["THRIFT_HOME"] = str(home)
    os.environ[ADMIN_DIGEST_VAR] = digest(key).hex()
    os.environ[BATCH_VAR] = "1" if batch else "0"
    # The cores shared out among the workers (engine.py); numpy reads this at its import,
    # which happens in each worker, after this.
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    os.environ[THREADS_VAR] = threads
    for blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(blas, threads)
    os.environ.pop(API_KEY_VAR, None)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    where = f"http://{shown}:{port}"
    print(f"thrift serve: {home} on {where} ({workers} worker{'s' * (workers != 1)})", file=sys.stderr)
    if shown_key:
        print(f"thrift serve: admin key (shown once): {key}", file=sys.stderr)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"thrift serve: warning: listening on {host}, reachable from other machines", file=sys.stderr)
    dashboard = f"{where}/#key={quote(key, safe='')}"
    print(f"thrift serve: dashboard {dashboard}", file=sys.stderr)
    if not no_browser:
        threading.Thread(target=_open_when_up, args=(host, port, dashboard), daemon=True).start()
    uvicorn.run(
        "thrift_cli.server.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _check_port(host: str, port: int) -> None:
    """One clear line for a port in use, before uvicorn would print a traceback-ish log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _open_when_up(host: str, port: int, url: str) -> None:
    import webbrowser

    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((target, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    webbrowser.open(url)
