"""Running the LLM command: no shell, answer streamed through live and captured."""

from __future__ import annotations

import errno
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from thrift_cli.errors import RunnerError
from thrift_cli.keys import PLACEHOLDER

TIMEOUT_EXIT = 124  # as timeout(1)
NOT_FOUND_EXIT = 127  # as a shell, env(1) and xargs(1)
NOT_EXECUTABLE_EXIT = 126
_CHUNK = 65536
_KILL_GRACE_S = 2.0


def command_argv(command: list[str], question: str, *, stdin: bool) -> list[str]:
    """The argv to run. With `stdin` the question goes to the command's stdin only and
    the arguments are passed untouched (a `{}` stays `{}`); otherwise it replaces each
    `{}`, or is appended when there is none."""
    if stdin:
        return list(command)
    if PLACEHOLDER in command:
        return [question if arg == PLACEHOLDER else arg for arg in command]
    return [*command, question]


@dataclass
class RunResult:
    exit_code: int
    output: bytes
    duration_ms: float
    timed_out: bool = False
    reader_gone: bool = False  # our stdout was closed (e.g. `| head -1`)
    write_error: str | None = None  # writing to our stdout failed otherwise (disk full)


def run_command(
    argv: list[str],
    *,
    stdin_data: bytes | None,
    out_fd: int | None,
    timeout: float | None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run `argv`, copy its stdout to `out_fd` as it arrives and return all of it.

    Its stderr is inherited (passes straight through). Without `stdin_data` its stdin is
    /dev/null, so a tool such as `llm`, which reads a piped stdin into the prompt, never
    sees ours. It runs in its own process group so a timeout or Ctrl-C ends the command
    and anything it started.
    """
    started = time.perf_counter()
    # A signal (Ctrl-C, SIGTERM, SIGHUP) that lands inside Popen, after the fork but before
    # Popen returns, would leave a command nobody kills. Hold them until `proc` exists and
    # the try below, which kills it, is in force; the command starts with the mask we had.
    mask = _block_signals()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=env,
            preexec_fn=None if mask is None else lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask),
        )
    except FileNotFoundError:
        _restore_signals(mask)
        raise RunnerError(f"command not found: {argv[0]}", NOT_FOUND_EXIT) from None
    except PermissionError:
        _restore_signals(mask)
        raise RunnerError(f"command is not executable: {argv[0]}", NOT_EXECUTABLE_EXIT) from None
    except OSError as exc:
        _restore_signals(mask)
        if exc.errno == errno.E2BIG:
            raise RunnerError(
                "the question is too long for a command-line argument; use --stdin", 2
            ) from None
        raise RunnerError(f"cannot run {argv[0]}: {exc.strerror or exc}", NOT_EXECUTABLE_EXIT) from None

    result = RunResult(0, b"", 0.0)
    chunks: list[bytes] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        _restore_signals(mask)  # a signal held since Popen is raised here, inside the try
        if stdin_data is not None:
            threading.Thread(target=_feed, args=(proc, stdin_data), daemon=True).start()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    result.timed_out = True
                    break
                if not sel.select(wait):
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                if out_fd is not None and not result.reader_gone:
                    status = write_all(out_fd, chunk)
                    result.reader_gone = status is not None
                    result.write_error = status or None
        if result.timed_out:
            _kill(proc)
        else:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                result.timed_out = True
                _kill(proc)
    except BaseException:  # Ctrl-C or anything unexpected: never leave the command running
        _kill(proc)
        raise
    finally:
        proc.stdout.close()
    result.output = b"".join(chunks)
    result.duration_ms = (time.perf_counter() - started) * 1000.0
    code = proc.returncode
    result.exit_code = TIMEOUT_EXIT if result.timed_out else (128 - code if code < 0 else code)
    return result


_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _block_signals() -> set[int | signal.Signals] | None:
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)


def _restore_signals(mask: set[int | signal.Signals] | None) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
    except (BrokenPipeError, OSError):
        pass  # the command stopped reading; its exit code tells the rest
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> str | None:
    """Write all of `data`. None: written. "": the reader is gone (EPIPE, stdout closed),
    which is not an error. Otherwise why writing failed ("No space left on device")."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EBADF):
            return ""
        return exc.strerror or str(exc)
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
