"""A plain `thrift ask` is parsed without typer; every command line must mean the same
through the fast parser as through typer, or the fast parser must hand it to typer."""

from __future__ import annotations

import pytest

from thrift_cli import cli
from thrift_cli.errors import UsageError

CASES = [
    ["What is RAG?"],
    ["-"],
    [],
    ["-v", "What is RAG?"],
    ["What is RAG?", "--json", "-v"],
    ["--json", "--verbose", "--refresh", "--no-store", "--stdin", "q"],
    ["--lookup-only", "-n", "team", "q"],
    ["-n", "team", "-s", "0.9", "q"],
    ["--namespace=team", "--min-similarity=0.95", "q"],
    ["--ttl", "2h", "--timeout", "30", "q"],
    ["--ttl=7d", "--timeout=2m", "q"],
    ["-s", "1e-1", "q"],
    ["-n", "-", "q"],
    ["q", "-n", "after the question"],
    # Handed to typer: help, version, unknown or repeated options, clusters, bad values.
    ["--help"],
    ["-h", "q"],
    ["--version"],
    ["--unknown", "q"],
    ["-n", "a", "-n", "b", "q"],
    ["-vn", "team", "q"],
    ["-nteam", "q"],
    ["q1", "q2"],
    ["-n"],
    ["--json=yes", "q"],
    ["-x"],
]

# Settled the same way after either parser (cli.ask_settings): refused with one message.
REFUSED = [
    ["-n", "", "q"],
    ["--namespace=", "q"],
    ["-n", "   ", "q"],
    ["-s", "high", "q"],
    ["-s", "", "q"],
    ["-s", "nan", "q"],
    ["-s", "inf", "q"],
    ["-s", "1e400", "q"],
    ["-s", "0.9\n", "q"],
    ["--ttl", "-5", "q"],
    ["--ttl", "2h\n", "q"],
    ["--ttl", "1" + "0" * 400, "q"],
    ["--timeout", "0", "q"],
    ["--timeout=", "q"],
]

# (environment, what ask_command gets from it: keywords, or the start of the error).
ENV_CASES = [
    ({"THRIFT_NAMESPACE": "from-env"}, {"namespace": "from-env"}),
    ({"THRIFT_MIN_SIMILARITY": "0.9", "THRIFT_TTL": "1h"}, {"min_similarity": 0.9, "ttl": 3600.0}),
    # Empty is unset, for every variable.
    (
        {
            "THRIFT_NAMESPACE": "",
            "THRIFT_MIN_SIMILARITY": "",
            "THRIFT_TTL": "",
            "THRIFT_HNSW_MIN_ENTRIES": "",
        },
        {"namespace": None, "min_similarity": None, "ttl": None},
    ),
    # Refused, naming the variable.
    ({"THRIFT_NAMESPACE": " "}, "usage error: THRIFT_NAMESPACE"),
    ({"THRIFT_MIN_SIMILARITY": "lots"}, "usage error: THRIFT_MIN_SIMILARITY"),
    ({"THRIFT_TTL": "bogus"}, "usage error: THRIFT_TTL"),
    ({"THRIFT_HNSW_MIN_ENTRIES": "abc"}, "usage error: THRIFT_HNSW_MIN_ENTRIES"),
    ({"THRIFT_SQLITE": "sqlite4"}, "usage error: THRIFT_SQLITE"),
]


def outcome(call) -> dict | str:
    """What `call()` settles to: ask_command's keywords, or the usage error it raises."""
    try:
        return call()
    except UsageError as exc:
        return f"usage error: {exc}"


def through_fast(args: list[str]) -> dict | str | None:
    """What the fast path hands to ask_command, its usage error, or None (typer's job)."""
    parsed = cli._parse_ask(args)
    return None if parsed is None else outcome(lambda: cli.ask_settings(parsed))


def through_typer(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict | str:
    """What typer hands to ask_command for `thrift ask ARGS -- cmd`, settled as
    ask_command settles it, or its error."""
    seen: dict = {}

    def capture(command, parsed):
        seen.update(cli.ask_settings(parsed))
        return 0

    monkeypatch.setattr(cli, "ask_command", capture)
    code = outcome(lambda: cli._typer_main(["ask", *args], ["cmd"]))
    return seen if seen else code if isinstance(code, str) else f"exit {code}"


@pytest.mark.parametrize("args", CASES + REFUSED, ids=" ".join)
def test_fast_parser_agrees_with_typer(args, monkeypatch, capsys):
    fast = through_fast(args)
    slow = through_typer(args, monkeypatch)
    capsys.readouterr()
    if fast is None:
        assert args in CASES[CASES.index(["--help"]) :]  # only the cases listed for typer
    else:
        assert fast == slow
        assert isinstance(fast, str) == (args in REFUSED), fast


@pytest.mark.parametrize("env,expected", ENV_CASES, ids=str)
def test_fast_parser_reads_the_same_environment(env, expected, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fast = through_fast(["q"])
    slow = through_typer(["q"], monkeypatch)
    capsys.readouterr()
    assert fast == slow
    if isinstance(expected, str):
        assert isinstance(fast, str) and fast.startswith(expected), fast
    else:
        assert isinstance(fast, dict) and {k: fast[k] for k in expected} == expected


def test_the_fast_path_is_taken_for_a_plain_ask(monkeypatch):
    taken = []
    monkeypatch.setattr(cli, "ask_command", lambda command, parsed: taken.append((command, parsed)) or 0)
    monkeypatch.setattr(cli, "_typer_main", lambda *a: pytest.fail("typer was used"))
    assert cli.main(["ask", "-v", "What is RAG?", "--", "llm", "-m", "x", "--", "-v"]) == 0
    ((command, kw),) = taken
    assert command == ["llm", "-m", "x", "--", "-v"] and kw["question"] == "What is RAG?" and kw["verbose"]


def test_a_completion_request_goes_to_typer(monkeypatch):
    """click's completion protocol lives in typer: the fast path must not answer it."""
    monkeypatch.setenv("_THRIFT_COMPLETE", "complete_bash")
    monkeypatch.setattr(cli, "ask_command", lambda *a, **kw: pytest.fail("the fast path answered"))
    handed = []
    monkeypatch.setattr(cli, "_typer_main", lambda args, command: handed.append(args) or 0)
    assert cli.main(["ask", "q", "--", "llm"]) == 0 and handed == [["ask", "q"]]
