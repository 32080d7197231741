import os

from thrift_cli.keys import api_key_namespace, command_namespace, exact_key, normalize
from thrift_cli.runner import command_argv


def test_normalize_ignores_case_spacing_and_trailing_punctuation():
    assert normalize("  What IS  semantic\ncaching?! ") == "what is semantic caching"
    assert normalize("ﬁle ＡＢＣ") == "file abc"  # NFKC


def test_punctuation_only_questions_stay_apart():
    assert normalize("???") != normalize("!!!")
    assert exact_key("ns", "???") != exact_key("ns", "!!!")


def test_normalize_keeps_what_changes_meaning():
    assert normalize("What is 2+2?") != normalize("What is 2+3?")
    assert normalize("Is it safe?") != normalize("Is it not safe?")


def test_exact_key_is_tagged_and_scoped_by_namespace():
    key = exact_key("ns", "What is RAG?")
    assert key.startswith("v1:") and len(key) == 3 + 40
    assert key == exact_key("ns", "what is rag")
    assert key != exact_key("other", "What is RAG?")


def test_command_namespace():
    assert command_namespace(["llm", "-m", "gpt-4o-mini"]) == "llm -m gpt-4o-mini {}"
    assert command_namespace(["llm", "-m", "gpt-4o-mini", "{}"]) == "llm -m gpt-4o-mini {}"
    assert command_namespace(["llm", "-m", "gpt-4o"]) != command_namespace(["llm", "-m", "claude"])
    assert command_namespace(["ollama", "run", "llama3"], stdin=True) == "ollama run llama3 < {}"
    assert command_namespace(["sh", "-c", "a b"]) == "sh -c 'a b' {}"


def test_a_program_given_as_a_path_is_named_by_its_real_path(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True)
    (project / "bin" / "fake").write_text("#!/bin/sh\n")
    (tmp_path / "link").symlink_to(project / "bin" / "fake")
    real = os.path.realpath(project / "bin" / "fake")
    monkeypatch.chdir(project)
    expected = f"{real} -m x {{}}"
    assert command_namespace(["bin/fake", "-m", "x"]) == expected
    assert command_namespace(["./bin/fake", "-m", "x"]) == expected
    assert command_namespace([str(project / "bin" / "fake"), "-m", "x"]) == expected
    assert command_namespace([str(tmp_path / "link"), "-m", "x"]) == expected  # symlinks resolved
    assert command_namespace(["../project/bin/fake", "-m", "x"]) == expected


def test_a_bare_name_and_the_other_arguments_stay_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert command_namespace(["llm", "-m", "gpt-4o-mini"]) == "llm -m gpt-4o-mini {}"
    assert command_namespace(["sh", "./ask.sh"]) == "sh ./ask.sh {}"
    assert command_namespace(["python3", "-c", "print(1)", "{}"]) == "python3 -c 'print(1)' {}"


def test_with_stdin_a_placeholder_is_a_literal_argument():
    piped = command_namespace(["tool", "--prompt", "{}"], stdin=True)
    assert piped == "tool --prompt '{}' < {}"
    assert piped != command_namespace(["tool", "--prompt", "{}"])
    assert piped != command_namespace(["tool", "--prompt", "{}", "<", "{}"])
    assert command_namespace(["tool"], stdin=True) == "tool < {}"
    assert command_argv(["tool", "--prompt", "{}"], "Q?", stdin=True) == ["tool", "--prompt", "{}"]


def test_command_argv():
    assert command_argv(["llm", "-m", "x"], "Q?", stdin=False) == ["llm", "-m", "x", "Q?"]
    assert command_argv(["tool", "--prompt", "{}", "-v"], "Q?", stdin=False) == [
        "tool",
        "--prompt",
        "Q?",
        "-v",
    ]
    assert command_argv(["ollama", "run", "m"], "Q?", stdin=True) == ["ollama", "run", "m"]


def test_api_key_namespace_hides_the_key():
    ns = api_key_namespace("sk-very-secret")
    assert ns.startswith("key:") and "secret" not in ns
    assert ns == api_key_namespace("sk-very-secret") != api_key_namespace("sk-other")
