"""A minimal Redis client: one connection, RESP2, the few commands the Redis tier sends.

Why not redis-py: importing it costs ~100 ms on this machine (redis 5 to 8 import asyncio,
importlib.metadata and their observability modules at `import redis`), more than a whole
cold exact hit from the local file (~75 ms). Every `thrift ask` is a new process, so
that would be paid on every ask once Redis is configured. This client imports only
`socket` (and `ssl` for rediss://) and speaks the protocol, which is small and stable.
The tests check it against a real server and against redis-py's view of the same keys.

Every failure is a `RedisError`: the tier turns it into one warning and a miss.
"""

from __future__ import annotations

import socket
from urllib.parse import SplitResult, unquote, urlsplit

Reply = bytes | int | list["Reply"] | None


class RedisError(Exception):
    """Redis unreachable, too slow, refusing a command (-ERR, -OOM), or not speaking RESP."""


class ReplyError(RedisError):
    """An error reply (`-OOM command not allowed...`): the server is up but said no."""


class Connection:
    """A connection to the server at `url` (redis://, rediss://, unix://), opened on the
    first command, with bounded connect and read timeouts."""

    def __init__(self, url: str, *, connect_timeout: float, timeout: float) -> None:
        self.url = url
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def command(self, *args: str | bytes | int) -> Reply:
        """Send one command and read its reply."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: list[tuple[str | bytes | int, ...]]) -> list[Reply]:
        """Send several commands in one write and read their replies, in order: one round
        trip. An error reply raises ReplyError after all replies are read."""
        sock = self._connected()
        try:
            sock.sendall(b"".join(_encode(args) for args in commands))
            replies = [self._read_reply() for _ in commands]
        except (OSError, ValueError) as exc:
            self.close()
            raise RedisError(_reason(exc)) from None
        answers: list[Reply] = []
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
            answers.append(reply)
        return answers

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock, self._buffer = None, b""

    # -- connecting ---------------------------------------------------------------------

    def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        parts = urlsplit(self.url)
        try:
            if parts.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout)
                sock.connect(unquote(parts.path))
            else:
                sock = socket.create_connection(
                    (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=self.connect_timeout
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if parts.scheme == "rediss":
                    import ssl

                    context = ssl.create_default_context()
                    sock = context.wrap_socket(sock, server_hostname=parts.hostname)
        except (OSError, ValueError) as exc:
            raise RedisError(f"cannot connect: {_reason(exc)}") from None
        sock.settimeout(self.timeout)
        self._sock = sock
        hello: list[tuple[str | bytes | int, ...]] = []
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        if password:
            hello.append(("AUTH", user, password) if user else ("AUTH", password))
        db = _database(parts)
        if db:
            hello.append(("SELECT", db))
        if hello:
            try:
                self.pipeline(hello)
            except RedisError:
                self.close()  # refused (a wrong password): the next command starts over
                raise
        return sock

    # -- RESP2 replies ------------------------------------------------------------------

    def _read_reply(self) -> Reply | ReplyError:
        line = self._read_line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._read_exactly(size + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("a bulk string without its CRLF")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            items = [self._read_reply() for _ in range(count)]
            for item in items:
                if isinstance(item, ReplyError):
                    return item
            return items  # type: ignore[return-value]
        raise ValueError(f"not a Redis reply: {line[:40]!r}")

    def _read_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                return line
            if len(self._buffer) > _MAX_LINE:
                raise ValueError("a reply line too long to be Redis")
            self._fill()

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk


_MAX_LINE = 1 << 16


def _encode(args: tuple[str | bytes | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _database(parts: SplitResult) -> int:
    """The database number: redis://host:port/N, or ?db=N (unix:// URLs)."""
    from urllib.parse import parse_qs

    db = parse_qs(parts.query).get("db", [""])[0]
    text = db if parts.scheme == "unix" else parts.path.strip("/") or db
    if not text:
        return 0
    if not text.isdigit():
        raise RedisError(f"the database in the URL must be a number, got {text!r}")
    return int(text)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
