"""`thrift config` and the config file, through the real command and the real file:
get/set/unset/list/path, precedence (flag > environment > file > default), the file's
mode and atomicity, and what a bad file does to every command."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import thrift_executable
from test_cli_errors import assert_one_line
from test_cli_help import _complete

from thrift_cli import config
from thrift_cli.config import SETTINGS
from thrift_cli.config_file import default_text, edited

# A valid value for each setting, as typed, and as `get` prints it back.
VALUES = {
    "min_similarity": (".9", "0.9"),
    "ttl": ("2h", "2h"),
    "timeout": ("90s", "90s"),
    "hnsw_min_entries": ("00500", "500"),
    "redis_url": ("redis://user:hunter2@127.0.0.1:6379/0", "redis://user:hunter2@127.0.0.1:6379/0"),
    "database_url": (
        "postgresql://thrift:pw@127.0.0.1:5432/team",
        "postgresql://thrift:pw@127.0.0.1:5432/team",
    ),
    "supabase_url": ("https://abcd.supabase.co", "https://abcd.supabase.co"),
    "supabase_key": ("eyJhbGciOi.anon.key", "eyJhbGciOi.anon.key"),
    "remote_lookup": ("yes", "yes"),
    "push_on_store": ("on", "on"),
    "remote_timeout": ("250ms", "250ms"),
    "price_per_1k": ("0.00060", "0.0006"),
    "redis_ttl": ("7d", "7d"),
    "redis_connect_timeout": ("20ms", "20ms"),
    "redis_timeout": ("1.5", "1.5"),
    "tenant": ("team-a.prod", "team-a.prod"),
    "scrub": ("true", "true"),
    "verify": ("false", "false"),
    "scrub_entities": ("EMAIL_ADDRESS,PERSON", "EMAIL_ADDRESS,PERSON"),
    "scrub_placeholder": ("[{type}]", "[{type}]"),
    "scrub_min_score": ("0.70", "0.7"),
    "api_key": ("k\"ey\\with é and # and '", "k\"ey\\with é and # and '"),
}
QUESTION, PARAPHRASE = "How do I learn to code quickly?", "How can I learn to code fast?"


@pytest.fixture
def no_scrub_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest sets THRIFT_SCRUB for every test; `config set scrub` would note it overrides."""
    monkeypatch.delenv("THRIFT_SCRUB", raising=False)


def test_every_setting_has_a_test_value():
    assert set(VALUES) == set(SETTINGS)


def config_file(home):
    return home / "config.toml"


def write_config(home, text: str) -> None:
    """A config file as a careful user keeps it: mode 0600."""
    home.mkdir(exist_ok=True)
    config_file(home).write_text(text)
    os.chmod(config_file(home), 0o600)


def lines_of(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def no_temporary_files(home) -> None:
    assert sorted(p.name for p in home.iterdir()) == ["config.toml"]


# -- path, get, set, unset -------------------------------------------------------------


def test_path_prints_the_file_even_when_it_does_not_exist(thrift, isolated_env):
    ran = thrift("config", "path")
    assert ran.code == 0 and ran.stderr == ""
    assert ran.stdout.decode() == f"{isolated_env / 'config.toml'}\n"
    assert not isolated_env.exists()  # and creates nothing


@pytest.mark.usefixtures("no_scrub_variable")
@pytest.mark.parametrize("key", list(VALUES))
def test_set_then_get_round_trips_through_the_real_file(thrift, isolated_env, key):
    typed, printed = VALUES[key]
    ran = thrift("config", "set", key, typed)
    assert ran.code == 0 and ran.stderr == "" and ran.stdout == b"", ran.stderr
    got = thrift("config", "get", key)
    assert got.code == 0 and got.stdout.decode("utf-8") == printed + "\n", got.stderr
    spec = SETTINGS[key]
    # The file, read as thrift ask reads it, holds the value that was checked.
    assert config.parse_file(config_file(isolated_env)) == {key: spec.check(typed, key)}
    (line,) = lines_of(config_file(isolated_env))
    if spec.number:
        assert line == f"{key} = {printed}"  # a TOML number, not a string
    else:
        assert line.startswith(f'{key} = "')


def test_get_does_not_mask_a_secret(thrift):
    assert thrift("config", "set", "api_key", "sk-live-1234567890").code == 0
    assert thrift("config", "get", "api_key").stdout == b"sk-live-1234567890\n"


@pytest.mark.usefixtures("no_scrub_variable")
@pytest.mark.parametrize("key", [k for k, s in SETTINGS.items() if s.default is not None])
def test_get_prints_a_default_that_set_accepts_back(thrift, isolated_env, key):
    got = thrift("config", "get", key)
    assert got.code == 0, got.stderr
    text = got.stdout.decode().strip()
    assert SETTINGS[key].check(text, key) == pytest.approx(SETTINGS[key].default)
    assert thrift("config", "set", key, text).code == 0
    assert config.parse_file(config_file(isolated_env))[key] == pytest.approx(SETTINGS[key].default)


@pytest.mark.parametrize("key", [k for k, s in SETTINGS.items() if s.default is None])
def test_get_of_a_setting_without_a_value_prints_nothing_and_exits_1(thrift, isolated_env, key):
    ran = thrift("config", "get", key)
    assert (ran.code, ran.stdout, ran.stderr) == (1, b"", "")
    assert not isolated_env.exists()


def test_unset_removes_the_line_and_nothing_else(thrift, isolated_env):
    write_config(isolated_env, '# mine\nttl = "2h"\nmin_similarity = 0.9\n')
    ran = thrift("config", "unset", "ttl")
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    assert lines_of(config_file(isolated_env)) == ["# mine", "min_similarity = 0.9"]
    assert thrift("config", "get", "ttl").code == 1
    # Unsetting what is not there is no error, and does not touch the file.
    before = config_file(isolated_env).stat().st_mtime_ns
    time.sleep(0.01)
    again = thrift("config", "unset", "ttl")
    assert again.code == 0 and again.stderr == ""
    assert config_file(isolated_env).stat().st_mtime_ns == before


def test_unset_without_a_file_creates_nothing(thrift, isolated_env):
    ran = thrift("config", "unset", "ttl")
    assert ran.code == 0 and ran.stderr == ""
    assert not isolated_env.exists()


def test_set_keeps_comments_and_every_other_line(thrift, isolated_env):
    isolated_env.mkdir()
    original = (
        '# thrift settings\n\nttl = "1h"    # an hour, for now\n# the threshold:\nmin_similarity = 0.8\n'
    )
    config_file(isolated_env).write_text(original)
    assert thrift("config", "set", "ttl", "7d").code == 0
    assert thrift("config", "set", "tenant", "team").code == 0
    assert config_file(isolated_env).read_text() == (
        "# thrift settings\n"
        "\n"
        'ttl = "7d"    # an hour, for now\n'
        "# the threshold:\n"
        "min_similarity = 0.8\n"
        'tenant = "team"\n'
    )


def test_a_value_beginning_with_a_dash_goes_after_double_dash(thrift, isolated_env):
    ran = thrift("config", "set", "api_key", "--", "-starts-with-a-dash")
    assert ran.code == 0, ran.stderr
    assert config.parse_file(config_file(isolated_env)) == {"api_key": "-starts-with-a-dash"}
    two = thrift("config", "set", "api_key", "one", "--", "two")
    assert_one_line(two, 2, "one value")


def test_set_reads_a_secret_from_stdin(thrift, isolated_env):
    ran = thrift("config", "set", "api_key", "--stdin", input=b"sk-from-stdin\n")
    assert ran.code == 0, ran.stderr
    assert config.parse_file(config_file(isolated_env)) == {"api_key": "sk-from-stdin"}
    both = thrift("config", "set", "api_key", "x", "--stdin", input=b"y\n")
    assert_one_line(both, 2, "--stdin")


# -- refusals: one line, exit 2, the file unchanged -------------------------------------


@pytest.mark.parametrize("command", [["get", "colour"], ["set", "colour", "blue"], ["unset", "colour"]])
def test_an_unknown_key_names_it_and_the_known_ones(thrift, isolated_env, command):
    write_config(isolated_env, 'ttl = "2h"\n')
    ran = thrift("config", *command)
    assert_one_line(ran, 2, "unknown setting 'colour'", ", ".join(SETTINGS))
    assert config_file(isolated_env).read_text() == 'ttl = "2h"\n'
    no_temporary_files(isolated_env)


def test_a_variable_name_for_a_key_gets_a_suggestion(thrift):
    assert_one_line(thrift("config", "get", "THRIFT_TTL"), 2, "did you mean ttl?")
    assert_one_line(thrift("config", "set", "min-similarity", "0.9"), 2, "did you mean min_similarity?")


BAD = [
    ("ttl", "bogus"),
    ("ttl", "2h\n"),
    ("timeout", "0"),
    ("min_similarity", "1.5"),
    ("min_similarity", "nan"),
    ("hnsw_min_entries", "1.5"),
    ("price_per_1k", "cheap"),
    ("price_per_1k", "inf"),
    ("hnsw_min_entries", "9" * 19),
    ("redis_url", "http://127.0.0.1:6379"),
    ("database_url", "mysql://127.0.0.1/db"),
    ("supabase_url", "abcd.supabase.co"),
    ("supabase_key", ""),
    ("remote_lookup", "maybe"),
    ("push_on_store", "sometimes"),
    ("remote_timeout", "0ms"),
    ("tenant", "team:a"),
    ("api_key", "  "),
    ("api_key", os.fsdecode(b"\xff\xfe")),  # argv bytes that are not UTF-8
]


@pytest.mark.parametrize("key,value", BAD, ids=[f"{k}={v!r}" for k, v in BAD])
def test_a_bad_value_is_refused_and_nothing_is_written(thrift, isolated_env, key, value):
    write_config(isolated_env, '# keep me\ntenant = "x"\n')
    ran = thrift("config", "set", key, value)
    assert_one_line(ran, 2, str(config_file(isolated_env)), "not changed", key)
    assert config_file(isolated_env).read_text() == '# keep me\ntenant = "x"\n'
    no_temporary_files(isolated_env)


def test_a_bad_value_for_a_missing_file_creates_nothing(thrift, isolated_env):
    assert_one_line(thrift("config", "set", "ttl", "bogus"), 2, "ttl", "'bogus'")
    assert not isolated_env.exists()


# -- the file's mode and atomicity ----------------------------------------------------------


def test_set_creates_home_0700_and_the_file_0600(thrift, isolated_env):
    assert not isolated_env.exists()
    assert thrift("config", "set", "api_key", "sk-secret-value").code == 0
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700
    assert stat.S_IMODE(config_file(isolated_env).stat().st_mode) == 0o600
    no_temporary_files(isolated_env)


def test_set_tightens_a_file_others_can_read_and_says_so(thrift, isolated_env):
    write_config(isolated_env, 'ttl = "2h"\n')
    os.chmod(config_file(isolated_env), 0o644)
    ran = thrift("config", "set", "redis_url", "redis://:pw@127.0.0.1:6379/0")
    assert ran.code == 0
    assert "0644" in ran.stderr and "0600" in ran.stderr and len(ran.stderr.splitlines()) == 1
    assert stat.S_IMODE(config_file(isolated_env).stat().st_mode) == 0o600


def test_a_symlinked_file_stays_a_link(thrift, isolated_env, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "thrift.toml").write_text('ttl = "2h"\n')
    isolated_env.mkdir()
    config_file(isolated_env).symlink_to(dotfiles / "thrift.toml")
    assert thrift("config", "set", "ttl", "3h").code == 0
    assert config_file(isolated_env).is_symlink()
    assert (dotfiles / "thrift.toml").read_text() == 'ttl = "3h"\n'
    assert sorted(p.name for p in dotfiles.iterdir()) == ["thrift.toml"]


def test_concurrent_sets_lose_nothing_and_the_file_always_parses(isolated_env):
    """One process per setting, plus several racing on one key, while this process keeps
    reading the file: every read parses, and every setting ends up there, once."""
    racing = ["0.5", "0.6", "0.7", "0.8", "0.95"]
    jobs = [(key, typed) for key, (typed, _) in VALUES.items() if key != "min_similarity"]
    jobs += [("min_similarity", value) for value in racing]
    procs = [
        subprocess.Popen([*thrift_executable(), "config", "set", key, value], stderr=subprocess.PIPE)
        for key, value in jobs
    ]
    reads, seen = 0, 0
    while any(p.poll() is None for p in procs):
        try:
            keys = config.parse_file(config_file(isolated_env))  # raises if it is half-written
        except config.ThriftError as exc:
            if "No such file" not in str(exc):  # not yet created
                raise
            continue
        # Sets only add keys: a read that shows fewer than the last was a file caught
        # between truncation and writing (an empty or partial file parses, too).
        assert len(keys) >= seen, keys
        reads, seen = reads + 1, len(keys)
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read() if p.stderr else ""
        if p.stderr:
            p.stderr.close()
    values = config.parse_file(config_file(isolated_env))
    assert set(values) == set(SETTINGS)
    for key, (typed, _) in VALUES.items():
        if key != "min_similarity":
            assert values[key] == SETTINGS[key].check(typed, key)
    assert values["min_similarity"] in [float(v) for v in racing]
    keys = [line.split(" = ")[0] for line in lines_of(config_file(isolated_env))]
    assert sorted(keys) == sorted(SETTINGS)  # one line per key
    no_temporary_files(isolated_env)
    assert reads > 0


# -- a broken file: every command refuses it, set and unset repair it ------------------------

BROKEN = [
    ('colour = "blue"\n', "colour"),
    ('ttl = "bogus"\n', "ttl"),
    ("ttl = 2h\n", "ttl"),  # not TOML: a bare word
    ("min_similarity = true\n", "min_similarity"),  # a boolean for a number
    ("hnsw_min_entries = 1.5\n", "hnsw_min_entries"),
    ('tenant = "ok"\ntenant = "twice"\n', "tenant"),  # not TOML: a key given twice
    ("[redis]\nurl = 'redis://x'\n", "redis"),
]


@pytest.mark.parametrize("text,key", BROKEN, ids=[k for _, k in BROKEN])
def test_a_bad_file_stops_ask_with_one_line_naming_the_file_and_key(
    thrift, fake_llm, isolated_env, text, key
):
    write_config(isolated_env, text)
    ran = thrift("ask", "What is semantic caching?", "--", *fake_llm.command())
    assert_one_line(ran, 2, str(config_file(isolated_env)), key)
    assert fake_llm.calls == []
    for command in (["config", "get", "tenant"], ["config", "list"], ["config", "list", "--json"]):
        assert_one_line(thrift(*command), 2, str(config_file(isolated_env)), key)


def test_an_option_does_not_rescue_a_bad_file(thrift, fake_llm, isolated_env):
    """Unlike a bad THRIFT_TTL, which --ttl replaces (test_cli_settings), the file is
    checked as a whole: a bad line in it is a mistake to fix, whatever the command line."""
    write_config(isolated_env, 'ttl = "bogus"\n')
    ran = thrift("ask", "--ttl", "1h", "Q?", "--", *fake_llm.command())
    assert_one_line(ran, 2, str(config_file(isolated_env)), "ttl", "'bogus'")
    assert fake_llm.calls == []


def test_set_and_unset_repair_a_broken_file_with_a_warning(thrift, fake_llm, isolated_env):
    write_config(isolated_env, '# mine\nttl = 2h\ncolour = "blue"\n')
    ask = ["ask", "Q?", "--", *fake_llm.command()]
    fixed = thrift("config", "set", "ttl", "2h")  # the bad line replaced; colour still wrong
    assert fixed.code == 0 and fixed.stdout == b""
    (warning,) = fixed.stderr.splitlines()
    assert (
        warning.startswith("thrift: warning: ")
        and "'colour'" in warning
        and str(config_file(isolated_env)) in warning
    )
    assert_one_line(thrift(*ask), 2, "colour")
    removed = thrift("config", "unset", "colour")  # a key thrift does not know, but the file has
    assert removed.code == 0 and removed.stderr == "", removed.stderr
    assert lines_of(config_file(isolated_env)) == ["# mine", 'ttl = "2h"']
    assert thrift(*ask).code == 0 and len(fake_llm.calls) == 1


def test_set_on_a_file_that_is_not_toml_writes_and_warns(thrift, isolated_env):
    write_config(isolated_env, 'tenant = "x"\nthis is not toml\n')
    ran = thrift("config", "set", "ttl", "2h")
    assert ran.code == 0
    assert "warning" in ran.stderr and "not valid TOML" in ran.stderr and len(ran.stderr.splitlines()) == 1
    assert lines_of(config_file(isolated_env)) == ['tenant = "x"', "this is not toml", 'ttl = "2h"']


# -- list, and precedence ---------------------------------------------------------------------


def _rows(stdout: bytes) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()[1:] for line in stdout.decode().splitlines() if not line.startswith(" ")
    }


def test_list_shows_every_setting_its_source_and_masks_secrets(thrift, isolated_env):
    path = str(config_file(isolated_env))
    assert thrift("config", "set", "redis_url", "redis://user:p@ss@db.example:6379/0").code == 0
    assert thrift("config", "set", "api_key", "sk-live-abcdef123456").code == 0
    assert thrift("config", "set", "min_similarity", "0.9").code == 0
    env = {"THRIFT_TTL": "5m"}
    ran = thrift("config", "list", env=env)
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    rows = _rows(ran.stdout)
    assert list(rows) == list(SETTINGS)
    assert rows["min_similarity"] == ["0.9", path]
    assert rows["ttl"] == ["5m", "THRIFT_TTL"]
    assert rows["timeout"] == ["(unset)", "default"]
    assert rows["hnsw_min_entries"] == ["20000", "default"]
    assert rows["redis_ttl"] == ["30d", "default"]
    assert rows["redis_url"] == ["redis://user:****@db.example:6379/0", path]
    assert rows["api_key"] == ["****3456", path]
    assert b"p@ss" not in ran.stdout and b"ss@" not in ran.stdout and b"sk-live" not in ran.stdout

    as_json = thrift("config", "list", "--json", env=env)
    assert as_json.code == 0
    (line,) = as_json.stdout.decode().splitlines()
    data = json.loads(line)
    assert list(data) == list(SETTINGS)
    assert data["ttl"] == {"value": "5m", "source": "THRIFT_TTL"}
    assert data["timeout"] == {"value": None, "source": "default"}
    assert data["api_key"] == {"value": "****3456", "source": path}
    assert "p@ss" not in line and "sk-live" not in line

    long = thrift("config", "list", "--long", env=env).stdout.decode()
    for spec in SETTINGS.values():
        assert spec.help in long and (spec.variable or "") in long


def test_the_environment_beats_the_file_and_an_empty_variable_is_unset(thrift, isolated_env):
    path = str(config_file(isolated_env))
    assert thrift("config", "set", "ttl", "2h").code == 0
    assert thrift("config", "get", "ttl", env={"THRIFT_TTL": "5m"}).stdout == b"5m\n"
    assert _rows(thrift("config", "list", env={"THRIFT_TTL": "5m"}).stdout)["ttl"] == ["5m", "THRIFT_TTL"]
    assert thrift("config", "get", "ttl", env={"THRIFT_TTL": ""}).stdout == b"2h\n"
    assert _rows(thrift("config", "list", env={"THRIFT_TTL": ""}).stdout)["ttl"] == ["2h", path]
    # A bad variable is reported by name, as by every command.
    assert_one_line(thrift("config", "get", "ttl", env={"THRIFT_TTL": "bogus"}), 2, "THRIFT_TTL", "'bogus'")
    # set says when the value it writes is overridden.
    note = thrift("config", "set", "ttl", "3h", env={"THRIFT_TTL": "5m"})
    assert note.code == 0 and "THRIFT_TTL" in note.stderr and "overrides" in note.stderr


def test_ask_reads_the_file_under_the_variable_under_the_flag(thrift, fake_llm):
    """min_similarity 1 in the file makes a paraphrase miss; THRIFT_MIN_SIMILARITY=0.5 beats
    it (a hit); --min-similarity 1 beats that (a miss again); an empty variable is unset."""
    first = thrift("ask", QUESTION, "--", *fake_llm.command())
    assert first.code == 0, first.stderr

    def lookup(*flags: str, env: dict | None = None) -> str:
        ran = thrift("ask", "--lookup-only", "--json", *flags, PARAPHRASE, "--", *fake_llm.command(), env=env)
        assert ran.code in (0, 3), ran.stderr
        return ran.report["tier"]

    assert lookup() == "semantic"  # the default, 0.85
    assert thrift("config", "set", "min_similarity", "1").code == 0
    assert lookup() == "miss"
    assert lookup(env={"THRIFT_MIN_SIMILARITY": ""}) == "miss"
    assert lookup(env={"THRIFT_MIN_SIMILARITY": "0.5"}) == "semantic"
    assert lookup("--min-similarity", "1", env={"THRIFT_MIN_SIMILARITY": "0.5"}) == "miss"
    assert len(fake_llm.calls) == 1


def test_ask_takes_its_ttl_from_the_file(thrift, fake_llm, isolated_env):
    assert thrift("config", "set", "ttl", "1s").code == 0
    assert thrift("ask", QUESTION, "--", *fake_llm.command()).code == 0
    time.sleep(1.2)
    again = thrift("ask", "--json", QUESTION, "--", *fake_llm.command())
    assert again.code == 0 and again.report["tier"] == "miss", again.stderr
    assert len(fake_llm.calls) == 2


# -- the line editor, case by case -----------------------------------------------------------


@pytest.mark.parametrize(
    "before,after",
    [
        ("", 'ttl = "2h"\n'),
        ('tenant = "x"', 'tenant = "x"\nttl = "2h"\n'),  # no newline at the end
        ('ttl = "1h"\nttl = "3h"\n', 'ttl = "2h"\n'),  # a duplicate is dropped
        ("  ttl= 5 # five\n", 'ttl = "2h" # five\n'),
        ('"ttl" = "1h"\n', 'ttl = "2h"\n'),  # a quoted key is the same key
        ('ttl = """one\ntwo"""\ntenant = "x"\n', 'ttl = "2h"\ntenant = "x"\n'),  # multi-line value
        ('tenant = "x"\r\nttl = "1h" # c\r\n', 'tenant = "x"\r\nttl = "2h" # c\r\n'),  # CRLF kept
        ('tenant = "x"\n[table]\nttl = 1\n', 'tenant = "x"\nttl = "2h"\n[table]\nttl = 1\n'),
        ("ttl_extra = 1\nttl.x = 1\n", 'ttl_extra = 1\nttl.x = 1\nttl = "2h"\n'),
    ],
)
def test_edited_replaces_only_the_key(before, after):
    assert edited(before, "ttl", 'ttl = "2h"')[0] == after


def test_edited_removes_every_line_of_the_key():
    text, found = edited('# a\nttl = """x\ny"""\nttl = 1\ntenant = "t"\n', "ttl", None)
    assert (text, found) == ('# a\ntenant = "t"\n', True)
    assert edited('tenant = "t"\n', "ttl", None) == ('tenant = "t"\n', False)


# -- help and completion ---------------------------------------------------------------------


def test_config_help_lists_every_setting_and_its_variable(thrift, isolated_env):
    ran = thrift("config", "--help", env={"COLUMNS": "200"})
    assert ran.code == 0, ran.stderr
    text = ran.stdout.decode()
    for key, spec in SETTINGS.items():
        line = next(line for line in text.splitlines() if line.split()[:1] == [key])
        assert spec.variable in line
    assert f"now {config_file(isolated_env)}" in text  # where the file is
    assert not isolated_env.exists()


@pytest.mark.parametrize("command", ["get", "set", "unset", "list", "path"])
def test_every_config_command_has_help(thrift, command):
    short, long = thrift("config", command, "-h"), thrift("config", command, "--help")
    assert short.code == long.code == 0, short.stderr
    assert f"Usage: thrift config {command}".encode() in short.stdout and short.stdout == long.stdout
    assert b"Example: " in short.stdout and b"config.toml" in short.stdout


def test_get_help_documents_exit_1_for_an_unset_setting(thrift):
    text = " ".join(thrift("config", "get", "--help").stdout.decode().split())
    assert "prints nothing and exits 1" in text


def test_the_readme_table_matches_the_settings():
    """The table in README.md was pasted from SETTINGS: it must not drift from it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = [
        line.split(" | ")
        for line in readme.splitlines()
        if re.match(r"\| `[a-z0-9_]+` \| `[A-Z0-9_]+`", line)
    ]
    table = {row[0].strip("| `"): (tuple(v.strip("` ") for v in row[1].split(",")), row[2]) for row in rows}
    assert table == {key: (s.variables, default_text(s) or "unset") for key, s in SETTINGS.items()}


def test_keys_complete():
    assert _complete("thrift config get t", 3) == ["ttl", "timeout", "tenant"]
    assert _complete("thrift con", 1) == ["config"]
