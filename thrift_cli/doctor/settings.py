"""Doctor's checks of the settings: the config file and the environment, and the settings
as the other checks read them, a bad line of the file left out."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from thrift_cli import config
from thrift_cli.doctor import FAIL, OK, WARN, Check, Context
from thrift_cli.errors import UsageError


class Settings:
    """The settings as thrift reads them (environment > config file > default), except that
    a bad line of the config file is left out instead of failing: its own line reports it,
    and the other checks go on with the rest."""

    def __init__(self, home: Path | None) -> None:
        self.path = config.config_path(home) if home is not None else None
        self.exists, self.mode = False, 0
        self.unreadable: str | None = None  # the whole file: no permission, not TOML...
        self.raw: dict[str, Any] = {}
        self.file: dict[str, Any] = {}  # the good lines, checked
        self.problems: dict[str, str] = {}  # key -> what is wrong with it
        if self.path is not None:
            self._read(self.path)

    def _read(self, path: Path) -> None:
        import tomllib

        try:
            self.mode = os.stat(path).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            self.exists, self.unreadable = True, f"cannot be read: {exc.strerror or exc}"
            return
        self.exists = True
        try:
            with open(path, "rb") as f:
                self.raw = tomllib.load(f)
        except OSError as exc:
            self.unreadable = f"cannot be read: {exc.strerror or exc}"
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            self.unreadable = f"is not valid TOML: {exc}"
        for key, value in self.raw.items():
            try:
                self.file[key] = config.checked_file_value(path, key, value)
            except UsageError as exc:
                self.problems[key] = str(exc).removeprefix(f"{path}: ")

    def value(self, key: str) -> tuple[Any, str]:
        """A setting's value and where it comes from. Raises UsageError for a bad variable."""
        spec = config.SETTINGS[key]
        if (variable := spec.set_variable()) is not None:
            return spec.check(config.checked_text(os.environ[variable], variable), variable), variable
        if key in self.file:
            return self.file[key], str(self.path)
        return spec.default, "default"

    def tenant(self) -> str:
        """As `tiers.tenant` decides it."""
        from thrift_cli import keys

        chosen = self.value("tenant")[0]
        if chosen is not None:
            return str(chosen)
        api_key = self.value("api_key")[0]
        return keys.api_key_namespace(api_key).replace(":", "-") if api_key else "local"


def check_config(context: Context) -> Iterator[Check]:
    s = context.settings
    if s.path is None:
        yield Check(
            "config", FAIL, f"no THRIFT_HOME: {context.home_error}", "point THRIFT_HOME at a directory"
        )
        return
    if not s.exists:
        yield Check("config", OK, f"{s.path}: no file (the defaults and the environment apply)")
        return
    if s.unreadable is not None:
        yield Check("config", FAIL, f"{s.path}: {s.unreadable}", f"correct {s.path} by hand")
        return
    if s.problems:
        detail = f"{s.path}: " + "; ".join(s.problems.values())
        fixes = [
            f"thrift config set {key} VALUE"
            if key in config.SETTINGS
            else f"thrift config unset {shlex.quote(key)}"
            for key in s.problems
        ]
        yield Check("config", FAIL, detail, "; ".join(fixes))
    mode = s.mode & 0o777
    if mode & 0o077:  # `thrift config set` writes it 0600: it may hold secrets
        secrets = [key for key in s.raw if key in config.SETTINGS and config.SETTINGS[key].secret]
        detail, fix = f"{s.path}: mode {mode:04o}, readable by other users", f"chmod 600 {s.path}"
        if secrets:
            yield Check("config", FAIL, f"{detail}, and it holds {', '.join(secrets)}", fix)
        else:
            yield Check(
                "config", WARN, f"{detail} (no secret in it yet; api_key and redis_url would be)", fix
            )
    elif not s.problems:
        held = f"{len(s.file)} setting{'s' * (len(s.file) != 1)}" + (
            f" ({', '.join(s.file)})" if s.file else ""
        )
        yield Check("config", OK, f"{s.path}: {held}, mode {mode:04o}")


def check_environment(context: Context) -> Iterator[Check]:
    """Every variable thrift reads, checked as the command that reads it would."""
    variables: list[tuple[str, Callable[[str, str], Any]]] = [
        (config.HOME, config.checked_text),
        (config.NAMESPACE, config.namespace),
        (config.SQLITE, lambda value, what: config.sqlite_module_name()),
    ]
    variables += [(v, s.check) for s in config.SETTINGS.values() for v in s.variables]
    shown, problems = [], []
    for variable, check in variables:
        raw = os.environ.get(variable)
        if not raw:
            continue  # empty counts as unset
        shown.append(variable)
        try:
            check(config.checked_text(raw, variable), variable)
        except UsageError as exc:
            problems.append((variable, str(exc)))
    if problems:
        names = ", ".join(name for name, _ in problems)
        yield Check("environment", FAIL, "; ".join(m for _, m in problems), f"correct or unset {names}")
    else:
        yield Check(
            "environment", OK, f"{', '.join(shown)} set and valid" if shown else "no thrift variables set"
        )
