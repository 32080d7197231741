"""Help and shell completion, through the real command."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import thrift_executable

COMMANDS = [[], ["ask"], ["import"], ["index"], ["helper"], ["doctor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "thrift")
def test_h_is_help_on_every_command(thrift, command):
    short, long = thrift(*command, "-h"), thrift(*command, "--help")
    assert short.code == long.code == 0, short.stderr
    assert b"Usage: thrift" in short.stdout and short.stdout == long.stdout


def test_ask_help_lists_every_exit_code(thrift):
    text = " ".join(thrift("ask", "--help").stdout.decode().split())  # rich wraps lines
    for code in ("0 answered", "the command's own code", "1 thrift's own error", "2 bad usage"):
        assert code in text
    for code in ("3 a miss under --lookup-only", "124 timed out", "126 command not executable"):
        assert code in text
    assert "127 command not found" in text and "130 interrupted" in text


@pytest.mark.parametrize("command", [[], ["ask"]], ids=lambda c: " ".join(c) or "thrift")
def test_help_says_where_the_cache_lives(thrift, tmp_path, command):
    user = tmp_path / "user"
    env = {"HOME": str(user), "XDG_DATA_HOME": "", "COLUMNS": "300"}
    default = str(user / ".local" / "share" / "thrift")
    unset = thrift(*command, "--help", env={**env, "THRIFT_HOME": ""}).stdout.decode()
    assert "THRIFT_HOME" in unset and f"by default {default} on this machine" in unset
    chosen = tmp_path / "elsewhere"
    with_home = thrift(*command, "--help", env={**env, "THRIFT_HOME": str(chosen)}).stdout.decode()
    assert f"now {chosen}" in with_home and f"by default {default}" in with_home
    assert not (user / ".local").exists()  # help creates nothing


def _complete(words: str, cword: int) -> list[str]:
    """click's bash protocol, as the script from --show-completion runs it."""
    env = {**os.environ, "_THRIFT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = subprocess.run(thrift_executable(), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_script_and_protocol(thrift):
    script = thrift("--show-completion", "bash")
    assert script.code == 0, script.stderr
    assert b"_THRIFT_COMPLETE=complete_bash" in script.stdout
    assert _complete("thrift as", 1) == ["ask"]
    assert _complete("thrift i", 1) == ["index", "import"]
    assert "--lookup-only" in _complete("thrift ask --lo", 2)


def test_the_generated_bash_script_completes(thrift, tmp_path):
    """The script itself, sourced by a real bash, fills COMPREPLY."""
    script = tmp_path / "thrift-completion.bash"
    script.write_bytes(thrift("--show-completion", "bash").stdout)
    bin_dir = os.path.dirname(thrift_executable()[0])
    complete = 'COMP_WORDS=(thrift as); COMP_CWORD=1; _thrift_completion thrift; echo "${COMPREPLY[@]}"'
    shell = f"source {script}; {complete}"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["ask"], out.stderr


def test_install_completion_writes_the_shell_file(thrift, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    ran = thrift("--install-completion", "bash", env={"HOME": str(user), "SHELL": "/bin/bash"})
    assert ran.code == 0, ran.stderr
    installed = user / ".bash_completions" / "thrift.sh"
    assert "_THRIFT_COMPLETE=complete_bash" in installed.read_text()
    assert str(installed) in (user / ".bashrc").read_text()
