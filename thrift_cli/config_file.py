"""config.toml as text: each setting's value as written and where it comes from, and
`set`/`unset` as an edit of one key's line.

The file is edited line by line rather than re-serialised, so comments, blank lines and
the order of the other lines stay as the user left them, and a file that is broken
elsewhere (an unknown key, a bad value, even invalid TOML) can still be repaired: the edit
is made and what is still wrong comes back as a warning. Every write replaces the file
whole (a temporary file in the same directory, fsynced, renamed), mode 0600 since it may
hold secrets, under a lock so that concurrent sets lose nothing.

Used by `thrift config` (config_cmd.py); no typer here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thrift_cli import config
from thrift_cli.config import SETTINGS, Setting
from thrift_cli.errors import ThriftError, UsageError


def known(key: str) -> Setting:
    """The setting named `key`, or a UsageError naming the known ones."""
    if key in SETTINGS:
        return SETTINGS[key]
    # THRIFT_TTL, --min-similarity and min-similarity are names of a setting, not its key.
    name = key.lower().lstrip("-").replace("-", "_")
    guess = next((k for k, s in SETTINGS.items() if name in (k, (s.variable or "").lower())), None)
    hint = f"did you mean {guess}? " if guess else ""
    raise UsageError(f"unknown setting {key!r} ({hint}known: {', '.join(SETTINGS)})")


# -- reading: each value as text, and where it came from ------------------------------


def default_text(spec: Setting) -> str | None:
    """A default as one would write it: `30d`, `50ms`, `0.85`; None when there is none."""
    value = spec.default
    if value is None:
        return None
    if spec.check is config.duration:
        for unit, seconds in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if value >= seconds and float(value) % seconds == 0:
                return f"{int(value // seconds)}{unit}"
        ms = round(value * 1000)
        if ms >= 1 and abs(ms / 1000 - value) < 1e-9:
            return f"{ms}ms"
    return repr(value) if isinstance(value, float) else str(value)


def current(key: str) -> tuple[str | None, str]:
    """`key`'s effective value as text (as written in the variable or the file, or its
    default), None when it has none; and where it comes from (the variable, the file's
    path, or 'default'). The whole file is checked first, as every command checks it."""
    spec = SETTINGS[key]
    config.file_values()  # a bad file is an error here too, whichever key is asked for
    config.value(key)  # a bad variable likewise
    where = config.source(key)
    if where in spec.variables:
        return os.environ[where], where
    if where == "default":
        return default_text(spec), where
    return str(_raw_file(config.config_path())[key]), where


def _raw_file(path: Path) -> dict[str, Any]:
    """The file's values as TOML gives them (it has been checked by `config.file_values`)."""
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)


# -- writing: one line changed, the file replaced whole --------------------------------

# A top-level `key =` line, the key bare or quoted; a `[table]` header ends the top level.
_KEY_LINE = re.compile(r"""[ \t]*(?:([A-Za-z0-9_-]+)|"([^"\\\n]*)"|'([^'\n]*)')[ \t]*=""")
_TABLE = re.compile(r"[ \t]*\[")
# A one-line value (a string or a bare number), then perhaps a comment worth keeping.
_SIMPLE_VALUE = re.compile(r"""[ \t]*(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s#"'\[{]+)([ \t]*#[^\r\n]*)?\s*""")


def toml_value(spec: Setting, checked: Any, text: str) -> str:
    """`checked` (the value `text` was checked to) as TOML: a number for a numeric setting,
    else a basic string holding `text` as given."""
    if spec.number:
        return repr(checked)  # ints, and floats that are finite (the checks refuse nan, inf)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 in argv
        raise UsageError(f"the value of {spec.key} must be UTF-8 text") from None
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    # config.checked_text refuses control characters; escape them anyway, as TOML would.
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c for c in escaped)
    return f'"{escaped}"'


def edited(text: str, key: str, line: str | None) -> tuple[str, bool]:
    """`text` (a config file) with the top-level `key = ...` replaced by `line`, or removed
    when `line` is None; every other line as it was. A trailing comment of the replaced line
    is kept; a second `key` line (invalid TOML) is dropped; a new key goes before the first
    `[table]` (where it would not be top-level) or at the end. Returns the text and whether
    any `key` line was there."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in text else "\n"
    out: list[str] = []
    found = placed = False
    top_level = True
    i = 0
    while i < len(lines):
        current_line = lines[i]
        if top_level and _TABLE.match(current_line):
            top_level = False
            if line is not None and not placed:
                out.append(line + newline)
                placed = True
        match = _KEY_LINE.match(current_line) if top_level else None
        if match is not None and next(g for g in match.groups() if g is not None) == key:
            found = True
            end = _value_end(lines, i)
            if line is not None and not placed:
                kept = _SIMPLE_VALUE.fullmatch(current_line, match.end()) if end == i + 1 else None
                comment = kept.group(1) if kept is not None and kept.group(1) else ""
                out.append(line + comment + newline)
                placed = True
            i = end
            continue
        out.append(current_line)
        i += 1
    if line is not None and not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += newline
        out.append(line + newline)
    return "".join(out), found


def _value_end(lines: list[str], i: int) -> int:
    """The index after the last line of the value that starts on line `i`: a multi-line
    string or array spans lines up to the first that closes it as TOML; anything else
    (including a value that is not TOML at all) is one line."""
    import tomllib

    value = lines[i].split("=", 1)[1].lstrip()
    if not value.startswith(('"""', "'''", "[", "{")):
        return i + 1
    for end in range(i + 1, len(lines) + 1):
        try:
            tomllib.loads("".join(lines[i:end]))
            return end
        except tomllib.TOMLDecodeError:
            continue
    return i + 1


@contextmanager
def _locked(directory: Path) -> Iterator[int]:
    """An exclusive flock on `directory` itself (no lock file to leave behind), for one
    read-edit-replace of the file; yields the directory's descriptor, to fsync the rename."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock here (Windows, some network mounts)
            pass
        yield fd
    finally:
        os.close(fd)  # and the lock with it


def _edit(key: str, line: str | None) -> tuple[bool, list[str]]:
    """Replace (or remove, `line` None) `key`'s line in the config file; returns whether
    the key was there, and notes for stderr. Nothing is written when removing a key that
    is not there."""
    from thrift_cli.home import write_atomically

    path = config.config_path()
    notes: list[str] = []
    home = path.parent
    if line is not None:
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ThriftError(f"cannot create {home}: {exc.strerror or exc}") from None
    elif not path.exists():
        return False, notes
    # A symlinked file (dotfiles) stays a link: the file it points to is replaced.
    target = path.resolve() if path.is_symlink() else path
    try:
        with _locked(target.parent) as directory_fd:
            try:
                old = target.read_bytes().decode("utf-8", "surrogateescape")
                mode = target.stat().st_mode & 0o777
            except FileNotFoundError:
                old, mode = "", None
            new, found = edited(old, key, line)
            if line is None and not found:
                return False, notes
            data = new.encode("utf-8", "surrogateescape")  # bytes not UTF-8 kept as they were
            # mkstemp creates the temporary file 0600: the file is that from now on.
            write_atomically(target.parent, lambda tmp: tmp.write_bytes(data), lambda tmp: target.name)
            try:
                os.fsync(directory_fd)  # the rename itself survives a crash
            except OSError:
                pass
    except OSError as exc:
        raise ThriftError(f"cannot write {path}: {exc.strerror or exc}") from None
    if mode is not None and mode & 0o077:
        notes.append(f"{path} was mode {mode:04o}, readable by others; it is now 0600")
    return found, notes


def _reread(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The file's checked values as `thrift ask` reads them, or None and what is still
    wrong with it (as a warning: the edit itself was made)."""
    try:
        return config.parse_file(path), []
    except UsageError as exc:
        return None, [f"warning: {exc}; thrift refuses to run until it is fixed"]


def set_value(key: str, text: str) -> list[str]:
    """Check `text` as `key`'s value and write it to the config file; returns notes for
    stderr (the file's other problems, a variable that overrides it...)."""
    import tomllib

    spec = known(key)
    path = config.config_path()
    try:
        checked = spec.check(config.checked_text(text, key), key)
        line = f"{key} = {toml_value(spec, checked, text)}"
    except UsageError as exc:
        raise UsageError(f"{path} not changed: {exc}") from None
    # The line alone must read back as the same value before it goes into the file.
    if config.checked_file_value(path, key, tomllib.loads(line)[key]) != checked:
        raise ThriftError(f"{path} not changed: {line!r} does not read back as {text!r}")
    _, notes = _edit(key, line)
    values, problems = _reread(path)
    if values is not None and values.get(key) != checked:
        raise ThriftError(f"{path} was written, but {key} does not read back as {text!r}")
    return notes + problems + _overridden(spec)


def unset_value(key: str) -> list[str]:
    """Remove `key` from the config file. Any key found in the file may be removed, known
    or not, so that a file with an unknown key can be repaired."""
    path = config.config_path()
    spec = SETTINGS.get(key)
    found, notes = _edit(key, None)
    if not found:
        if spec is None:
            known(key)  # raises: unknown, and not in the file either
        return notes
    return notes + _reread(path)[1] + (_overridden(spec) if spec else [])


def _overridden(spec: Setting) -> list[str]:
    if (variable := spec.set_variable()) is not None:
        return [f"note: {variable} is set, and overrides the file's {spec.key}"]
    return []
