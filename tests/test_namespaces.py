"""The namespace a command line gives, through the real `thrift ask` and `thrift import`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import thrift_executable


def make_project(root: Path, name: str) -> Path:
    """A project with its own `ask.sh` and `bin/fake`, which answer with the project's name
    and count their calls in `calls.txt`."""
    (root / name / "bin").mkdir(parents=True)
    for script in (root / name / "ask.sh", root / name / "bin" / "fake"):
        script.write_text(
            f'#!/bin/sh\necho "$*" >> {root / name / "calls.txt"}\nprintf "%s answers: %s" {name} "$*"\n'
        )
        script.chmod(0o755)
    return root / name


def calls(project: Path) -> list[str]:
    path = project / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def ask(cwd: Path, *args: str, input: bytes | None = None) -> tuple[int, bytes, dict]:
    proc = subprocess.run(
        [*thrift_executable(), "ask", "--json", *args],
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    err = proc.stderr.decode()
    assert "Traceback" not in err
    return proc.returncode, proc.stdout, json.loads(err.strip().splitlines()[-1])


def test_one_program_reached_by_two_paths_shares_answers(tmp_path):
    project = make_project(tmp_path, "alpha")
    code, first, report = ask(project, "What is RAG?", "--", "bin/fake", "-m", "x")
    assert code == 0 and first == b"alpha answers: -m x What is RAG?"
    real = os.path.realpath(project / "bin" / "fake")
    assert report["tier"] == "miss" and report["namespace"] == f"{real} -m x {{}}"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "fake-link").symlink_to(project / "bin" / "fake")
    for cwd, program in [
        (project, "./bin/fake"),
        (tmp_path / "elsewhere", str(project / "bin" / "fake")),
        (tmp_path / "elsewhere", "../alpha/bin/fake"),
        (tmp_path / "elsewhere", str(tmp_path / "fake-link")),
    ]:
        code, out, report = ask(cwd, "What is RAG?", "--", program, "-m", "x")
        assert (code, out, report["tier"]) == (0, first, "exact"), program
    assert calls(project) == ["-m x What is RAG?"]


def test_two_projects_scripts_of_one_name_do_not_share(tmp_path):
    alpha, beta = make_project(tmp_path, "alpha"), make_project(tmp_path, "beta")
    assert ask(alpha, "What is RAG?", "--", "./ask.sh")[1] == b"alpha answers: What is RAG?"
    code, out, report = ask(beta, "What is RAG?", "--", "./ask.sh")
    assert code == 0 and report["tier"] == "miss" and out == b"beta answers: What is RAG?"
    assert calls(alpha) == calls(beta) == ["What is RAG?"]


def test_a_bare_name_on_path_stays_a_name(tmp_path):
    project = make_project(tmp_path, "alpha")
    env_path = f"{project / 'bin'}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(
        [*thrift_executable(), "ask", "--json", "What is RAG?", "--", "fake"],
        env={**os.environ, "PATH": env_path},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.decode().strip().splitlines()[-1])["namespace"] == "fake {}"


def test_import_derives_the_same_namespace(tmp_path):
    project = make_project(tmp_path, "alpha")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question": "What is RAG?", "answer": "Imported."}) + "\n")
    imported = subprocess.run(
        [*thrift_executable(), "import", str(answers), "--", "./bin/fake"],
        cwd=project,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    code, out, report = ask(tmp_path, "What is RAG?", "--", str(project / "bin" / "fake"))
    assert (code, out, report["tier"]) == (0, b"Imported.", "exact")
    assert calls(project) == []


def test_stdin_passes_a_placeholder_untouched(tmp_path):
    script = tmp_path / "show.sh"
    script.write_text('#!/bin/sh\nprintf "args: %s; stdin: %s" "$*" "$(cat)"\n')
    script.chmod(0o755)
    code, out, report = ask(tmp_path, "--stdin", "What is RAG?", "--", str(script), "--prompt", "{}")
    assert code == 0 and out == b"args: --prompt {}; stdin: What is RAG?"
    assert report["namespace"] == f"{os.path.realpath(script)} --prompt '{{}}' < {{}}"
    # Not the call that puts the question in place of `{}`: another namespace.
    code, out, report = ask(tmp_path, "What is RAG?", "--", str(script), "--prompt", "{}", input=b"")
    assert code == 0 and report["tier"] == "miss" and out == b"args: --prompt What is RAG?; stdin: "
