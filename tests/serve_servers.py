"""A real `thrift serve` (uvicorn) on a loopback port, for the API and dashboard tests.

`ServeServer.start(home, ...)` runs the real command in a subprocess that dies with the
test process (loopback.die_with_parent) and returns once `/health` answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loopback import HOST, die_with_parent, free_port

ADMIN_KEY = "admin-key-for-the-tests-0123456789"


def thrift_argv() -> list[str]:
    script = Path(sys.executable).parent / "thrift"
    return [str(script)] if script.exists() else [sys.executable, "-m", "thrift_cli"]


@dataclass
class ServeServer:
    home: Path
    port: int
    key: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    def start(
        cls,
        home: Path,
        *,
        key: str = ADMIN_KEY,
        workers: int = 1,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ServeServer:
        port = free_port()
        log = home.parent / f"serve-{port}.log"
        home.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "THRIFT_HOME": str(home), **(env or {})}
        argv = [
            *thrift_argv(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-browser",
            "--api-key",
            key,
            "--workers",
            str(workers),
            *extra,
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                die_with_parent(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
            )
        server = cls(home, port, key, proc, log, full_env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"thrift serve exited {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError(f"thrift serve did not answer in {timeout} s: {log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
