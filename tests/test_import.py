"""`thrift import`: JSONL, CSV, TSV and llm's logs.db in, `thrift ask --lookup-only` out.

Real processes, the real model and the real `llm` CLI, on real data from
../shared/data; parsing and validation in-process, where nothing loads the model.
"""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import shared_data, thrift_executable

from thrift_cli import importer, keys
from thrift_cli.errors import UsageError

DATA = shared_data()
GPTCACHE = DATA / "gptcache_mock_data.jsonl"
QQP = DATA / "qqp_dev_sample.tsv"
# Hand-checked (record 0 of GPTCache's set): the paraphrase scores 0.97 against the origin.
ORIGIN = "Hugging Face Hub is a platform to host Git-based models, datasets, and Spaces."
SIMILAR = "Hugging Face Hub serves as a repository for Git-based models, datasets, and Spaces."
ECHO = ["llm", "-m", "echo"]


def gptcache_rows(n: int = 200) -> list[dict]:
    with GPTCACHE.open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def qqp_questions(n: int) -> list[str]:
    """The first `n` distinct question1 values of the QQP sample."""
    seen: dict[str, str] = {}
    with QQP.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            question = line.split("\t")[0]
            seen.setdefault(keys.normalize(question), question)
            if len(seen) == n:
                break
    return list(seen.values())


def cache_rows(home: Path, namespace: str | None = None) -> list[tuple[str, str, str]]:
    """(namespace, question, answer) of every entry, read straight from the file."""
    path = home / "cache.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT namespace, question, answer FROM entries ORDER BY rowid").fetchall()
    return [row for row in rows if namespace is None or row[0] == namespace]


def summary_line(ran) -> str:
    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    (line,) = ran.stdout.decode().splitlines()
    return line


def assert_one_line(ran, *words: str) -> str:
    assert ran.code == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("thrift: ")
    for word in words:
        assert word in line
    assert ran.stdout == b""
    return line


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# -- files: JSONL, CSV, TSV ----------------------------------------------------------


def test_jsonl_import_serves_exact_and_paraphrase_hits_and_is_idempotent(thrift, tmp_path, isolated_env):
    rows = gptcache_rows()
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [{"question": r["origin"], "answer": f"answer to {r['origin']}"} for r in rows],
    )
    distinct = len({keys.normalize(r["origin"]) for r in rows})
    assert distinct < len(rows)  # GPTCache's set repeats some origins: they are skipped

    first = thrift("import", str(path), "-n", "docs")
    assert summary_line(first).startswith(
        f"imported {distinct} entries (0 already cached, {len(rows) - distinct} skipped) into 1 namespace in "
    )
    assert len(cache_rows(isolated_env, "docs")) == distinct

    exact = thrift("ask", "--json", ORIGIN, "--lookup-only", "-n", "docs")
    assert exact.code == 0, exact.stderr
    assert exact.stdout == f"answer to {ORIGIN}".encode()
    assert exact.report["tier"] == "exact"
    paraphrase = thrift("ask", "--json", SIMILAR, "--lookup-only", "-n", "docs")
    assert paraphrase.code == 0, paraphrase.stderr
    assert paraphrase.stdout == f"answer to {ORIGIN}".encode()
    assert paraphrase.report["tier"] == "semantic"
    assert paraphrase.report["matched_question"] == ORIGIN

    again = thrift("import", "--json", str(path), "-n", "docs")
    assert again.code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["imported"] == 0 and summary["already_cached"] == distinct
    assert summary["skipped"] == {"duplicate question": len(rows) - distinct}
    assert summary["namespaces"] == ["docs"]
    assert len(cache_rows(isolated_env)) == distinct


def test_csv_and_tsv_imports(thrift, tmp_path, isolated_env):
    questions = qqp_questions(60)
    tsv = tmp_path / "qqp.tsv"
    tsv.write_text("question\tanswer\n" + "".join(f"{q}\tA: {q}\n" for q in questions[:30]), encoding="utf-8")
    # CSV as a spreadsheet writes it: BOM, CRLF, capitalised header, quoted commas,
    # quotes and an answer spanning lines; the namespace comes from a column.
    csv_path = tmp_path / "qqp.csv"
    body = "".join(
        f'"{q.replace(chr(34), 2 * chr(34))}","A, first line\r\n""{i}""",qqp-csv\r\n'
        for i, q in enumerate(questions[30:])
    )
    csv_path.write_bytes(("\ufeffPrompt,Response,Namespace\r\n" + body).encode("utf-8"))

    ran_tsv = thrift("import", str(tsv), "-n", "qqp-tsv")
    assert summary_line(ran_tsv).startswith(
        "imported 30 entries (0 already cached, 0 skipped) into 1 namespace"
    )
    ran_csv = thrift("import", str(csv_path))
    assert summary_line(ran_csv).startswith(
        "imported 30 entries (0 already cached, 0 skipped) into 1 namespace"
    )
    assert ran_csv.stderr.strip() == "thrift: namespace qqp-csv"

    assert [(q, a) for _, q, a in cache_rows(isolated_env, "qqp-tsv")] == [
        (q.strip(), f"A: {q}") for q in questions[:30]
    ]
    assert len(cache_rows(isolated_env, "qqp-csv")) == 30
    hit = thrift("ask", questions[3], "--lookup-only", "-n", "qqp-tsv")
    assert hit.code == 0 and hit.stdout == f"A: {questions[3]}".encode()
    hit = thrift("ask", questions[40], "--lookup-only", "-n", "qqp-csv")
    assert hit.code == 0 and hit.stdout == b'A, first line\r\n"10"'


def test_replace_overwrites_only_changed_answers(thrift, tmp_path, isolated_env):
    questions = qqp_questions(5)
    old = write_jsonl(tmp_path / "old.jsonl", [{"q": q, "a": "old"} for q in questions])
    new = write_jsonl(
        tmp_path / "new.jsonl", [{"q": q, "a": "new" if i < 3 else "old"} for i, q in enumerate(questions)]
    )
    assert summary_line(thrift("import", str(old), "-n", "x")).startswith("imported 5 entries (0 already")

    kept = thrift("import", str(new), "-n", "x")
    assert summary_line(kept).startswith("imported 0 entries (5 already cached, 0 skipped)")
    assert [a for _, _, a in cache_rows(isolated_env)] == ["old"] * 5

    replaced = thrift("import", str(new), "-n", "x", "--replace")
    assert summary_line(replaced).startswith("imported 3 entries (3 replaced, 2 already cached, 0 skipped)")
    assert sorted(a for _, _, a in cache_rows(isolated_env)) == ["new"] * 3 + ["old"] * 2
    hit = thrift("ask", questions[0], "--lookup-only", "-n", "x")
    assert hit.stdout == b"new"


def test_command_after_dashes_names_the_namespace(thrift, tmp_path, fake_llm, isolated_env):
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"prompt": "What is semantic caching?", "completion": "Reuse."}]
    )
    ran = thrift("import", "--json", str(path), "--ttl", "2h", "--stdin", "--", *fake_llm.command("--stdin"))
    assert ran.code == 0, ran.stderr
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        (lifetime,) = conn.execute("SELECT expires_at - created_at FROM entries").fetchone()
    assert lifetime == pytest.approx(7200, abs=1)
    assert json.loads(ran.stdout)["namespaces"] == [
        keys.command_namespace(fake_llm.command("--stdin"), stdin=True)
    ]
    hit = thrift("ask", "--stdin", "what is semantic caching", "--", *fake_llm.command("--stdin"))
    assert hit.code == 0 and hit.stdout == b"Reuse."
    assert fake_llm.calls == []


def test_progress_line_on_a_terminal(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"q": f"Question {i}?", "a": "A."} for i in range(3)])
    master, slave = pty.openpty()
    try:
        ran = subprocess.run(
            [*thrift_executable(), "import", str(path), "-n", "x"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
        )
        os.close(slave)
        terminal = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed and everything was read
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(master)
    assert ran.returncode == 0
    assert ran.stdout.decode().startswith("imported 3 entries (0 already cached, 0 skipped) into 1 namespace")
    text = terminal.decode()
    assert text.startswith("\rimported 0/3 (0/s)\x1b[K")
    assert "\rimported 3/3 (" in text and "\n" not in text  # redrawn in place, one line
    assert text.endswith("\r\x1b[K")  # and wiped before the summary


# -- llm's logs.db -------------------------------------------------------------------


def run_llm(llm_cli: list[str], *args: str) -> bytes:
    """Run the real `llm -m echo` (logging to LLM_USER_PATH, set by conftest); its stdout."""
    return subprocess.run([*llm_cli, *args], capture_output=True, check=True, timeout=60).stdout


def test_real_llm_logs_db(thrift, tmp_path, llm_cli):
    printed = run_llm(llm_cli, "What is semantic caching?")
    run_llm(llm_cli, "-c", "And why does it save money?")  # a follow-up: depends on the first
    terse = run_llm(llm_cli, "-s", "Be terse.", "What is a vector database?")
    logs = tmp_path / "llm-user" / "logs.db"

    ran = thrift("import", str(logs))
    assert summary_line(ran).startswith("imported 2 entries (0 already cached, 1 skipped) into 2 namespaces")
    assert "follow-up in a conversation (1)" in ran.stderr

    # --lookup-only runs nothing, so `llm` is spelt as a user types it (not the venv's path).
    hit = thrift("ask", "What is semantic caching?", "--lookup-only", "--", *ECHO)
    assert hit.code == 0, hit.stderr
    assert hit.stdout == printed  # byte for byte what `llm` printed, final newline included
    hit = thrift("ask", "What is a vector database?", "--lookup-only", "--", *ECHO, "-s", "Be terse.")
    assert hit.code == 0 and hit.stdout == terse
    miss = thrift("ask", "And why does it save money?", "--lookup-only", "--", *ECHO)
    assert miss.code == 3


def legacy_logs_db(path: Path) -> None:
    """A logs.db as llm before 0.36 wrote it: its migrations up to the message store, and
    `responses` rows shaped like llm 0.19's (checked against a database it wrote)."""
    import sqlite_utils
    from llm.migrations import MIGRATIONS, ensure_migrations_table

    db = sqlite_utils.Database(path)
    ensure_migrations_table(db)
    for migration in MIGRATIONS:
        if migration.__name__ == "m023_message_store":
            break
        migration(db)
        db["_llm_migrations"].insert({"name": migration.__name__, "applied_at": "2024-01-01"})
    rows = [  # id, model, prompt, system, response, conversation
        ("01a", "gpt-4o-mini", "What is RAG?", None, "Retrieval-augmented generation.", "c1"),
        ("01b", "gpt-4o-mini", "Give an example", None, "Search, then answer.", "c1"),
        ("01c", "gpt-4o-mini", "What is RAG", None, "A later, second answer.", "c2"),
        ("01d", "claude-3-haiku", "What is RAG?", "Answer in French.", "Génération augmentée.", "c3"),
        ("01e", "gpt-4o-mini", "Say nothing", None, "", "c4"),
        ("01f", "gpt-4o-mini", "Describe this image", None, "A cat.", "c5"),
    ]
    for conversation in sorted({row[5] for row in rows}):
        db["conversations"].insert({"id": conversation, "name": "x", "model": "gpt-4o-mini"})
    for i, (id_, model, prompt, system, response, conversation) in enumerate(rows):
        db["responses"].insert(
            {
                "id": id_,
                "model": model,
                "prompt": prompt,
                "system": system,
                "prompt_json": None,
                "options_json": "{}",
                "response": response,
                "response_json": None,
                "conversation_id": conversation,
                "duration_ms": 1,
                "datetime_utc": f"2024-01-01T00:00:0{i}",
            }
        )
    db["attachments"].insert({"id": "att", "type": "image/png", "path": "cat.png"})
    db["prompt_attachments"].insert({"response_id": "01f", "attachment_id": "att", "order": 0})
    db.close()


def test_legacy_responses_table_and_an_upgraded_logs_db(thrift, tmp_path, llm_cli):
    logs = tmp_path / "llm-user" / "logs.db"
    logs.parent.mkdir()
    legacy_logs_db(logs)
    items = list(importer.read(str(logs), importer.detect(str(logs))))
    mini = keys.command_namespace(["llm", "-m", "gpt-4o-mini"])
    french = keys.command_namespace(["llm", "-m", "claude-3-haiku", "-s", "Answer in French."])
    assert items == [
        importer.Record("What is RAG?", "Retrieval-augmented generation.\n", mini, 0),
        importer.Skipped("follow-up in a conversation"),
        importer.Record("What is RAG", "A later, second answer.\n", mini, 0),
        importer.Record("What is RAG?", "Génération augmentée.\n", french, 0),
        importer.Skipped("empty response"),
        importer.Skipped("attachments"),
    ]

    # llm 0.36 upgrades the file and logs new calls in its threads/turns tables.
    printed = run_llm(llm_cli, "What is semantic caching?")
    ran = thrift("import", "--json", str(logs))
    assert ran.code == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["format"] == "llm"
    assert summary["imported"] == 3  # the first "What is RAG?" wins over the later one
    assert summary["skipped"] == {
        "follow-up in a conversation": 1,
        "empty response": 1,
        "attachments": 1,
        "duplicate question": 1,
    }
    assert sorted(summary["namespaces"]) == sorted([mini, french, keys.command_namespace(ECHO)])
    hit = thrift("ask", "what is rag", "--lookup-only", "--", "llm", "-m", "gpt-4o-mini")
    assert hit.code == 0 and hit.stdout == b"Retrieval-augmented generation.\n"
    hit = thrift("ask", "What is semantic caching?", "--lookup-only", "--", *ECHO)
    assert hit.code == 0 and hit.stdout == printed


# -- bad input: one line, exit 2, nothing stored -------------------------------------


def test_bad_line_late_in_a_file_stores_nothing(thrift, tmp_path, isolated_env):
    records = [{"question": q, "answer": "yes"} for q in qqp_questions(700)]
    records[650] = {"question": records[650]["question"], "reply": "yes"}
    path = write_jsonl(tmp_path / "data.jsonl", records)
    line = assert_one_line(thrift("import", str(path), "-n", "x"))
    assert line == (
        f"thrift: {path}:651: no answer field (expected one of answer, response, completion, a, output)"
    )
    assert cache_rows(isolated_env) == []


def test_missing_file_and_missing_namespace(thrift, tmp_path, isolated_env):
    assert_one_line(thrift("import", str(tmp_path / "nope.jsonl"), "-n", "x"), "cannot read", "nope.jsonl")
    path = write_jsonl(tmp_path / "a.jsonl", [{"question": "Q?", "answer": "A."}])
    assert_one_line(thrift("import", str(path)), "a.jsonl:1:", "--namespace", "--")
    assert cache_rows(isolated_env) == []


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "a.jsonl",
            b'{"question": "Q", "answer": "A"}\n{"question": "Q2", answer}\n',
            "a.jsonl:2: not valid JSON",
        ),
        ("a.jsonl", b'\n{"question": "Q", "output": 3}\n', "a.jsonl:2: the output field must be a string"),
        (
            "a.jsonl",
            b'{"question": "Q", "answer": "A"}\n{"input": " ", "a": "A"}\n',
            "a.jsonl:2: empty question",
        ),
        (
            "a.jsonl",
            b'{"question": "Q", "answer": "A"}\n{"question": "\xff", "answer": "A"}\n',
            "a.jsonl:2: not UTF-8",
        ),
        ("a.jsonl", b'["Q", "A"]\n', "a.jsonl:1: expected a JSON object, got an array"),
        ("a.json", b'[{"q": "Q", "a": "A"},\n {"q": "Q2"}]', "a.json: item 2: no answer field"),
        ("a.csv", b"question,reply\nQ,A\n", "a.csv:1: no answer column (expected one of answer, response"),
        (
            "a.csv",
            b'question,answer\n"Q\nstill Q",A\nQ3\n',
            "a.csv:4: expected 2 fields like the header, got 1",
        ),
        ("a.csv", b'question,answer\nQ,A\nQ2,"A\n\n', "a.csv:3: bad CSV (unexpected end of data)"),
        ("a.tsv", b"question\tanswer\nQ\tA\tB\n", "a.tsv:2: expected 2 fields like the header, got 3"),
        ("a.tsv", b"question\tanswer\nQ\t \n", "a.tsv:2: empty answer"),
        ("a.txt", b"hello\n", "cannot tell the format of"),
        ("a.db", b"not sqlite", "is not a SQLite database"),
    ],
)
def test_malformed_files(tmp_path, isolated_env, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError) as failed:
        importer.import_file(str(path), namespace="x")
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)
    assert not (isolated_env / "cache.db").exists()


def test_a_pipe_is_refused_not_half_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="not a regular file"):
        importer.import_file(str(tmp_path / "fifo"), namespace="x")


def test_a_thrift_cache_is_not_an_llm_logs_db(tmp_path, isolated_env):
    from thrift_cli.store import SQLiteStore

    SQLiteStore(tmp_path / "other.db").close()
    with pytest.raises(UsageError, match="not llm's logs.db"):
        importer.import_file(str(tmp_path / "other.db"))


def test_formats_are_told_by_content_when_the_extension_says_nothing(tmp_path):
    cases = {"a": b'{"q": 1}\n', "b": b"question\tanswer\n", "c": b"question,answer\n", "d": b"[]"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    assert [importer.detect(str(tmp_path / n)) for n in "abcd"] == ["jsonl", "tsv", "csv", "json"]
