"""The README's picture of `thrift serve`'s dashboard: docs/dashboard.png.

    python scripts/screenshot_dashboard.py [--out docs/dashboard.png] [--pairs 8]

Starts a real `thrift serve` on a new THRIFT_HOME in a temporary directory, fills it with
real `thrift ask` processes and the key-less echo LLM (`llm -m echo`): for each of the
first duplicate pairs of the shared QQP sample, the question (a miss), the same again (an
exact hit) and its duplicate (a paraphrase: a semantic hit when the model agrees), then a
few questions asked once. Then it opens the dashboard in chromium, on loopback only with
the tests' flags (tests/browser.py), and saves a 1280x900 screenshot.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # browser.py and serve_servers.py: one set of flags

from browser import chromium  # noqa: E402
from serve_servers import ServeServer, thrift_argv  # noqa: E402

MAX_QUESTION = 70  # characters: questions that fit a line of the table at 1280 px


def shared_data() -> Path:
    """The project's data (tests/conftest.py looks in the same places)."""
    for path in (Path(os.environ.get("THRIFT_DATA", "/nonexistent")), ROOT.parent / "shared" / "data"):
        if (path / "qqp_dev_sample.tsv").is_file():
            return path
    return Path("/work/shared/data")


def questions(pairs: int) -> tuple[list[tuple[str, str]], list[str]]:
    """The first `pairs` short duplicate pairs of the QQP sample, and 4 short questions of
    its non-duplicates (asked once each: the misses of a real day)."""
    duplicates: list[tuple[str, str]] = []
    singles: list[str] = []
    with open(shared_data() / "qqp_dev_sample.tsv", encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            first, second = row["question1"], row["question2"]
            if max(len(first), len(second)) > MAX_QUESTION:
                continue
            if row["is_duplicate"] == "1" and len(duplicates) < pairs:
                duplicates.append((first, second))
            elif row["is_duplicate"] == "0" and len(singles) < 4:
                singles.append(first)
            if len(duplicates) == pairs and len(singles) == 4:
                break
    return duplicates, singles


def llm_echo() -> list[str]:
    exe = Path(sys.executable).parent / "llm"
    path = str(exe) if exe.exists() else shutil.which("llm")
    if not path:
        raise SystemExit("the llm CLI (with llm-echo) is a dev dependency: run make install")
    return [path, "-m", "echo"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="thrift-screenshot-") as tmp:
        home = Path(tmp) / "home"
        # A cache of its own, not the developer's: no Redis, no remote, no llm logs of theirs.
        for name in [n for n in os.environ if n.startswith(("THRIFT_", "SUPABASE_"))]:
            del os.environ[name]
        for name in ("REDIS_URL", "DATABASE_URL"):
            os.environ.pop(name, None)
        os.environ["THRIFT_HOME"] = str(home)
        os.environ["THRIFT_SCRUB"] = "false"  # Presidio costs each storing ask ~5 s; echoes hold no PII
        os.environ["LLM_USER_PATH"] = str(Path(tmp) / "llm")
        duplicates, singles = questions(args.pairs)
        llm = llm_echo()

        def ask(question: str) -> None:
            subprocess.run(
                [*thrift_argv(), "ask", question, "--", *llm],
                check=True,
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )

        start = time.monotonic()
        for i, (first, second) in enumerate(duplicates):
            ask(first)
            ask(second)
            if i % 2 == 0:
                ask(first)
        for question in singles:
            ask(question)
        print(f"{len(duplicates)} pairs and {len(singles)} singles asked in {time.monotonic() - start:.1f} s")

        with ServeServer.start(home) as server, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/#key={server.key}")
            page.wait_for_selector("[data-testid=lookups][data-value]")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
    print(f"{args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
