"""Every environment variable thrift reads and every option that takes a value, given a bad
value, on every command that reads it: one `thrift:` line naming the setting, exit 2, the
command never run, no traceback. (NUL cannot be passed: argv and the environment are C
strings, so the OS refuses it before thrift starts.)"""

from __future__ import annotations

import json

import pytest
from test_cli_errors import assert_one_line

HUGE = "1" + "0" * 400  # a float, and infinite
NUMBERS = ["abc", "-0.5", "0", "nan", "inf", "1e400", HUGE, "1.5", "0.9\n"]
DURATIONS = ["abc", "-5", "0", "nan", "inf", "1e400", HUGE, "5x", "2h\n", "2\th"]
COUNTS = ["abc", "-5", "0", "nan", "inf", "1e400", HUGE, "1.5", "1e3", "5\n", "9" * 19]
NAMESPACES = [" ", "a\nb", "a\tb"]

# (setting, bad values, the commands that read it); an option's empty value is bad too,
# an empty variable is unset (test_empty_variables_are_unset).
OPTIONS = [
    ("--min-similarity", ["", *NUMBERS], ["ask"]),
    ("-s", ["", *NUMBERS], ["ask"]),
    ("--ttl", ["", *DURATIONS], ["ask", "import"]),
    ("--timeout", ["", *DURATIONS], ["ask"]),
    ("--namespace", ["", *NAMESPACES], ["ask", "import", "index"]),
    ("-n", ["", *NAMESPACES], ["ask", "import", "index"]),
]
VARIABLES = [
    ("THRIFT_MIN_SIMILARITY", NUMBERS, ["ask"]),
    ("THRIFT_TTL", DURATIONS, ["ask", "import"]),
    ("THRIFT_NAMESPACE", NAMESPACES, ["ask", "import"]),
    ("THRIFT_HNSW_MIN_ENTRIES", COUNTS, ["ask", "import", "index", "helper"]),
    ("THRIFT_SQLITE", ["abc", "sqlite4", "pysqlite3\n"], ["ask", "import", "index", "helper"]),
    ("THRIFT_HOME", ["a\nb"], ["ask", "import", "index", "helper"]),
]


def _cases():
    for option, values, commands in OPTIONS:
        for command in commands:
            for value in values:
                yield pytest.param(command, option, value, id=f"{command} {option} {value!r}")
    for variable, values, commands in VARIABLES:
        for command in commands:
            for value in values:
                yield pytest.param(command, variable, value, id=f"{command} {variable}={value!r}")


def command_line(command: str, qa_file, fake_llm, extra: list[str]) -> list[str]:
    if command == "ask":
        return ["ask", *extra, "What is semantic caching?", "--", *fake_llm.command()]
    if command == "import":
        return ["import", *extra, str(qa_file), "--", *fake_llm.command()]
    return [command, *extra]


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "What is semantic caching?", "answer": "Caching."}) + "\n")
    return path


@pytest.mark.parametrize("command,setting,value", list(_cases()))
def test_a_bad_value_is_one_line_naming_the_setting(thrift, fake_llm, qa_file, command, setting, value):
    if setting.startswith("-"):
        ran = thrift(*command_line(command, qa_file, fake_llm, [setting, value]), timeout=60)
    else:
        ran = thrift(*command_line(command, qa_file, fake_llm, []), env={setting: value}, timeout=60)
    # -s is reported under its long name.
    assert_one_line(ran, 2, {"-s": "--min-similarity", "-n": "--namespace"}.get(setting, setting))
    assert fake_llm.calls == []


def test_a_bad_variable_is_refused_on_an_exact_hit_too(thrift, fake_llm):
    """Checked at the start, not only on the path that reads it (a miss, a big namespace)."""
    ask = ["ask", "What is semantic caching?", "--", *fake_llm.command()]
    assert thrift(*ask).code == 0
    ran = thrift(*ask, env={"THRIFT_HNSW_MIN_ENTRIES": "abc"})
    assert_one_line(ran, 2, "THRIFT_HNSW_MIN_ENTRIES", "'abc'")


def test_a_variable_is_named_not_the_option(thrift, fake_llm):
    ran = thrift("ask", "Q?", "--", *fake_llm.command(), env={"THRIFT_TTL": "bogus"})
    assert_one_line(ran, 2, "THRIFT_TTL", "'bogus'")
    assert "--ttl" not in ran.stderr


def test_an_option_wins_over_a_bad_variable_it_replaces(thrift, fake_llm):
    ran = thrift("ask", "--ttl", "1h", "Q?", "--", *fake_llm.command(), env={"THRIFT_TTL": "bogus"})
    assert ran.code == 0, ran.stderr


def test_empty_variables_are_unset(thrift, fake_llm):
    empty = {
        name: ""
        for name in ("THRIFT_NAMESPACE", "THRIFT_MIN_SIMILARITY", "THRIFT_TTL")
        + ("THRIFT_HNSW_MIN_ENTRIES", "THRIFT_SQLITE")
    }
    first = thrift("ask", "--json", "How do I learn to code quickly?", "--", *fake_llm.command(), env=empty)
    assert first.code == 0, first.stderr
    assert first.report["namespace"] != ""  # the command line's, as when unset
    again = thrift("ask", "--json", "How can I learn to code fast?", "--", *fake_llm.command(), env=empty)
    assert again.code == 0 and again.report["tier"] == "semantic", again.stderr
    assert len(fake_llm.calls) == 1


def test_an_empty_home_variable_is_unset(thrift, fake_llm, tmp_path):
    env = {"THRIFT_HOME": "", "HOME": str(tmp_path / "user"), "XDG_DATA_HOME": ""}
    assert thrift("ask", "Q?", "--", *fake_llm.command(), env=env).code == 0
    assert (tmp_path / "user" / ".local" / "share" / "thrift" / "cache.db").is_file()


def test_large_finite_values_are_valid(thrift, fake_llm):
    ran = thrift(
        "ask", "--json", "--ttl", "1" + "0" * 300, "Q?", "--", *fake_llm.command(),
        env={"THRIFT_HNSW_MIN_ENTRIES": "9" * 18, "THRIFT_MIN_SIMILARITY": "1"},
    )  # fmt: skip
    assert ran.code == 0 and ran.report["stored"], ran.stderr


@pytest.mark.parametrize("given", [["-n", ""], ["--namespace", ""], ["--namespace="]], ids=" ".join)
def test_an_empty_namespace_option_is_refused(thrift, fake_llm, qa_file, given):
    """It used to fall back to the command line's namespace without a word."""
    ask = thrift("ask", *given, "Q?", "--", *fake_llm.command())
    assert_one_line(ask, 2, "--namespace", "empty")
    lookup = thrift("ask", *given, "--lookup-only", "Q?", "--", *fake_llm.command())
    assert_one_line(lookup, 2, "--namespace", "empty")
    imported = thrift("import", *given, str(qa_file), "--", *fake_llm.command())
    assert_one_line(imported, 2, "--namespace", "empty")
    assert fake_llm.calls == []


# -- messages that say what is wrong and what to do -----------------------------------


def test_a_home_that_is_a_file_says_not_a_directory(thrift, fake_llm, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    ran = thrift("ask", "Q?", "--", *fake_llm.command(), env={"THRIFT_HOME": str(blocker)})
    assert_one_line(ran, 1, f"THRIFT_HOME={blocker} is not a directory")
    assert "File exists" not in ran.stderr
    under = thrift("index", env={"THRIFT_HOME": str(blocker / "x" / "home")})
    assert_one_line(under, 1, "THRIFT_HOME=", f"cannot be created: {blocker} is not a directory")
    assert blocker.read_text() == "not a directory" and fake_llm.calls == []


def test_a_default_home_that_is_a_file_says_so(thrift, fake_llm, tmp_path):
    user = tmp_path / "user"
    (user / ".local" / "share").mkdir(parents=True)
    (user / ".local" / "share" / "thrift").write_text("in the way")
    env = {"THRIFT_HOME": "", "HOME": str(user), "XDG_DATA_HOME": ""}
    ran = thrift("ask", "Q?", "--", *fake_llm.command(), env=env)
    assert_one_line(ran, 1, "thrift's data directory", "is not a directory")


def test_a_home_on_a_missing_parent_is_created(thrift, fake_llm, tmp_path):
    home = tmp_path / "not" / "yet" / "there"
    assert thrift("ask", "Q?", "--", *fake_llm.command(), env={"THRIFT_HOME": str(home)}).code == 0
    assert (home / "cache.db").is_file()


def test_a_corrupt_cache_says_how_to_start_again(thrift, fake_llm, isolated_env):
    isolated_env.mkdir()
    db = isolated_env / "cache.db"
    db.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    ran = thrift("ask", "Q?", "--", *fake_llm.command())
    assert_one_line(ran, 1, "corrupt", f"move it aside: mv {db} {db}.bad")
    # Doing what it says gives a new, working, empty cache.
    db.rename(f"{db}.bad")
    assert thrift("ask", "Q?", "--", *fake_llm.command()).code == 0 and len(fake_llm.calls) == 1


def test_a_damaged_cache_names_its_log_files_too(thrift, fake_llm, isolated_env):
    assert thrift("ask", "Q?", "--", *fake_llm.command()).code == 0
    db = isolated_env / "cache.db"
    (isolated_env / "cache.db-wal").write_bytes(b"")  # as a killed writer leaves it
    data = bytearray(db.read_bytes())
    data[:100] = b"\xa5" * 100  # the header itself
    db.write_bytes(bytes(data))
    ran = thrift("ask", "Q?", "--", *fake_llm.command())
    assert_one_line(ran, 1, "move it aside", "cache.db-wal")
