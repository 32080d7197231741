"""A plain `thrift ask` is parsed without typer; every command line must mean the same
through the fast parser as through typer, or the fast parser must hand it to typer."""

from __future__ import annotations

import pytest

from thrift_cli import cli

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
    ["-s", "nan", "q"],
    ["--ttl", "-5", "q"],
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
    ["-s", "high", "q"],
    ["--namespace=", "q"],
    ["q1", "q2"],
    ["-n"],
    ["--json=yes", "q"],
    ["-x"],
]

ENV_CASES = [
    {"THRIFT_NAMESPACE": "from-env"},
    {"THRIFT_MIN_SIMILARITY": "0.9", "THRIFT_TTL": "1h"},
    {"THRIFT_NAMESPACE": ""},
    {"THRIFT_MIN_SIMILARITY": "lots"},
]


def through_typer(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict | str:
    """What typer hands to ask_command for `thrift ask ARGS -- cmd`, or its error."""
    seen: dict = {}

    def capture(command, question, **kwargs):
        seen.update(question=question, **kwargs)
        return 0

    monkeypatch.setattr(cli, "ask_command", capture)
    code = cli._typer_main(["ask", *args], ["cmd"])
    return seen if seen else f"exit {code}"


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_fast_parser_agrees_with_typer(args, monkeypatch, capsys):
    fast = cli._parse_ask(args)
    slow = through_typer(args, monkeypatch)
    capsys.readouterr()
    if fast is not None:
        assert isinstance(slow, dict)
        assert {k: str(v) for k, v in fast.items()} == {k: str(v) for k, v in slow.items()}  # nan == nan
    else:
        assert args in CASES[CASES.index(["--help"]) :]  # only the cases listed for typer


@pytest.mark.parametrize("env", ENV_CASES, ids=str)
def test_fast_parser_reads_the_same_environment(env, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = ["q"]
    fast = cli._parse_ask(args)
    slow = through_typer(args, monkeypatch)
    capsys.readouterr()
    if fast is not None:
        assert fast == slow
    else:
        assert "" in env.values() or "lots" in env.values()


def test_the_fast_path_is_taken_for_a_plain_ask(monkeypatch):
    taken = []
    monkeypatch.setattr(cli, "ask_command", lambda command, **kw: taken.append((command, kw)) or 0)
    monkeypatch.setattr(cli, "_typer_main", lambda *a: pytest.fail("typer was used"))
    assert cli.main(["ask", "-v", "What is RAG?", "--", "llm", "-m", "x", "--", "-v"]) == 0
    ((command, kw),) = taken
    assert command == ["llm", "-m", "x", "--", "-v"] and kw["question"] == "What is RAG?" and kw["verbose"]
