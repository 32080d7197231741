"""Doctor's checks of the processes thrift talks to: the helper (running? answering a
ping? the same protocol and version?) and Redis, when configured (reachable, fast
enough, and can a probe key be written, read and deleted under the tenant's prefix?)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from thrift_cli import config
from thrift_cli.doctor import FAIL, OFF, OK, PATIENCE_S, WARN, Check, Context
from thrift_cli.errors import UsageError


def check_helper(context: Context) -> Iterator[Check]:
    """Asked directly, not through HelperClient, which marks a hung helper and removes a
    dead one's socket: doctor reports, it changes nothing."""
    from thrift_cli import __version__, helper

    if context.home is None:
        yield Check("helper", OFF, "not checked: no THRIFT_HOME")
        return
    path = helper.socket_path(context.home)
    if not os.path.lexists(path):
        yield Check("helper", OFF, "not running (optional: thrift helper keeps the model loaded)")
        return
    pid = None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(PATIENCE_S)
            s.connect(str(path))
            pid, uid = _peer(s)
            if uid is not None and uid != os.getuid():
                fix = f"stop that process (pid {pid}), or rm {shlex.quote(str(path))}"
                yield Check("helper", FAIL, f"{path} is served by another user's process", fix)
                return
            started = time.perf_counter()
            s.sendall(json.dumps({"op": "ping", "version": helper.PROTOCOL}).encode() + b"\n")
            reply = json.loads(_read_line(s))
            ms = (time.perf_counter() - started) * 1000.0
    except (ConnectionRefusedError, FileNotFoundError):
        yield Check("helper", OFF, f"not running (a dead helper left {path}; the next thrift ask removes it)")
        return
    except TimeoutError:
        fix = f"kill {pid} and start thrift helper again" if pid else "restart thrift helper"
        who = f"pid {pid}" if pid else "it"
        yield Check("helper", FAIL, f"{path}: no answer to a ping in {PATIENCE_S:g} s ({who} hangs)", fix)
        return
    except (OSError, ValueError) as exc:
        yield Check("helper", FAIL, f"{path}: cannot ping it: {exc}", "restart thrift helper")
        return
    who = f"pid {pid}" if pid else "running"
    restart = f"kill {pid} and start thrift helper again" if pid else "restart thrift helper"
    if not isinstance(reply, dict) or reply.get("version") != helper.PROTOCOL:
        theirs = reply.get("version") if isinstance(reply, dict) else None
        detail = f"{who} speaks protocol {theirs}, this thrift {helper.PROTOCOL}: thrift ask ignores it"
        yield Check("helper", FAIL, detail, restart)
        return
    if not reply.get("ok"):
        yield Check("helper", FAIL, f"{who} answers a ping with an error: {reply.get('error')}", restart)
        return
    theirs = reply.get("thrift")
    detail = f"{who}, answers a ping in {ms:.1f} ms (protocol {helper.PROTOCOL}, thrift {theirs})"
    hung = _age(context.home / helper.HUNG_NAME)
    if hung is not None and hung < helper.RETRY_HUNG_S:
        detail += f"; an ask timed out on it {hung:.0f} s ago, and asks skip it for a minute after that"
    if theirs != __version__:
        running = f"thrift {theirs}" if theirs else "an older thrift (its ping names no version)"
        yield Check("helper", WARN, f"{detail}, but runs {running}, not {__version__}", restart)
        return
    yield Check("helper", OK, detail)


def check_redis(context: Context) -> Iterator[Check]:
    """First with thrift ask's own timeouts; when those run out, again with doctor's
    patience, to tell a slow Redis from one that does not answer."""
    from thrift_cli.tiers.redis import RedisTier
    from thrift_cli.tiers.resp import RedisError, ReplyError

    settings = context.settings
    try:
        url, source = settings.value("redis_url")
        tenant = settings.tenant()
        connect_timeout, timeout = (
            settings.value("redis_connect_timeout")[0],
            settings.value("redis_timeout")[0],
        )
    except UsageError as exc:
        yield Check("redis", FAIL, f"cannot tell: {exc}", "see the environment line")
        return
    if url is None:
        yield Check("redis", OFF, "not configured (set redis_url or REDIS_URL to share answers)")
        return
    shown = config.masked("redis_url", url)
    unset = f"unset {source}" if source == "REDIS_URL" else "thrift config unset redis_url"

    def probe(connect: float, command: float) -> float:
        tier = RedisTier(url, tenant=tenant, connect_timeout=connect, timeout=command, warn=lambda _: None)
        try:
            return tier.probe()
        finally:
            tier.close()

    try:
        ms = probe(connect_timeout, timeout)
    except ReplyError as exc:  # up, but said no: NOAUTH, NOPERM, OOM, READONLY...
        fix = "check the user, password and database in the URL, and the server's ACL and memory"
        yield Check("redis", FAIL, f"{shown}: refused the probe: {exc}", fix)
        return
    except RedisError as exc:
        if str(exc).startswith("cannot connect"):
            yield Check("redis", FAIL, f"{shown}: {exc}", f"start Redis at that address, or {unset}")
            return
        if "timed out" not in str(exc):  # something else answers there
            yield Check("redis", FAIL, f"{shown}: {exc}", f"check the address is Redis's, or {unset}")
            return
        try:
            slow = probe(PATIENCE_S, PATIENCE_S)
        except RedisError as again:
            detail = f"{shown}: {exc}, and still no answer in {PATIENCE_S:g} s ({again})"
            yield Check("redis", FAIL, detail, f"check that a Redis listens there, or {unset}")
            return
        limits = f"redis_connect_timeout {connect_timeout * 1000:g} ms, redis_timeout {timeout * 1000:g} ms"
        detail = f"{shown}: answers in {slow:.1f} ms, slower than thrift ask waits ({limits})"
        yield Check(
            "redis", FAIL, detail, "raise redis_timeout / redis_connect_timeout, or use a nearer Redis"
        )
        return
    detail = f"{shown} (tenant {tenant}): probe key written, read and deleted in {ms:.1f} ms"
    yield Check("redis", OK, detail + ", connecting included")


def _peer(s: socket.socket) -> tuple[int | None, int | None]:
    """The pid and uid of the process at the other end of a Unix socket (Linux)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None, None
    creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


def _read_line(s: socket.socket) -> bytes:
    data, deadline = b"", time.monotonic() + PATIENCE_S
    while not data.endswith(b"\n"):
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("the helper closed the connection")
        data += chunk
    return data


def _age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None
