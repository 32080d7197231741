"""thrift's settings from the environment, each read and checked in one place.

A bad value is a `UsageError` (exit 2) that names the variable, never a traceback from
deep inside the lookup. An empty variable counts as unset, as click, git and most shells'
tools treat one: `THRIFT_TTL= thrift ask ...` is a plain `thrift ask ...`.

This module is on the cold exact-hit path: it imports nothing but the standard library's
`os` and `math`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TypeVar

from thrift_cli.errors import UsageError

HOME = "THRIFT_HOME"
NAMESPACE = "THRIFT_NAMESPACE"
MIN_SIMILARITY = "THRIFT_MIN_SIMILARITY"
TTL = "THRIFT_TTL"
HNSW_MIN_ENTRIES = "THRIFT_HNSW_MIN_ENTRIES"
SQLITE = "THRIFT_SQLITE"

T = TypeVar("T")

DEFAULT_HNSW_MIN_ENTRIES = 20_000
SQLITE_MODULES = ("sqlite3", "pysqlite3")


def setting(name: str) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    value = os.environ.get(name)
    if not value:
        return None
    return checked_text(value, name)


def resolve(given: str | None, option: str, variable: str | None, check: Callable[[str, str], T]) -> T | None:
    """An option's value: as given on the command line, else its variable's (when it has
    one), else None; `check(value, name)` converts it, naming whichever it came from."""
    if given is not None:
        return check(checked_text(given, option), option)
    value = setting(variable) if variable else None
    return None if value is None else check(value, variable or option)


def checked_text(value: str, what: str) -> str:
    """`value` as given for `what` (an option or a variable), refused if it holds a control
    character: each setting is one line of text, and a newline that `float()` or a
    regex's `$` would quietly accept is a value pasted wrong, not a meaning."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{what} must not contain control characters (newline, tab...), got {value!r}")
    return value


def positive_int(value: str, what: str) -> int:
    """A whole number from 1 on, in plain ASCII digits. 18 digits at most keeps it a
    64-bit integer wherever it goes, far beyond any cache's size."""
    digits = value.lstrip("0")
    if value.isascii() and value.isdigit() and 1 <= len(digits) <= 18:
        return int(digits)
    raise UsageError(f"{what} must be a whole number from 1 on (at most 18 digits), got {shown(value)}")


def fraction(value: str, what: str) -> float:
    """A similarity in (0, 1]: what --min-similarity and THRIFT_MIN_SIMILARITY take."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 < number <= 1.0:  # nan and inf fail this too
        raise UsageError(f"{what} must be a number in (0, 1], such as 0.85, got {shown(value)}")
    return number


def namespace(value: str, what: str) -> str:
    """A namespace given by hand: some visible text, on one line."""
    if not value.strip():
        raise UsageError(f"{what} must not be empty or blank, got {value!r}")
    return checked_text(value, what)


def hnsw_min_entries() -> int:
    """`THRIFT_HNSW_MIN_ENTRIES`: namespaces this large are searched through a graph."""
    value = setting(HNSW_MIN_ENTRIES)
    return DEFAULT_HNSW_MIN_ENTRIES if value is None else positive_int(value, HNSW_MIN_ENTRIES)


def sqlite_module_name() -> str:
    """`THRIFT_SQLITE`: `pysqlite3` forces the fallback module; `sqlite3` (the default)
    takes the stdlib one when it can load extensions."""
    value = setting(SQLITE) or "sqlite3"
    if value not in SQLITE_MODULES:
        raise UsageError(f"{SQLITE} must be one of {', '.join(SQLITE_MODULES)}, got {shown(value)}")
    return value


def check_environment() -> None:
    """Check the variables every command reads, so a bad one is reported at once, not
    only on the path that happens to read it (a miss, a large namespace...)."""
    setting(HOME)
    hnsw_min_entries()
    sqlite_module_name()


def shown(value: str) -> str:
    """A bad value as an error message quotes it: in full unless it is huge."""
    return repr(value) if len(value) <= 60 else repr(value[:40]) + f"... ({len(value):,} characters)"
