"""What a user does to `cache.db` while `thrift helper` runs (mv, cp in place, rm) never
loses the new file's data, and the helper serves the new file.

SQLite finds `cache.db-wal` and `-shm` by name: a process that keeps the old file open
keeps its WAL under that name, and whoever opens the new file next reads the old file's
WAL frames over it. So the helper opens the file per request, as a one-shot `thrift ask`
does, and these tests check the files left between requests as well as the answers.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_helper import ask_in_process, start_helper

OLD = "How do I learn to code quickly?"
NEW = ["What is the capital of France?", "How do I bake sourdough bread at home?"]
PARAPHRASE = {OLD: "How can I learn to code fast?", NEW[0]: "Tell me the capital of France"}


@pytest.fixture
def helper(isolated_env):
    proc = start_helper(isolated_env)
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def stop(proc) -> None:
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def build_cache(thrift, fake_llm, home: Path, questions: list[str]) -> Path:
    """A second cache, written by one-shot asks under another THRIFT_HOME."""
    for question in questions:
        assert thrift("ask", question, "--", *fake_llm.command(), env={"THRIFT_HOME": str(home)}).code == 0
    assert sorted(p.name for p in home.glob("cache.db*")) == ["cache.db"]  # closed cleanly
    return home / "cache.db"


def held(path: Path) -> tuple[list[str], str]:
    """The questions a cache file holds and its integrity check, read after every
    process let go of it."""
    conn = sqlite3.connect(path)
    try:
        questions = sorted(r[0] for r in conn.execute("SELECT question FROM entries"))
        return questions, conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def lookup(thrift, fake_llm, question: str):
    return thrift("ask", "--lookup-only", "--json", question, "--", *fake_llm.command())


def assert_served_by_helper(fake_llm, question: str, expected: str) -> None:
    """A lookup past the exact tier, answered by the helper (no model loaded here)."""
    code, out, loaded = ask_in_process("--lookup-only", "--json", question, "--", *fake_llm.command())
    assert code == 0 and loaded == [], (code, out)
    assert f"\u00ab{expected}\u00bb".encode() in out


def assert_no_wal_between_requests(home: Path) -> None:
    # The helper holds no connection between requests: the last close removed them.
    assert sorted(p.name for p in home.glob("cache.db*")) == ["cache.db"]


def test_mv_a_cache_onto_the_file_serves_the_new_one_and_loses_nothing(
    helper, thrift, fake_llm, isolated_env, tmp_path
):
    assert thrift("ask", OLD, "--", *fake_llm.command()).code == 0  # stored by the helper
    other = build_cache(thrift, fake_llm, tmp_path / "other-home", NEW)
    assert_no_wal_between_requests(isolated_env)
    shutil.move(other, isolated_env / "cache.db")

    for question in NEW:
        assert lookup(thrift, fake_llm, question).code == 0
    assert lookup(thrift, fake_llm, OLD).code == 3
    assert_served_by_helper(fake_llm, PARAPHRASE[NEW[0]], NEW[0])
    assert lookup(thrift, fake_llm, PARAPHRASE[OLD]).code == 3
    assert thrift("ask", "What is RAG?", "--", *fake_llm.command()).code == 0  # stored by the helper
    assert_no_wal_between_requests(isolated_env)

    stop(helper)
    assert held(isolated_env / "cache.db") == (sorted([*NEW, "What is RAG?"]), "ok")


def test_cp_a_cache_over_the_file_in_place(helper, thrift, fake_llm, isolated_env, tmp_path):
    assert thrift("ask", OLD, "--", *fake_llm.command()).code == 0
    assert_served_by_helper(fake_llm, PARAPHRASE[OLD], OLD)  # the helper indexed the old file
    other = build_cache(thrift, fake_llm, tmp_path / "other-home", NEW)
    inode = (isolated_env / "cache.db").stat().st_ino
    shutil.copyfile(other, isolated_env / "cache.db")  # same inode, new bytes
    assert (isolated_env / "cache.db").stat().st_ino == inode

    for question in NEW:
        assert lookup(thrift, fake_llm, question).code == 0
    assert lookup(thrift, fake_llm, OLD).code == 3
    assert_served_by_helper(fake_llm, PARAPHRASE[NEW[0]], NEW[0])
    assert lookup(thrift, fake_llm, PARAPHRASE[OLD]).code == 3

    stop(helper)
    assert held(isolated_env / "cache.db") == (sorted(NEW), "ok")


def test_rm_the_file_alone_then_asks_work_and_store_into_a_new_one(helper, thrift, fake_llm, isolated_env):
    assert thrift("ask", OLD, "--", *fake_llm.command()).code == 0
    (isolated_env / "cache.db").unlink()  # only the file: -wal and -shm are whatever is left

    miss = lookup(thrift, fake_llm, OLD)
    assert miss.code == 3 and miss.report["tier"] == "miss", miss.stderr
    ran = thrift("ask", NEW[0], "--", *fake_llm.command())
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    assert fake_llm.calls == [OLD, NEW[0]]
    assert lookup(thrift, fake_llm, NEW[0]).code == 0
    assert_served_by_helper(fake_llm, PARAPHRASE[NEW[0]], NEW[0])
    assert_no_wal_between_requests(isolated_env)

    stop(helper)
    assert held(isolated_env / "cache.db") == ([NEW[0]], "ok")


# -- the helper's in-memory index follows the file, not only its inode ------------------

# Many more rows than a search proposes (SEARCH_K plus the store's slack), so that a stale
# vector in the helper's index hides the right entry instead of being re-scored anyway.
ROWS = 200
TARGETS = {
    "What is the capital of France?": "Tell me the capital of France",
    "How do I learn to code quickly?": "How can I learn to code fast?",
    "How do I bake sourdough bread at home?": "How can I make sourdough bread at home?",
}


def import_pairs(thrift, fake_llm, home: Path, pairs: list[tuple[str, str]]) -> None:
    data = home.parent / f"{home.name}-{len(pairs)}.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs))
    ran = thrift("import", str(data), "--", *fake_llm.command(), env={"THRIFT_HOME": str(home)})
    assert ran.code == 0, ran.stderr


def fillers(template: str, count: int) -> list[tuple[str, str]]:
    return [(template.format(i=i, j=i + 7), f"answer {i}") for i in range(count)]


def with_targets(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`pairs` with the target questions at far-apart positions (row ids)."""
    pairs = list(pairs)
    for position, question in zip((50, 120, 190), TARGETS, strict=True):
        pairs[position] = (question, f"the answer to {question}")
    return pairs


def assert_targets_served_by_helper(fake_llm) -> None:
    for question, paraphrase in TARGETS.items():
        code, out, loaded = ask_in_process("--lookup-only", paraphrase, "--", *fake_llm.command())
        assert (code, out, loaded) == (0, f"the answer to {question}".encode(), []), paraphrase


def test_another_cache_copied_in_place_is_not_searched_with_the_old_index(
    helper, thrift, fake_llm, isolated_env, tmp_path
):
    import_pairs(thrift, fake_llm, isolated_env, fillers("What is {i} plus {j}?", ROWS))
    code, out, loaded = ask_in_process("--lookup-only", "What's 3 plus 10?", "--", *fake_llm.command())
    assert code in (0, 3) and loaded == []  # the helper has loaded its index of the old rows
    other = tmp_path / "other-home"
    import_pairs(thrift, fake_llm, other, with_targets(fillers("What is {i} times {j}?", ROWS)))
    shutil.copyfile(other / "cache.db", isolated_env / "cache.db")  # same inode, same row ids
    assert_targets_served_by_helper(fake_llm)


def test_a_restored_backup_that_grew_again_is_not_searched_with_the_old_index(
    helper, thrift, fake_llm, isolated_env, tmp_path
):
    import_pairs(thrift, fake_llm, isolated_env, fillers("What is {i} plus {j}?", ROWS))
    backup = tmp_path / "backup.db"
    shutil.copyfile(isolated_env / "cache.db", backup)
    import_pairs(thrift, fake_llm, isolated_env, fillers("What is {i} minus {j}?", ROWS))
    code, _, loaded = ask_in_process("--lookup-only", "What's 3 minus 10?", "--", *fake_llm.command())
    assert code in (0, 3) and loaded == []  # the helper has indexed all 400 rows
    shutil.copyfile(backup, isolated_env / "cache.db")  # restored in place
    # More rows than the helper saw, written before its next request: the row count and
    # sqlite_sequence look as if the file had only grown.
    import_pairs(thrift, fake_llm, isolated_env, with_targets(fillers("What is {i} times {j}?", ROWS + 10)))
    assert_targets_served_by_helper(fake_llm)
