"""Running the LLM command: no shell, answer streamed through live and captured."""

from __future__ import annotations

import errno
import functools
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from thrift_cli.errors import RunnerError
from thrift_cli.keys import PLACEHOLDER

TIMEOUT_EXIT = 124  # as timeout(1)
NOT_FOUND_EXIT = 127  # as a shell, env(1) and xargs(1)
NOT_EXECUTABLE_EXIT = 126
_CHUNK = 65536
_KILL_GRACE_S = 2.0
# Once the command has exited, a background child it left holding its stdout
# (`sh -c 'echo answer; sleep 30 &'`) gets this long to finish writing; then the answer is
# what was printed. Long enough for output already on its way, short next to an LLM call.
_EXIT_GRACE_S = 0.3
# After the grace period, still read what is already in the pipe, up to the most a pipe
# holds by default (fs.pipe-max-size), but not a background child that never stops writing.
_DRAIN_MAX = 1 << 20
# No single wait gets more than this, however long the deadline: epoll and kqueue take no
# timeout past ~24.8 days (int milliseconds), so longer ones are waited in slices.
_MAX_WAIT_S = 86400.0
# Where no pidfd can wake us when the command exits (not Linux), how often to look.
_EXIT_POLL_S = 0.05
# Sent to the command by the kernel when thrift dies, even of SIGKILL (Linux). SIGTERM, as
# thrift's own timeout and Ctrl-C send first: a tool may clean up, and a wrapper script
# that traps it can end its own children, which the kernel would not signal.
_DEATH_SIGNAL = signal.SIGTERM
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
    reader_gone: bool = False  # the reader of our stdout left (EPIPE: `| head -1`)
    write_error: str | None = None  # writing to our stdout failed otherwise (disk full, closed)


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
    and anything it started, and on Linux it gets SIGTERM if thrift dies (even of SIGKILL).
    Once it has exited, a background child it left holding its stdout is not waited for.
    """
    started = time.perf_counter()
    # A signal (Ctrl-C, SIGTERM, SIGHUP) that lands inside Popen, after the fork but before
    # Popen returns, would leave a command nobody kills. Hold them until `proc` exists and
    # the try below, which kills it, is in force; the command starts with the mask we had.
    # Popen runs on this thread, which waits for the command: the kernel sends the death
    # signal when the thread that forked exits, so it must not be a short-lived one.
    mask = _block_signals()
    set_up = _child_setup(mask)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=env,
            preexec_fn=set_up,
        )
    except OSError as exc:
        _restore_signals(mask)
        raise _start_error(argv[0], exc, env) from None

    result = RunResult(0, b"", 0.0)
    deadline = None if timeout is None else time.monotonic() + timeout
    assert proc.stdout is not None
    try:
        _restore_signals(mask)  # a signal held since Popen is raised here, inside the try
        if stdin_data is not None:
            threading.Thread(target=_feed, args=(proc, stdin_data), daemon=True).start()
        chunks = _pump(proc, out_fd, deadline, result)
        if result.timed_out:
            _kill(proc)
    except BaseException:  # Ctrl-C or anything unexpected: never leave the command running
        _kill(proc)
        raise
    finally:
        proc.stdout.close()
    result.output = b"".join(chunks)
    result.duration_ms = (time.perf_counter() - started) * 1000.0
    code = proc.wait()  # it has exited (or been killed): this only collects the status
    result.exit_code = TIMEOUT_EXIT if result.timed_out else (128 - code if code < 0 else code)
    return result


def _pump(
    proc: subprocess.Popen[bytes], out_fd: int | None, deadline: float | None, result: RunResult
) -> list[bytes]:
    """Copy the command's stdout to `out_fd` until it ends and the command has exited, or
    until the grace period after its exit, or until the deadline (`result.timed_out`)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    exit_fd = _pidfd(proc)
    eof = exited = False
    stop_at = deadline  # once the command has exited: the end of the grace period
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        if exit_fd is not None:
            sel.register(exit_fd, selectors.EVENT_READ)  # readable once the command exits
        try:
            while not (eof and exited):
                now = time.monotonic()
                if stop_at is not None and now >= stop_at:
                    if exited:
                        _drain(sel, fd, chunks, out_fd, result)
                    else:
                        result.timed_out = True
                    break
                wait = _MAX_WAIT_S if stop_at is None else min(stop_at - now, _MAX_WAIT_S)
                if exit_fd is None and not exited:
                    wait = min(wait, _EXIT_POLL_S)
                for key, _ in sel.select(wait):
                    if key.fd == fd and not _read(fd, chunks, out_fd, result):
                        eof = True
                        sel.unregister(fd)
                if not exited and proc.poll() is not None:
                    exited = True
                    if exit_fd is not None:
                        sel.unregister(exit_fd)  # it stays readable: stop watching it
                    stop_at = time.monotonic() + _EXIT_GRACE_S
        finally:
            if exit_fd is not None:
                os.close(exit_fd)
    return chunks


def _read(fd: int, chunks: list[bytes], out_fd: int | None, result: RunResult) -> bool:
    """Read one chunk of the answer and pass it on; False at the end of it."""
    chunk = os.read(fd, _CHUNK)
    if not chunk:
        return False
    chunks.append(chunk)
    # After the first failure, stop writing: keep reading, so the answer is still stored.
    if out_fd is not None and not result.reader_gone and result.write_error is None:
        status = write_all(out_fd, chunk)
        result.reader_gone = status == ""
        result.write_error = status or None
    return True


def _drain(
    sel: selectors.BaseSelector, fd: int, chunks: list[bytes], out_fd: int | None, result: RunResult
) -> None:
    """What is already in the pipe when the grace period ends, and nothing more."""
    budget = _DRAIN_MAX
    while budget > 0 and sel.select(0):
        if not _read(fd, chunks, out_fd, result):
            return
        budget -= len(chunks[-1])


def _pidfd(proc: subprocess.Popen[bytes]) -> int | None:
    """A descriptor that becomes readable when the command exits (Linux 5.3+), if any."""
    try:
        return os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return None  # not Linux, an older kernel, or a seccomp filter: poll instead


def _child_setup(mask: set[int | signal.Signals] | None) -> Callable[[], None] | None:
    """Popen's preexec_fn, made in thrift (the parent): it ties the command to thrift's life
    (Linux) and gives it back the signal mask thrift had before holding signals."""
    prctl = _prctl()
    if prctl is None and mask is None:
        return None
    parent = os.getpid()

    def set_up() -> None:  # runs in the child, between fork and exec
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, _DEATH_SIGNAL, 0, 0, 0)
            # thrift may have died before prctl ran, and then no signal will ever come:
            # the child was handed to another parent, so end it before it runs anything.
            if os.getppid() != parent:
                os._exit(128 + _DEATH_SIGNAL)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    return set_up


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl(2), on Linux only."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # here, not at the top: only a miss runs a command (~3 ms to import)

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None  # no ctypes, or a libc without prctl: the command is not tied to thrift
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _start_error(name: str, exc: OSError, env: dict[str, str] | None) -> RunnerError:
    """Why the command could not start, as a shell would say it (and with its exit code)."""
    if exc.errno == errno.E2BIG:
        return RunnerError("the question is too long for a command-line argument; use --stdin", 2)
    if isinstance(exc, FileNotFoundError):
        interpreter = _script_interpreter(name, env)
        if interpreter is not None and not os.path.exists(interpreter):
            # bash 5.2 and dash exit 127 here too, as for a command that is not there.
            return RunnerError(
                f"cannot run {name}: its interpreter {interpreter} is not found", NOT_FOUND_EXIT
            )
        return RunnerError(f"command not found: {name}", NOT_FOUND_EXIT)
    if isinstance(exc, PermissionError):
        interpreter = _script_interpreter(name, env, executable=True)
        if interpreter is not None and (os.path.isdir(interpreter) or not os.access(interpreter, os.X_OK)):
            return RunnerError(
                f"cannot run {name}: its interpreter {interpreter} is not executable", NOT_EXECUTABLE_EXIT
            )
        return RunnerError(f"command is not executable: {name}", NOT_EXECUTABLE_EXIT)
    return RunnerError(f"cannot run {name}: {exc.strerror or exc}", NOT_EXECUTABLE_EXIT)


def _script_interpreter(name: str, env: dict[str, str] | None, *, executable: bool = False) -> str | None:
    """The interpreter named by the `#!` line of the file execvp ran for `name` (that
    file must be executable itself when `executable`), or None."""
    path = _find_executable(name, env)
    if path is None or (executable and not os.access(path, os.X_OK)):
        return None
    return _interpreter(path)


def _find_executable(name: str, env: dict[str, str] | None) -> str | None:
    """The file execvp would have run for `name`: the path itself when it has a `/`, else
    the first file of that name on the command's PATH."""
    if "/" in name:
        return name if os.path.isfile(name) else None
    for directory in os.get_exec_path(env):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _interpreter(path: str) -> str | None:
    """The interpreter a `#!` line names (the kernel reads up to the first blank), if any."""
    try:
        with open(path, "rb") as script:
            head = script.readline(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split()
    return os.fsdecode(words[0]) if words else None


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
    """Write all of `data`. None: written. "": the reader is gone (EPIPE: `| head -1`),
    which is not an error. Otherwise why writing failed ("No space left on device", or
    "Bad file descriptor" for a stdout that was closed, as `echo` reports it)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return ""
        return exc.strerror or str(exc)
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End the command and everything in its process group: SIGTERM, then SIGKILL for
    whatever is left after the grace period. Its children are waited for too: one that
    ignores SIGTERM would otherwise outlive a command that did not."""
    _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE_S
    try:
        proc.wait(_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    while _signal_group(proc, 0) and time.monotonic() < deadline:
        time.sleep(_EXIT_POLL_S)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> bool:
    """Send `sig` to the command's process group (0: only check that it has members)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
