"""Reading llm's logs.db for `thrift import`: the calls `thrift ask` could have answered.

llm (simonw/llm) logs every call. Releases before 0.36 wrote one `responses` row per
call; 0.36 writes `threads`, `turns` and content-addressed `messages`/`parts`, plus
`turn_search` (each turn's typed prompt and text answer), and only reads `responses`.
A `responses` row whose id is also a turn's is the same call, as `llm logs` treats it.
Imported are the calls that `llm -m MODEL [-s SYSTEM] [-o KEY VALUE]... PROMPT` would
repeat: a follow-up in a conversation, or a prompt with attachments, fragments, tools
or a schema, was answered from more than its text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thrift_cli import keys
from thrift_cli.errors import UsageError
from thrift_cli.importer import Record, Skipped, encodable

_TURNS = """
SELECT t.model, ts.prompt, ts.response, t.options_json,
  CASE
    WHEN pm.role IS NOT 'user' THEN 'no typed prompt'
    WHEN gp.hash IS NOT NULL AND (gp.role IS NOT 'system' OR gp.parent_hash IS NOT NULL)
      THEN 'follow-up in a conversation'
    WHEN t.parent_message_hash IN (SELECT message_hash FROM parts WHERE type IS NOT 'text')
      THEN 'attachments'
    {extra}
  END,
  (SELECT group_concat(text, '') FROM
    (SELECT text FROM parts WHERE message_hash = gp.hash AND type = 'text' ORDER BY position))
FROM turns t
LEFT JOIN turn_search ts ON ts.turn_id = t.id
LEFT JOIN messages pm ON pm.hash = t.parent_message_hash
LEFT JOIN messages gp ON gp.hash = pm.parent_hash
ORDER BY t.datetime_utc, t.id
"""

_RESPONSES = """
SELECT r.model, r.prompt, r.response, {options},
  CASE
    WHEN r.conversation_id IS NOT NULL AND r.position > 1 THEN 'follow-up in a conversation'
    {extra}
  END,
  {system}
FROM (SELECT *, row_number() OVER (PARTITION BY conversation_id ORDER BY datetime_utc, id) AS position
      FROM responses) r
{where}
ORDER BY r.datetime_utc, r.id
"""

# (table, column holding the response or turn id, why such a call is skipped)
_LEGACY_LINKS = [
    ("prompt_attachments", "response_id", "attachments"),
    ("prompt_fragments", "response_id", "fragments"),
    ("system_fragments", "response_id", "fragments"),
    ("tool_responses", "response_id", "tools"),
    ("tool_calls", "response_id", "tools"),
    ("tool_results", "response_id", "tools"),
]
_TURN_LINKS = [("turn_fragments", "turn_id", "fragments"), ("turn_tools", "turn_id", "tools")]


def read_logs(path: str) -> Iterator[Record | Skipped]:
    """The calls of an llm logs.db, oldest first; rows that cannot be reused as Skipped."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        queries = []
        if "responses" in tables:
            queries.append(_legacy_query(conn, tables))
        if {"turns", "turn_search", "messages", "parts"} <= tables:
            queries.append(_TURNS.format(extra=_skip_when(conn, tables, _TURN_LINKS, "t", "turns")))
        if not queries:
            raise UsageError(f"{path} is a SQLite database but not llm's logs.db (no responses or turns)")
        for sql in queries:
            for model, prompt, response, options, skip, system in conn.execute(sql):
                if skip is not None:
                    yield Skipped(skip)
                elif not isinstance(prompt, str) or not prompt.strip() or not encodable(prompt):
                    yield Skipped("no typed prompt")
                elif not isinstance(response, str) or not response.strip() or not encodable(response):
                    yield Skipped("empty response")
                elif not isinstance(model, str) or not model:
                    yield Skipped("no model")
                else:
                    # The stored answer is what the command prints: llm ends it with "\n".
                    namespace = keys.command_namespace(_llm_command(model, system, options))
                    yield Record(prompt, response + "\n", namespace, 0)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()


def _legacy_query(conn: Any, tables: set[str]) -> str:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
    return _RESPONSES.format(
        options="r.options_json" if "options_json" in columns else "NULL",
        system="r.system" if "system" in columns else "NULL",
        extra=_skip_when(conn, tables, _LEGACY_LINKS, "r", "responses"),
        where="WHERE r.id NOT IN (SELECT id FROM turns)" if "turns" in tables else "",
    )


def _skip_when(conn: Any, tables: set[str], links: list[tuple[str, str, str]], alias: str, table: str) -> str:
    """`WHEN ... THEN reason` for each link table this database has. `IN (SELECT ...)`
    rather than `EXISTS`: SQLite builds the set once, and some of these tables have no
    index on the id column."""
    whens = [
        f"WHEN {alias}.id IN (SELECT {column} FROM {name}) THEN '{reason}'"
        for name, column, reason in links
        if name in tables
    ]
    if "schema_id" in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        whens.append(f"WHEN {alias}.schema_id IS NOT NULL THEN 'schema'")
    return "\n    ".join(whens)


def _llm_command(model: str, system: str | None, options: str | None) -> list[str]:
    """The `llm` command line that makes the same call, so `thrift ask Q -- llm -m MODEL`
    finds the imported answers: a system prompt and options are part of it."""
    command = ["llm", "-m", model]
    if system:
        command += ["-s", system]
    try:
        parsed = json.loads(options) if options else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        for key, value in sorted(parsed.items()):
            if value is not None:
                command += ["-o", key, value if isinstance(value, str) else json.dumps(value)]
    return command
