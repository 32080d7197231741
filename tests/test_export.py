"""`thrift export`, and `thrift import` of what it wrote: the same entries, exactly.

The source caches are real SQLite files written through the store (with times, hit
counts and expiries chosen by the test, and unit vectors under the default model's name),
or by `thrift import` with the real model; every export and import is a real `thrift`
process, and both files are compared row by row.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import thrift_executable
from test_import import GPTCACHE, ORIGIN, SIMILAR, write_jsonl
from test_read_only import as_user

from thrift_cli import db, importer, keys, vectors
from thrift_cli.embed import DEFAULT_MODEL
from thrift_cli.errors import UsageError
from thrift_cli.models import CacheEntry
from thrift_cli.store import SQLiteStore

NOW = time.time()
# What the model (and sys.modules) must not see on an export, or on an import of vectors.
MODEL_MODULES = [
    "thrift_cli.minilm",
    "thrift_cli.minilm_onnx",
    "onnxruntime",
    "torch",
    "sentence_transformers",
]
COLUMNS = "id, namespace, question, question_hash, answer, created_at, expires_at, last_hit_at, hit_count"
PREFIXED = ", ".join(f"e.{name}" for name in COLUMNS.split(", "))


def unit_vectors(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entry(namespace: str, question: str, **fields) -> CacheEntry:
    return CacheEntry(
        namespace, question, keys.exact_key(namespace, question), f"answer to {question}", **fields
    )


def fill(home: Path, entries: list[CacheEntry], model: str = DEFAULT_MODEL) -> None:
    """Store `entries` (with unit vectors) in the cache under `home`, as written by `model`."""
    with SQLiteStore(home / "cache.db") as store:
        store.claim_meta("embedding_model", model)
        store.store_many(list(zip(entries, unit_vectors(len(entries)), strict=True)))


def sample() -> list[CacheEntry]:
    """Entries with every field set otherwise: fractions of a microsecond, never and
    later expiries, hits, text JSON must escape. The expired one is never exported."""
    return [
        entry(
            "docs",
            "What is RAG?",
            created_at=NOW - 86400 * 10 + 1e-7,
            hit_count=3,
            last_hit_at=NOW - 5.123456789,
        ),
        entry("docs", 'Ünïcode ✓, "quotes", a\nnewline and a tab\t?', created_at=NOW - 7200.000001),
        entry("docs", "Expiring later?", created_at=NOW - 600.5, expires_at=NOW + 86400 * 3 + 0.25),
        entry("llm -m echo {}", "What is semantic caching?", created_at=NOW - 60.0),
        entry("docs", "Already expired?", created_at=NOW - 100, expires_at=NOW - 1),
    ]


def fill_sample(home: Path) -> list[CacheEntry]:
    entries = sample()
    fill(home, entries[:-1])
    # The store purges expired entries when it writes: the expired one goes in last, raw.
    with sqlite3.connect(home / "cache.db") as conn:
        e = entries[-1]
        conn.execute(
            f"INSERT INTO entries ({COLUMNS}, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.namespace, e.question, e.question_hash, e.answer, e.created_at, e.expires_at,
             e.last_hit_at, e.hit_count, vectors.encode(unit_vectors(1, seed=9)[0])),
        )  # fmt: skip
    return entries[:-1]


def rows(home: Path) -> list[tuple]:
    """Every entry's stored fields and vector bytes, from the file, with sqlite-vec's copy
    (None where it has none)."""
    sqlite = db.sqlite_module()  # one that can load sqlite-vec
    conn = sqlite.connect(str(home / "cache.db"))
    try:
        conn.enable_load_extension(True)
        conn.load_extension(db.vec_extension_path())
        return conn.execute(
            f"SELECT {PREFIXED}, e.embedding, v.embedding FROM entries e "
            "LEFT JOIN entry_vectors v ON v.rowid = e.rowid ORDER BY e.created_at"
        ).fetchall()
    finally:
        conn.close()


def lines(data: bytes) -> list[dict]:
    return [json.loads(text) for text in data.decode("utf-8").splitlines()]


def run_watching_modules(*args: str, env: dict | None = None) -> tuple[int, str, list[str]]:
    """`thrift ARGS` in a process that reports which of MODEL_MODULES it imported."""
    code = (
        "import sys; from thrift_cli.cli import main; rc = main(sys.argv[1:]); "
        f"sys.stderr.write(repr([m for m in {MODEL_MODULES!r} if m in sys.modules]) + '\\n'); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    *rest, loaded = proc.stderr.strip().splitlines()
    return proc.returncode, "\n".join(rest), json.loads(loaded.replace("'", '"'))


def one_error_line(ran, code: int, *words: str) -> str:
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("thrift: ")
    for word in words:
        assert word in line
    return line


# -- the round trip ------------------------------------------------------------------


def test_round_trip_with_vectors_is_exact_and_loads_no_model(thrift, tmp_path, isolated_env):
    live = fill_sample(isolated_env)
    out = tmp_path / "backup.jsonl"
    code, stderr, loaded = run_watching_modules("export", "--vectors", str(out))
    assert code == 0, stderr
    assert loaded == []
    assert stderr == ""
    assert len(lines(out.read_bytes())) == len(live)  # the expired entry is left out

    fresh = tmp_path / "fresh-home"
    code, stderr, loaded = run_watching_modules("import", "--json", str(out), env={"THRIFT_HOME": str(fresh)})
    assert code == 0, stderr
    assert loaded == []  # the vectors came from the file: no model
    source = [r for r in rows(isolated_env) if r[2] != "Already expired?"]
    assert len(source) == len(live)
    assert rows(fresh) == source  # ids, times to the bit, hit counts, both copies of each vector
    with sqlite3.connect(fresh / "cache.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone() == (
            DEFAULT_MODEL,
        )

    again = thrift("export", "--vectors", env={"THRIFT_HOME": str(fresh)})
    assert again.code == 0, again.stderr
    assert again.stdout == out.read_bytes()  # and back out, byte for byte


def test_a_real_models_vectors_serve_paraphrases_after_the_round_trip(thrift, tmp_path, isolated_env):
    with GPTCACHE.open(encoding="utf-8") as f:
        origins = list(
            dict.fromkeys(json.loads(text)["origin"] for _, text in zip(range(40), f, strict=False))
        )
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl", [{"question": q, "answer": f"answer to {q}"} for q in origins]
    )
    assert thrift("import", str(pairs), "-n", "docs").code == 0
    exported = thrift("export", "--vectors", "-n", "docs")
    assert exported.code == 0, exported.stderr
    path = tmp_path / "docs.jsonl"
    path.write_bytes(exported.stdout)

    fresh = {"THRIFT_HOME": str(tmp_path / "fresh-home")}
    imported = thrift("import", "--json", str(path), env=fresh)
    assert imported.code == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert summary["imported"] == len(origins) and summary["embedded"] == 0
    assert rows(tmp_path / "fresh-home") == rows(isolated_env)
    hit = thrift("ask", "--json", SIMILAR, "--lookup-only", "-n", "docs", env=fresh)
    assert hit.code == 0, hit.stderr
    assert hit.report["tier"] == "semantic" and hit.report["matched_question"] == ORIGIN


def test_without_vectors_the_entries_are_the_same_and_embedded_again(thrift, tmp_path, isolated_env):
    live = fill_sample(isolated_env)
    exported = thrift("export")
    assert exported.code == 0, exported.stderr
    records = lines(exported.stdout)
    assert [list(r) for r in records] == [
        ["id", "namespace", "question", "answer", "created_at", "expires_at", "last_hit_at", "hit_count"]
    ] * len(live)
    path = tmp_path / "plain.jsonl"
    path.write_bytes(exported.stdout)

    fresh = tmp_path / "fresh-home"
    imported = thrift("import", "--json", str(path), env={"THRIFT_HOME": str(fresh)})
    assert imported.code == 0, imported.stderr
    assert json.loads(imported.stdout)["embedded"] == len(live)
    assert [r[:9] for r in rows(fresh)] == [r[:9] for r in rows(isolated_env) if r[2] != "Already expired?"]
    # A second import of the same file finds every entry cached and embeds nothing.
    again = thrift("import", "--json", str(path), env={"THRIFT_HOME": str(fresh)})
    assert json.loads(again.stdout)["already_cached"] == len(live)
    assert json.loads(again.stdout)["embedded"] == 0


def test_times_are_written_as_the_shortest_exact_float(thrift, isolated_env):
    fill(isolated_env, [entry("docs", "When?", created_at=1796283279.2637815, expires_at=2e9 + 0.1)])
    exported = thrift("export")
    assert b'"created_at":1796283279.2637815,"expires_at":2000000000.1,' in exported.stdout


# -- which entries -----------------------------------------------------------------------


def test_namespace_and_since_choose_the_entries(thrift, isolated_env):
    fill_sample(isolated_env)

    def questions(*args: str) -> list[str]:
        ran = thrift("export", *args)
        assert ran.code == 0, ran.stderr
        return [r["question"] for r in lines(ran.stdout)]

    everything = questions()
    assert len(everything) == 4
    assert questions("-n", "llm -m echo {}") == ["What is semantic caching?"]
    assert questions("--since", "1h") == ["Expiring later?", "What is semantic caching?"]
    assert questions("--since", "3h", "-n", "docs") == [everything[1], "Expiring later?"]
    assert questions("--since", "30d") == everything
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 300))  # local time, no offset
    assert questions("--since", since) == ["What is semantic caching?"]
    utc = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(NOW - 300))
    assert questions("--since", utc) == ["What is semantic caching?"]
    assert questions("--since", "2999-01-01") == []  # nothing that new: an empty export, exit 0


def test_nothing_to_export_is_exit_3_and_writes_nothing(thrift, tmp_path, isolated_env):
    target = tmp_path / "out.jsonl"
    missing = thrift("export", str(target))
    one_error_line(missing, 3, "no cache at", "nothing to export")
    assert not isolated_env.exists() and not target.exists()  # creates nothing

    fill_sample(isolated_env)
    target.write_text("old\n")
    unknown = thrift("export", "-n", "nope", str(target))
    one_error_line(unknown, 3, "[namespace nope]", "'docs'")
    assert target.read_text() == "old\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "yesterday"], ["--since", "'yesterday'", "2026-12-01"]),
        (["--since", "0"], ["--since", "positive duration"]),
        (["--since", ""], ["--since"]),
        (["--since", "2026-13-01"], ["--since"]),
        (["-n", " "], ["--namespace"]),
        (["."], ["is a directory"]),
        ([""], ["FILE must not be empty"]),
        (["--vector"], ["--vector"]),
        (["thrift-home/cache.db"], ["is the cache file itself"]),
        (["thrift-home/cache.db-wal"], ["is the cache file itself"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(thrift, isolated_env, args, words, monkeypatch):
    fill_sample(isolated_env)
    before = (isolated_env / "cache.db").read_bytes()
    monkeypatch.chdir(isolated_env.parent)
    ran = thrift("export", *args)
    one_error_line(ran, 2, *words)
    assert ran.stdout == b""
    assert (isolated_env / "cache.db").read_bytes() == before


# -- where it goes -----------------------------------------------------------------------


def test_stdout_dash_and_file_get_the_same_bytes(thrift, tmp_path, isolated_env):
    fill_sample(isolated_env)
    to_stdout = thrift("export", "--vectors")
    dash = thrift("export", "--vectors", "-")
    to_file = thrift("export", "--vectors", str(tmp_path / "out.jsonl"))
    assert to_stdout.code == dash.code == to_file.code == 0
    assert to_stdout.stderr == dash.stderr == ""
    assert to_stdout.stdout == dash.stdout == (tmp_path / "out.jsonl").read_bytes()
    assert to_file.stdout.decode().startswith("exported 4 entries (")
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o600  # as private as the cache
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "thrift-home"]


def test_a_file_is_replaced_whole_and_a_failed_export_keeps_the_old_one(thrift, tmp_path, isolated_env):
    fill_sample(isolated_env)
    target = tmp_path / "out.jsonl"
    target.write_text("the old export\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert thrift("export", str(link)).code == 0
    assert link.is_symlink() and len(lines(target.read_bytes())) == 4  # the file behind the link

    before = target.read_bytes()
    # A row SQLite holds but cannot give as text, last: the export fails after writing the others.
    with sqlite3.connect(isolated_env / "cache.db") as conn:
        conn.execute(
            "UPDATE entries SET answer = CAST(x'ff' AS TEXT) WHERE rowid = (SELECT max(rowid) FROM entries)"
        )
        conn.execute("UPDATE entries SET expires_at = NULL")
    failed = thrift("export", str(target))
    one_error_line(failed, 1, "cannot read")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "out.jsonl", "thrift-home"]


def test_a_device_is_written_in_place_not_replaced(thrift, isolated_env):
    fill_sample(isolated_env)
    ran = thrift("export", "/dev/null")
    assert ran.code == 0, ran.stderr
    assert Path("/dev/null").is_char_device()


def test_a_reader_that_leaves_early_ends_it_quietly(tmp_path, isolated_env):
    fill(isolated_env, [entry("docs", f"Question {i}?") for i in range(200)])  # ~460 KB with vectors
    export = subprocess.Popen(
        [*thrift_executable(), "export", "--vectors"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert export.stdout is not None and export.stderr is not None
    first = json.loads(export.stdout.readline())
    export.stdout.close()  # as `| head -1` does
    stderr = export.stderr.read()
    assert export.wait() == 141  # 128 + SIGPIPE, as a shell reports `seq` or `cat` there
    assert stderr == b""
    assert first["question"] == "Question 0?"


def test_a_read_only_cache_exports(tmp_path, isolated_env):
    fill_sample(isolated_env)
    os.chmod(isolated_env / "cache.db", 0o400)
    os.chmod(isolated_env, 0o500)
    try:
        ran = as_user("export")
    finally:
        os.chmod(isolated_env, 0o700)
        os.chmod(isolated_env / "cache.db", 0o600)
    assert ran.code == 0, ran.stderr
    assert len(lines(ran.stdout)) == 4


def test_an_export_blocks_no_writer_and_reads_one_snapshot(isolated_env):
    fill(isolated_env, [entry("docs", f"Question {i}?") for i in range(30)])
    reader, writer = SQLiteStore(isolated_env / "cache.db"), SQLiteStore(isolated_env / "cache.db")
    try:
        scan = reader.scan(time.time(), batch=5)
        assert next(scan)[0].question == "Question 0?"  # mid-read: its transaction is open
        late = entry("docs", "Written during the export?")
        writer.store_many([(late, unit_vectors(1)[0])])  # would wait 30 s, then fail, if blocked
        assert writer.entry(late.id) is not None
        rest = [e.question for e, _ in scan]
        assert len(rest) == 29 and "Written during the export?" not in rest
    finally:
        reader.close()
        writer.close()


# -- import of an export -------------------------------------------------------------------


def exported_line(**changes) -> dict:
    e = entry("docs", "What is RAG?", created_at=NOW - 10)
    record = {name: getattr(e, name) for name in ("id", "namespace", "question", "answer", "created_at")}
    record.update(expires_at=None, last_hit_at=None, hit_count=0, embedding_model=DEFAULT_MODEL)
    record["embedding"] = base64.b64encode(vectors.encode(unit_vectors(1)[0])).decode()
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


NAN = base64.b64encode(np.full(384, np.nan, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embedding": "not base64!"}, "not valid base64"),
        ({"embedding": "AAAA"}, "the embedding has 0.75 dimensions, " + DEFAULT_MODEL),
        ({"embedding": NAN}, "NaN or an infinity"),
        ({"embedding": base64.b64encode(bytes(1536)).decode()}, "not of unit length"),
        ({"embedding_model": ...}, "needs both embedding and embedding_model fields; no embedding_model"),
        (
            {"embedding_model": "test/hash-words/384"},
            f"hash-words/384, line 1's from {DEFAULT_MODEL}: one file",
        ),
        ({"embedding_model": "other"}, "must end in the dimension"),
        ({"id": "42"}, "the id field must be a UUID"),
        ({"created_at": "yesterday"}, "the created_at field must be unix seconds"),
        ({"expires_at": True}, "the expires_at field must be unix seconds"),
        ({"hit_count": -1}, "the hit_count field must be a whole number"),
        ({"hit_count": 1.5}, "the hit_count field must be a whole number"),
    ],
)
def test_a_bad_exported_line_names_its_line_and_stores_nothing(tmp_path, isolated_env, changes, message):
    good = exported_line()
    good2 = {**exported_line(question="What is HNSW?"), "id": entry("docs", "x").id}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good2, exported_line(**changes)])
    with pytest.raises(UsageError) as caught:
        importer.import_file(str(path))
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)
    if (isolated_env / "cache.db").exists():
        with sqlite3.connect(isolated_env / "cache.db") as conn:
            assert conn.execute("SELECT count(*) FROM entries").fetchone() == (0,)


def test_vectors_of_another_model_than_the_caches_are_refused_through_the_cli(thrift, tmp_path, isolated_env):
    fill(isolated_env, [entry("docs", "What is RAG?")], model="test/hash-words/384")
    out = tmp_path / "hash.jsonl"
    assert thrift("export", "--vectors", str(out)).code == 0
    assert lines(out.read_bytes())[0]["embedding_model"] == "test/hash-words/384"
    ran = thrift("import", str(out), env={"THRIFT_HOME": str(tmp_path / "fresh-home")})
    one_error_line(ran, 2, f"{out}:1: the embedding comes from test/hash-words/384", "jq -c")
    assert not (tmp_path / "fresh-home" / "cache.db").exists() or rows(tmp_path / "fresh-home") == []


def test_expiry_a_record_brings_beats_thrift_ttl_but_not_an_explicit_ttl(thrift, tmp_path, isolated_env):
    record = exported_line(expires_at=None)
    path = write_jsonl(tmp_path / "one.jsonl", [record])
    kept = thrift("import", str(path), env={"THRIFT_TTL": "1h"})
    assert kept.code == 0, kept.stderr
    assert [r[6] for r in rows(isolated_env)] == [None]  # never expires, as exported
    other = tmp_path / "other-home"
    ttl = thrift("import", str(path), "--ttl", "1h", env={"THRIFT_HOME": str(other)})
    assert ttl.code == 0, ttl.stderr
    (expires,) = [r[6] for r in rows(other)]
    assert NOW + 3000 < expires < time.time() + 3601


def test_an_exported_record_already_expired_is_skipped(tmp_path, isolated_env):
    path = write_jsonl(tmp_path / "old.jsonl", [exported_line(expires_at=NOW - 5)])
    summary = importer.import_file(str(path))
    assert summary.imported == 0 and summary.skipped == {"expired": 1}


def test_an_id_held_by_another_question_gets_a_new_one(tmp_path, isolated_env):
    record = exported_line()
    fill(isolated_env, [entry("docs", "Another question?", id=record["id"])])
    path = write_jsonl(tmp_path / "one.jsonl", [record])
    assert importer.import_file(str(path)).imported == 1
    with SQLiteStore(isolated_env / "cache.db") as store:
        (imported,) = [e for e in store.entries("docs") if e.question == "What is RAG?"]
    assert imported.id != record["id"] and imported.created_at == record["created_at"]


def test_the_default_model_is_named_as_the_model_names_itself():
    from thrift_cli import minilm

    assert f"{minilm.MODEL_NAME}/{minilm.DIM}" == DEFAULT_MODEL


def test_what_a_killed_export_left_is_swept_by_the_next(thrift, tmp_path, isolated_env):
    fill_sample(isolated_env)
    stale, recent = tmp_path / ".out.jsonl.k1ll3d.tmp", tmp_path / ".out.jsonl.runn1n.tmp"
    stale.write_text('{"half": ')
    recent.write_text('{"half": ')
    os.utime(stale, (NOW - 3600, NOW - 3600))  # an export killed an hour ago
    assert thrift("export", str(tmp_path / "out.jsonl")).code == 0
    assert not stale.exists()
    assert recent.exists()  # perhaps another export's, still running: left alone


def test_a_stdout_that_cannot_be_written_is_one_line_and_exit_1(isolated_env):
    fill_sample(isolated_env)
    with open("/dev/full", "wb") as full:
        ran = subprocess.run([*thrift_executable(), "export"], stdout=full, stderr=subprocess.PIPE)
    assert ran.returncode == 1
    assert ran.stderr.decode().splitlines() == ["thrift: cannot write to stdout: No space left on device"]


def test_an_export_piped_into_an_import_round_trips(thrift, tmp_path, isolated_env):
    live = fill_sample(isolated_env)
    exported = thrift("export", "--vectors")
    assert exported.code == 0, exported.stderr
    fresh = tmp_path / "fresh-home"
    piped = thrift("import", "--json", "-", input=exported.stdout, env={"THRIFT_HOME": str(fresh)})
    assert piped.code == 0, piped.stderr
    report = json.loads(piped.stdout)
    assert (report["path"], report["imported"], report["embedded"]) == ("-", len(live), 0)
    assert rows(fresh) == [r for r in rows(isolated_env) if r[2] != "Already expired?"]
    bad = thrift("import", "-", input=b'{"question": "no answer"}\n', env={"THRIFT_HOME": str(fresh)})
    assert bad.code == 2 and bad.stderr.startswith("thrift: <stdin>:1: ") and bad.stderr.count("\n") == 1
