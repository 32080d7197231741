"""A wheel built from the repo (not the editable install) works from another directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from test_cli_ask import answer

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_answers_from_elsewhere(tmp_path, fake_llm):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("thrift_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "thrift_cli/_sql/sqlite/0001_initial.sql" in names
    assert "thrift_cli/_sql/postgres/0001_initial.sql" in names  # the remote schema, for thrift remote init
    assert "thrift_sync/engine.py" in names  # sync/thrift_sync installs as the package thrift_sync
    # The verifier's weights ship with the package, byte for byte (their checksum is checked at load).
    shipped = zipfile.ZipFile(wheel).read("thrift_cli/verifier/weights.safetensors")
    assert shipped == (REPO / "thrift_cli" / "verifier" / "weights.safetensors").read_bytes()
    assert "thrift_cli/verifier/card.json" in names
    assert not any(n.startswith(("tests/", "sync/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    assert "thrift = thrift_cli.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()

    # A fresh environment holding only the wheel; its dependencies are borrowed from this
    # one through a path entry (not installed again: torch alone is hundreds of MB).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    target = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (target / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [py, "-c", "import thrift_cli, thrift_sync; print(thrift_cli.__file__, thrift_sync.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert where.startswith(str(target)) and f" {target}/thrift_sync/" in where, where

    def ask(question: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [py, "-m", "thrift_cli", "ask", question, "--", *fake_llm.command()],
            cwd=elsewhere,
            capture_output=True,
            env=env,
            timeout=120,
        )

    first, second = ask("How do I learn to code quickly?"), ask("How can I learn to code fast?")
    assert first.returncode == 0, first.stderr.decode()
    assert second.returncode == 0, second.stderr.decode()
    assert second.stdout == first.stdout == answer("How do I learn to code quickly?")
    assert len(fake_llm.calls) == 1
