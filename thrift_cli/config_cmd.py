"""`thrift config get|set|unset|list|path`: the typer sub-app over `$THRIFT_HOME/config.toml`.

Each command parses, calls config_file.py (which reads the values and edits the file),
and renders. A shell module, as `commands.py`: the core never imports it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from thrift_cli import config
from thrift_cli.config import SETTINGS
from thrift_cli.config_file import current, default_text, known, set_value, unset_value
from thrift_cli.errors import UsageError


def where_the_file_lives() -> str:
    """The last paragraph of each `thrift config` help page, computed when it is shown."""
    from rich.markup import escape

    from thrift_cli.home import default_home

    default = escape(str(default_home() / config.CONFIG_NAME))
    chosen = os.environ.get(config.HOME)
    if not chosen:
        return f"The file is {config.CONFIG_NAME} in THRIFT_HOME, by default {default} on this machine."
    now = escape(str(Path(chosen).expanduser() / config.CONFIG_NAME))
    return f"The file is {config.CONFIG_NAME} in THRIFT_HOME, now {now} (by default {default})."


def settings_help() -> str:
    """The table of settings in `thrift config --help`, made from `SETTINGS`."""
    from rich.markup import escape

    width = max(len(key) for key in SETTINGS) + 2
    variables = max(len(s.variable or "") for s in SETTINGS.values()) + 2
    lines = [f"  {'KEY':<{width}}{'VARIABLE':<{variables}}DEFAULT"]
    for key, spec in SETTINGS.items():
        lines.append(f"  {key:<{width}}{spec.variable or '':<{variables}}{default_text(spec) or '(unset)'}")
    # \b: click's mark for "do not rewrap this paragraph".
    return escape("\b\n" + "\n".join(lines) + "\n\nthrift config list --long says what each one means.")


class _Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.help = (
            "Get, set and list thrift's settings, kept in config.toml.\n\n"
            "Example: thrift config set min_similarity 0.9\n\n"
            "A setting's value comes from the command line's flag, else its environment variable "
            "(an empty one counts as unset), else the file, else its default. The settings:\n\n"
            + settings_help()
        )
        self.epilog = where_the_file_lives()
        super().format_help(ctx, formatter)


class _Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = where_the_file_lives()
        super().format_help(ctx, formatter)


config_app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    help="Get, set and list thrift's settings, kept in config.toml.",
)


def _complete_key(incomplete: str) -> list[tuple[str, str]]:
    return [(key, spec.help) for key, spec in SETTINGS.items() if key.startswith(incomplete)]


KeyArgument = Annotated[
    str, typer.Argument(help="A setting, such as ttl.", autocompletion=_complete_key, show_default=False)
]


# -- the commands ---------------------------------------------------------------------


@config_app.command("get", cls=_Command)
def get(key: KeyArgument) -> int:
    """Print a setting's value: from its variable, else the file, else its default.

    Example: thrift config get min_similarity

    The value is printed as it was written (secrets too: a script asking for one wants it). A setting with no value prints nothing and exits 1, as git config does. An unknown key, or a bad config file or variable, is exit 2.
    """  # noqa: E501 (rich reflows each paragraph; a line break here would show)
    known(key)
    text, _ = current(key)
    if text is None:
        return 1
    print(text)
    return 0


@config_app.command("set", cls=_Command)
def set_(
    ctx: typer.Context,
    key: KeyArgument,
    value: Annotated[
        Optional[str],
        typer.Argument(help="Its value; one beginning with - goes after --.", show_default=False),
    ] = None,
    stdin: Annotated[
        bool,
        typer.Option("--stdin", help="Read the value from stdin (a secret stays out of ps and history)."),
    ] = False,
) -> int:
    """Write a setting to the config file, checked as its variable would be.

    Example: thrift config set ttl 7d

    thrift config set api_key -- -starts-with-a-dash; printf %s "$KEY" | thrift config set api_key --stdin

    Only the setting's line changes (it is appended if new); comments and other lines are kept. The file is replaced atomically, mode 0600, and THRIFT_HOME is created (0700) if missing. A bad value is exit 2 and nothing is written. If the file has another problem (an unknown key, a bad value, invalid TOML) the value is still written and the problem is reported as a warning, so the tool can repair the file.
    """  # noqa: E501
    known(key)
    after: list[str] | None = ctx.obj
    given = [v for v in (value, *(after or ())) if v is not None]
    if stdin:
        if given:
            raise UsageError("give the value either as an argument or with --stdin, not both")
        text = _read_stdin()
    elif len(given) != 1:
        raise UsageError(
            "thrift config set KEY VALUE takes one value"
            if given
            else f"missing the value: thrift config set {key} VALUE"
        )
    else:
        text = given[0]
    for note in set_value(key, text):
        print(f"thrift: {note}", file=sys.stderr)
    return 0


def _read_stdin() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--stdin: pipe the value in (printf %s VALUE | thrift config set KEY --stdin)")
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the value on stdin is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text  # echo's newline is not part of it


@config_app.command("unset", cls=_Command)
def unset(
    key: Annotated[
        str, typer.Argument(help="A setting, or any key in the file.", autocompletion=_complete_key)
    ],
) -> int:
    """Remove a setting from the config file, so its default applies (unless its variable is set).

    Example: thrift config unset ttl

    Removing a setting the file does not have changes nothing (exit 0). Any key the file holds can be removed, even one thrift does not know, to repair the file.
    """  # noqa: E501
    for note in unset_value(key):
        print(f"thrift: {note}", file=sys.stderr)
    return 0


@config_app.command("list", cls=_Command)
def list_(
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Add each setting's meaning, variable and flag.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: {key: {"value": ..., "source": ...}}.')
    ] = False,
) -> int:
    """Print every setting: its value (secrets masked) and where it comes from.

    Example: thrift config list --long

    The source is the variable's name, the config file's path, or "default". With --json, a value is the text thrift config get prints (masked for secrets), or null when unset.
    """  # noqa: E501
    rows = []
    for key in SETTINGS:
        text, where = current(key)
        rows.append((key, None if text is None else config.masked(key, text), where))
    if as_json:
        print(
            json.dumps(
                {key: {"value": shown, "source": where} for key, shown, where in rows}, ensure_ascii=False
            )
        )
        return 0
    key_width = max(len(key) for key, _, _ in rows) + 2
    value_width = max(len(shown or "(unset)") for _, shown, _ in rows) + 2
    for key, shown, where in rows:
        print(f"{key:<{key_width}}{shown or '(unset)':<{value_width}}{where}".rstrip())
        if long:
            spec = SETTINGS[key]
            extra = [f"variable {spec.variable}"] if spec.variable else []
            extra += [f"flag thrift ask {spec.option}"] if spec.option else []
            extra.append(f"default {default_text(spec) or 'unset'}")
            print(f"    {spec.help}; {', '.join(extra)}")
    return 0


@config_app.command("path", cls=_Command)
def path_() -> int:
    """Print the config file's path (whether or not it exists).

    Example: $EDITOR "$(thrift config path)"
    """
    print(config.config_path())
    return 0
