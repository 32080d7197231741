"""thrift's settings, each read and checked in one place: flag > environment > config file
> default.

The config file is `$THRIFT_HOME/config.toml`, one `key = value` line per setting (see
`SETTINGS`). A bad value is a `UsageError` (exit 2) that names the flag, the variable, or
the file and key it came from, never a traceback from deep inside the lookup. An empty
variable counts as unset, as click, git and most shells' tools treat one: `THRIFT_TTL=
thrift ask ...` is a plain `thrift ask ...`.

This module is on the cold exact-hit path: it imports nothing but the standard library's
`os`, `re` and `math`, and `tomllib` only when a config file exists.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from thrift_cli.errors import ThriftError, UsageError

HOME = "THRIFT_HOME"
NAMESPACE = "THRIFT_NAMESPACE"
MIN_SIMILARITY = "THRIFT_MIN_SIMILARITY"
TTL = "THRIFT_TTL"
HNSW_MIN_ENTRIES = "THRIFT_HNSW_MIN_ENTRIES"
SQLITE = "THRIFT_SQLITE"

CONFIG_NAME = "config.toml"

T = TypeVar("T")

DEFAULT_HNSW_MIN_ENTRIES = 20_000
# ThriftLM's blended price (input and output tokens alike), dollars per 1,000 tokens.
DEFAULT_PRICE_PER_1K = 0.002
# The config file's one table: `[price]` (or `price."llm -m gpt-4o*" = 0.0006`), a price
# per 1,000 tokens by namespace or namespace pattern, for `thrift stats`.
PRICE_TABLE = "price"
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


# -- the checks: (text, what) -> value, where `what` names the setting in the error -------


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


# Spaces, not \s: a newline or a tab in a duration is a value pasted wrong (and `$` alone
# would match before a trailing newline).
_DURATION = re.compile(r" *([0-9]+(?:\.[0-9]+)?) *(ms|[smhdw]?) *")
_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: str, what: str) -> float:
    """`90`, `90s`, `50ms`, `15m`, `2h`, `7d`, `1w` -> seconds."""
    match = _DURATION.fullmatch(value)
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else math.nan
    if not 0 < seconds < math.inf:  # `1` and 400 zeros is a float, and infinite
        raise UsageError(f"{what} must be a positive duration such as 90, 15m, 2h or 7d, got {shown(value)}")
    return seconds


def redis_url(value: str, what: str) -> str:
    """A URL redis-py can open: redis://, rediss:// (TLS) or unix://."""
    if not re.match(r"(rediss?|unix)://.", value):
        raise UsageError(
            f"{what} must be a redis://, rediss:// or unix:// URL such as redis://127.0.0.1:6379/0, "
            f"got {shown(_without_password(value))}"
        )
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def boolean(value: str, what: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise UsageError(f"{what} must be true or false, got {shown(value)}")


def postgres_url(value: str, what: str) -> str:
    """A URL libpq opens: postgresql:// or postgres://."""
    if not re.match(r"postgres(ql)?://.", value):
        raise UsageError(
            f"{what} must be a postgresql:// URL such as postgresql://user:password@host:5432/db, "
            f"got {shown(_without_password(value))}"
        )
    return value


def http_url(value: str, what: str) -> str:
    """An http(s):// URL with a host (a Supabase project's: https://<ref>.supabase.co)."""
    if not re.match(r"https?://[^/\s]+", value):
        raise UsageError(
            f"{what} must be an https:// URL such as https://abcd.supabase.co, got {shown(value)}"
        )
    return value


TENANT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # the remote's rule too (sql/postgres/0001)
_TENANT = re.compile(TENANT_PATTERN)


def tenant(value: str, what: str) -> str:
    """A tenant name: part of every shared key (`thrift:v1:<tenant>:...`), so no `:`."""
    if not _TENANT.fullmatch(value):
        raise UsageError(
            f"{what} must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            f"got {shown(value)}"
        )
    return value


def price(value: str, what: str) -> float:
    """Dollars per 1,000 tokens: a finite number from 0 on."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number < math.inf:
        raise UsageError(
            f"{what} must be a price per 1,000 tokens from 0 on, such as 0.002, got {shown(value)}"
        )
    return number


def text(value: str, what: str) -> str:
    if not value.strip():
        raise UsageError(f"{what} must not be empty or blank")
    return value


def entity_list(value: str, what: str) -> tuple[str, ...]:
    """PII types for the scrubber, comma-separated: PERSON,EMAIL_ADDRESS,... (privacy.ENTITIES)."""
    from thrift_cli.privacy import ENTITIES

    names = tuple(n.strip().upper() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in ENTITIES]
    if not names or unknown:
        raise UsageError(
            f"{what} must be PII types separated by commas, from {', '.join(ENTITIES)}; got {shown(value)}"
        )
    return names


def placeholder(value: str, what: str) -> str:
    """What replaces a PII span: any text, `{type}` standing for its type (<{type}>)."""
    try:
        value.format(type="PERSON")
    except (KeyError, IndexError, ValueError):
        raise UsageError(
            f"{what} may hold only {{type}} in braces, such as <{{type}}>, got {shown(value)}"
        ) from None
    return value


# -- the settings the config file may hold ------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: its key in config.toml, its variable, how it is checked."""

    key: str
    variable: str | None
    check: Callable[[str, str], Any]
    default: Any
    help: str
    option: str | None = None  # the flag of `thrift ask` that overrides it, if any
    secret: bool = False  # shown masked by `thrift config list`; the file is kept 0600
    number: bool = False  # written as a TOML number by `thrift config set`
    aliases: tuple[str, ...] = ()  # other variables read, after `variable` (DATABASE_URL)

    @property
    def variables(self) -> tuple[str, ...]:
        return ((self.variable,) if self.variable else ()) + self.aliases

    def set_variable(self) -> str | None:
        """The first of its variables that is set (non-empty), if any."""
        return next((v for v in self.variables if setting(v) is not None), None)


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "min_similarity",
            MIN_SIMILARITY,
            fraction,
            None,
            "how close a paraphrase must be to be served, in (0, 1]; "
            "unset: 0.70 with the verifier, 0.85 without",
            "--min-similarity",
            number=True,
        ),
        Setting(
            "ttl", TTL, duration, None, "how long new answers live (90, 15m, 2h, 7d); unset: forever", "--ttl"
        ),
        Setting(
            "timeout",
            "THRIFT_TIMEOUT",
            duration,
            None,
            "how long one thrift ask may take, waiting included; unset: no limit",
            "--timeout",
        ),
        Setting(
            "hnsw_min_entries",
            HNSW_MIN_ENTRIES,
            positive_int,
            DEFAULT_HNSW_MIN_ENTRIES,
            "namespaces this large are searched through an HNSW graph",
            number=True,
        ),
        Setting(
            "redis_url",
            "REDIS_URL",
            redis_url,
            None,
            "the shared exact tier, e.g. redis://127.0.0.1:6379/0; unset: no Redis",
            secret=True,
        ),
        Setting(
            "redis_ttl",
            "THRIFT_REDIS_TTL",
            duration,
            30 * 86400.0,
            "how long Redis keeps an answer that never expires",
        ),
        Setting(
            "redis_connect_timeout",
            "THRIFT_REDIS_CONNECT_TIMEOUT",
            duration,
            0.05,
            "how long to wait for a connection to Redis (50ms)",
        ),
        Setting(
            "redis_timeout",
            "THRIFT_REDIS_TIMEOUT",
            duration,
            0.1,
            "how long to wait for Redis to answer a command (100ms)",
        ),
        Setting(
            "database_url",
            "SUPABASE_DB_URL",
            postgres_url,
            None,
            "the team's remote: a Postgres URL (Supabase's connection string); unset: no remote",
            secret=True,
            aliases=("DATABASE_URL",),
        ),
        Setting(
            "supabase_url",
            "SUPABASE_URL",
            http_url,
            None,
            "the team's remote through Supabase's REST API (with supabase_key), when database_url is unset",
        ),
        Setting(
            "supabase_key",
            "SUPABASE_KEY",
            text,
            None,
            "the Supabase project's anon key, for the REST path; the tenant still comes from api_key",
            secret=True,
        ),
        Setting(
            "remote_lookup",
            "THRIFT_REMOTE_LOOKUP",
            boolean,
            False,
            "after a local miss, ask the remote too (thrift ask --remote)",
        ),
        Setting(
            "push_on_store",
            "THRIFT_PUSH_ON_STORE",
            boolean,
            False,
            "after a miss is stored, push it to the remote at once, in the background",
        ),
        Setting(
            "remote_timeout",
            "THRIFT_REMOTE_TIMEOUT",
            duration,
            0.3,
            "how long a remote lookup may take, connecting included (300ms)",
        ),
        Setting(
            "tenant",
            "THRIFT_TENANT",
            tenant,
            None,
            "whose entries these are in shared tiers; unset: a hash of api_key, else 'local'",
        ),
        Setting(
            "price_per_1k",
            "THRIFT_PRICE_PER_1K",
            price,
            DEFAULT_PRICE_PER_1K,
            "dollars per 1,000 tokens for thrift stats' money saved, where no [price] pattern matches",
            number=True,
        ),
        Setting(
            "scrub",
            "THRIFT_SCRUB",
            boolean,
            True,
            "replace personal data (names, emails, phones, cards...) in answers before storing them",
            "--no-scrub",
        ),
        Setting(
            "verify",
            "THRIFT_VERIFY",
            boolean,
            True,
            "read each semantic candidate with the question (the verifier) before serving it",
            "--no-verify",
        ),
        Setting(
            "scrub_entities",
            "THRIFT_SCRUB_ENTITIES",
            entity_list,
            None,
            "the PII types scrubbed, comma-separated; unset: privacy.DEFAULT_ENTITIES (see the README)",
        ),
        Setting(
            "scrub_placeholder",
            "THRIFT_SCRUB_PLACEHOLDER",
            placeholder,
            "<{type}>",
            "what replaces each PII span; {type} is its type (EMAIL_ADDRESS...)",
        ),
        Setting(
            "scrub_min_score",
            "THRIFT_SCRUB_MIN_SCORE",
            fraction,
            0.5,
            "the least confidence (0-1] a PII span needs to be scrubbed",
            number=True,
        ),
        Setting(
            "api_key",
            "THRIFT_API_KEY",
            text,
            None,
            "the team's key for the shared tiers; only a hash of it is used or stored",
            secret=True,
        ),
    )
}


def config_path(home: Path | str | None = None) -> Path:
    """`$THRIFT_HOME/config.toml` (or that of `home`)."""
    from thrift_cli.home import thrift_home

    return (Path(home).expanduser() if home is not None else thrift_home()) / CONFIG_NAME


_loaded: dict[tuple[Path, int, int], dict[str, Any]] = {}


def file_values(home: Path | str | None = None) -> dict[str, Any]:
    """The checked settings of the config file (empty when there is none); read once per
    process and file version. Raises UsageError for a bad file, naming it and the key."""
    path = config_path(home)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ThriftError(f"cannot read {path}: {exc.strerror or exc}") from None
    stamp = (path, st.st_mtime_ns, st.st_size)
    if stamp not in _loaded:
        _loaded.clear()
        _loaded[stamp] = parse_file(path)
    return _loaded[stamp]


def parse_file(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ThriftError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}{_where(path, str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    return {key: checked_file_value(path, key, value) for key, value in raw.items()}


def _where(path: Path, error: str) -> str:
    """The key of the line a TOML error points at (`, in ttl = ...`), so the message names
    the setting; never the value, which may be a secret."""
    found = re.search(r"at line (\d+)", error)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        line = lines[int(found.group(1)) - 1] if found else ""
    except (OSError, IndexError):
        return ""
    key = line.split("=", 1)[0].strip() if "=" in line else ""
    return f", in {shown(key)[1:-1]} = ..." if key else ""


def checked_file_value(path: Path, key: str, value: object) -> Any:
    """The value of `key` in the file at `path`, checked as its flag or variable would be."""
    if key == PRICE_TABLE:
        return price_table(path, value)
    spec = SETTINGS.get(key)
    if spec is None:
        raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(SETTINGS)}, [{PRICE_TABLE}])")
    what = f"{path}: {key}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{what} must be text or a number, got {shown(repr(value))}")
    return spec.check(checked_text(str(value), what), what)


def price_table(path: Path, table: object) -> dict[str, float]:
    """The `[price]` table: namespace (or glob pattern of namespaces) -> price per 1K tokens."""
    if not isinstance(table, dict):
        raise UsageError(
            f'{path}: {PRICE_TABLE} must be a table of prices, such as price."llm -m gpt-4o*" = 0.0006'
        )
    prices = {}
    for pattern, given in table.items():
        what = f"{path}: {PRICE_TABLE}.{shown(pattern)}"
        namespace(checked_text(pattern, what), what)
        if isinstance(given, bool) or not isinstance(given, (int, float)):
            raise UsageError(f"{what} must be a number (dollars per 1,000 tokens), got {shown(repr(given))}")
        prices[pattern] = price(repr(float(given)), what)
    return prices


def prices(home: Path | str | None = None) -> dict[str, float]:
    """The config file's `[price]` table (empty when it has none)."""
    return dict(file_values(home).get(PRICE_TABLE, {}))


def value(key: str, given: str | None = None, home: Path | str | None = None) -> Any:
    """A setting's value: `given` (its flag's text), else its variable, else the config
    file, else the default; checked, the error naming where the value came from."""
    spec = SETTINGS[key]
    if given is not None:
        what = spec.option or key
        return spec.check(checked_text(given, what), what)
    if (variable := spec.set_variable()) is not None:
        return spec.check(checked_text(os.environ[variable], variable), variable)
    values = file_values(home)
    return values.get(key, spec.default)


def source(key: str, home: Path | str | None = None) -> str:
    """Where `key`'s value comes from: its variable's name, the file's path, or 'default'."""
    spec = SETTINGS[key]
    if (variable := spec.set_variable()) is not None:
        return variable
    return str(config_path(home)) if key in file_values(home) else "default"


def hnsw_min_entries() -> int:
    """Namespaces this large are searched through a graph."""
    return int(value("hnsw_min_entries"))


def sqlite_module_name() -> str:
    """`THRIFT_SQLITE`: `pysqlite3` forces the fallback module; `sqlite3` (the default)
    takes the stdlib one when it can load extensions."""
    chosen = setting(SQLITE) or "sqlite3"
    if chosen not in SQLITE_MODULES:
        raise UsageError(f"{SQLITE} must be one of {', '.join(SQLITE_MODULES)}, got {shown(chosen)}")
    return chosen


def check_environment() -> None:
    """Check the variables every command reads, and the config file, so a bad one is
    reported at once, not only on the path that happens to read it (a miss, a large
    namespace, Redis...)."""
    setting(HOME)
    sqlite_module_name()
    file_values()
    for key, spec in SETTINGS.items():
        if spec.option is None:  # those with a flag are checked where the flag is read
            value(key)


def shown(value: str) -> str:
    """A bad value as an error message quotes it: in full unless it is huge."""
    return repr(value) if len(value) <= 60 else repr(value[:40]) + f"... ({len(value):,} characters)"


def remote(home: Path | str | None = None) -> tuple[str, str | None] | None:
    """Where the team's remote is: (database_url, None) over Postgres, else (supabase_url,
    supabase_key) over Supabase's REST API when both are set; None when there is none."""
    url = value("database_url", home=home)
    if url is not None:
        return url, None
    rest_url, rest_key = value("supabase_url", home=home), value("supabase_key", home=home)
    if rest_url is not None and rest_key is not None:
        return rest_url, rest_key
    if rest_url is not None or rest_key is not None:
        missing = "SUPABASE_KEY (supabase_key)" if rest_url is not None else "SUPABASE_URL (supabase_url)"
        raise UsageError(f"the Supabase REST path needs {missing} as well")
    return None


def masked(key: str, current: Any) -> str:
    """A setting's value as `thrift config list` shows it: secrets hidden."""
    if current is None:
        return ""
    if not SETTINGS[key].secret:
        return f"{current:g}" if isinstance(current, float) else str(current)
    if key in ("redis_url", "database_url"):
        return _without_password(str(current))
    return "****" + str(current)[-4:] if len(str(current)) > 8 else "****"


def _without_password(url: str) -> str:
    """`redis://user:secret@host` -> `redis://user:****@host`."""
    # Up to the last @ before the path: redis-py reads `redis://u:p@ss@host` as password p@ss.
    return re.sub(r"(://[^/@:]*:)[^/]*@", r"\1****@", url)
