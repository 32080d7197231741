"""HNSW graphs over large namespaces stay consistent with the store through what users do:
writes after the graph, deletions, expiry, concurrent writers, kills, copies, damage.

Every check compares with an exact scan of the live rows: a graph may only propose
candidates, so a lookup through it must return what the exact search returns.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from thrift_cli import hnsw, vectors
from thrift_cli.keys import exact_key
from thrift_cli.minilm_onnx import OnnxMiniLMEmbedder
from thrift_cli.models import CacheEntry
from thrift_cli.store import SQLiteStore


class RealEmbedder:
    """The real model, remembering what it embedded. A graph is only as good as its data
    is clustered: a fake embedder's near-orthogonal vectors make no sense to test HNSW on."""

    def __init__(self) -> None:
        self._model: OnnxMiniLMEmbedder | None = None
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            if self._model is None:
                self._model = OnnxMiniLMEmbedder(Path(tempfile.gettempdir()) / "thrift-tests-onnx")
            self._memo.update(zip(missing, self._model.embed(missing), strict=True))
        return np.stack([self._memo[t] for t in texts])


EMBED = RealEmbedder()
NS = "llm -m gpt-4o-mini {}"
DATA = shared_data() / "qqp_dev_sample.tsv"


def real_questions(n: int, skip: int = 0) -> list[str]:
    """Distinct first questions of the QQP sample, in file order."""
    seen: dict[str, None] = {}
    with open(DATA, encoding="utf-8") as f:
        next(f)
        for line in f:
            seen.setdefault(line.split("\t")[0], None)
            if len(seen) == n + skip:
                break
    return list(seen)[skip:]


QUESTIONS = real_questions(600)


def items(questions: list[str], namespace: str = NS, **kw) -> list[tuple[CacheEntry, np.ndarray]]:
    vecs = EMBED.embed(questions)
    return [
        (CacheEntry(namespace, q, exact_key(namespace, q), f"answer: {q}", **kw), v)
        for q, v in zip(questions, vecs, strict=True)
    ]


def probe(question: str) -> np.ndarray:
    """A lookup near a stored question but not equal to it: its words minus the last."""
    return EMBED.embed([question.rsplit(" ", 1)[0] + " please"])[0]


def exact_best(store: SQLiteStore, vector: np.ndarray, namespace: str = NS) -> tuple[str, float]:
    rows = store._read(
        "SELECT question, embedding FROM entries WHERE namespace = ? "
        "AND (expires_at IS NULL OR expires_at > ?)",
        (namespace, time.time()),
    )
    scores = [float(vectors.decode(blob) @ vector) for _, blob in rows]
    best = int(np.argmax(scores))
    return rows[best][0], scores[best]


def assert_matches_exact(store: SQLiteStore, questions: list[str], namespace: str = NS) -> None:
    for q in questions:
        v = probe(q)
        found = store.search(namespace, v, 5, time.time())
        question, score = exact_best(store, v, namespace)
        assert found and found[0].entry.question == question, q
        assert found[0].similarity == pytest.approx(score, abs=1e-6)  # scored from the store's float32


def graph_files(home: Path) -> list[Path]:
    return sorted(home.glob("index/*.usearch"))


def watermark(path: Path) -> int:
    return int(path.name.split(".")[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THRIFT_HNSW_MIN_ENTRIES", "100")
    monkeypatch.setattr(hnsw, "REFRESH_AT", 50)
    monkeypatch.setattr(hnsw, "RESPAWN_AFTER_S", 0.0)
    monkeypatch.setenv("THRIFT_HOME", str(tmp_path))
    return tmp_path


def filled(home: Path, n: int = 300) -> SQLiteStore:
    store = SQLiteStore(home / "cache.db")
    store.store_many(items(QUESTIONS[:n]))
    return store


@pytest.mark.parametrize("warm", [False, True])
def test_search_through_a_graph_returns_what_exact_search_returns(home, warm):
    filled(home).build_index(NS)
    assert [watermark(p) for p in graph_files(home)] == [300]
    store = SQLiteStore(home / "cache.db", memory_index=warm)
    assert_matches_exact(store, QUESTIONS[:300:5])
    assert store._graphs[NS] is not None  # the graph answered, not a scan


def test_small_namespaces_are_scanned_exactly_and_get_no_graph(home):
    store = filled(home, 99)
    cold = SQLiteStore(home / "cache.db")
    assert_matches_exact(cold, QUESTIONS[:99:7])
    assert store.build_index is not None and graph_files(home) == []


def test_rows_added_after_the_graph_are_found_then_folded_in(home):
    store = filled(home)
    store.build_index(NS)
    store.store_many(items(QUESTIONS[300:330]))  # fewer than REFRESH_AT: scanned exactly
    cold = SQLiteStore(home / "cache.db")
    assert_matches_exact(cold, QUESTIONS[300:330:3] + QUESTIONS[:300:30])
    assert [watermark(p) for p in graph_files(home)] == [300]

    store.store_many(items(QUESTIONS[330:400]))  # now 100 behind: a lookup starts `thrift index`
    SQLiteStore(home / "cache.db").search(NS, probe(QUESTIONS[350]), 5, time.time())
    deadline = time.monotonic() + 60
    while [watermark(p) for p in graph_files(home)] != [400] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [watermark(p) for p in graph_files(home)] == [400]  # the old file is gone
    fresh = SQLiteStore(home / "cache.db")
    assert_matches_exact(fresh, QUESTIONS[300:400:4])
    assert len(fresh._graphs[NS].index) == 400


def wait_for_watermark(home: Path, expected: int) -> None:
    deadline = time.monotonic() + 60
    while [watermark(p) for p in graph_files(home)] != [expected] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [watermark(p) for p in graph_files(home)] == [expected]


def test_a_warm_process_has_graphs_built_without_waiting_for_them(home):
    writer = filled(home, 150)
    warm = SQLiteStore(home / "cache.db", memory_index=True)
    assert_matches_exact(warm, QUESTIONS[:150:10])  # exact in memory; a build starts aside
    wait_for_watermark(home, 150)
    picked_up(warm, 150, QUESTIONS[:150:10])
    writer.store_many(items(QUESTIONS[150:260]))  # another connection writes 110 rows
    assert_matches_exact(warm, QUESTIONS[150:260:10])  # found at once, in memory
    wait_for_watermark(home, 260)
    picked_up(warm, 260, QUESTIONS[150:260:10])  # and the newer graph replaced the old one


def picked_up(warm: SQLiteStore, expected: int, questions: list[str]) -> None:
    """The warm store's searches stay exact, and one of them soon uses the graph of
    `expected` rows. Soon, not at once: the builder writes the graph's file before it
    records the graph in the cache file, and a search picks the graph up once that commit
    is there (the next one after it)."""
    deadline = time.monotonic() + 30
    while True:
        assert_matches_exact(warm, questions)
        graph = warm._graphs.get(NS)
        if (graph is not None and graph.watermark == expected) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert graph is not None and graph.watermark == expected


@pytest.mark.parametrize("warm", [False, True])
def test_deleted_and_expired_entries_never_come_back(home, warm):
    store = filled(home)
    store.build_index(NS)
    reader = SQLiteStore(home / "cache.db", memory_index=warm)
    reader.search(NS, probe(QUESTIONS[0]), 5, time.time())  # graph loaded before the deletes
    doomed = QUESTIONS[:300:3]
    for q in doomed[: len(doomed) // 2]:
        assert store.delete(store.lookup(exact_key(NS, q), time.time()).id)
    expired = doomed[len(doomed) // 2 :]
    marks = ",".join("?" * len(expired))
    store._conn.execute(f"UPDATE entries SET expires_at = 1 WHERE question IN ({marks})", expired)
    store._conn.commit()
    gone = set(doomed)
    for q in doomed:
        found = reader.search(NS, probe(q), 5, time.time())
        assert not gone & {c.entry.question for c in found}
    assert_matches_exact(reader, doomed)  # the nearest live entry is returned instead


def test_a_graph_with_many_deleted_rows_is_rebuilt(home):
    store = filled(home)
    store.build_index(NS)
    for q in QUESTIONS[:100]:
        store.delete(store.lookup(exact_key(NS, q), time.time()).id)
    graph = store.build_index(NS)
    assert len(graph.index) == 200  # rebuilt from the 200 live rows, not extended


def test_namespaces_never_share_candidates(home):
    store = SQLiteStore(home / "cache.db")
    store.store_many(items(QUESTIONS[:200], namespace="a"))
    store.store_many(items(QUESTIONS[200:400], namespace="b"))
    store.build_index("a")
    store.build_index("b")
    cold = SQLiteStore(home / "cache.db")
    for q in QUESTIONS[:200:10]:
        assert {c.entry.namespace for c in cold.search("b", probe(q), 5, time.time())} == {"b"}


def test_a_damaged_graph_file_costs_nothing_and_is_rebuilt(home):
    store = filled(home)
    store.build_index(NS)
    (path,) = graph_files(home)
    path.write_bytes(path.read_bytes()[:5000])
    cold = SQLiteStore(home / "cache.db")
    assert_matches_exact(cold, QUESTIONS[:300:15])  # falls back to the exact scan...
    assert len(store.build_index(NS, wait=True).index) == 300  # ...and started a rebuild
    assert graph_files(home) != [path]
    assert len(SQLiteStore(home / "cache.db")._graph(NS).index) == 300


KILLED_DURING_SAVE = """
import os, sys
from usearch.index import Index
from thrift_cli.store import SQLiteStore
def die(self, path, *a, **k):
    with open(path, "wb") as f:
        f.write(b"half a graph")
    os._exit(9)
Index.save = die
from pathlib import Path
SQLiteStore(Path(sys.argv[1])).build_index(sys.argv[2])
"""


def test_a_build_killed_while_saving_leaves_the_previous_graph(home):
    store = filled(home)
    store.build_index(NS)
    store.store_many(items(QUESTIONS[300:360]))
    proc = subprocess.run([sys.executable, "-c", KILLED_DURING_SAVE, str(home / "cache.db"), NS])
    assert proc.returncode == 9
    assert [watermark(p) for p in graph_files(home)] == [300]  # never a half-written graph
    assert_matches_exact(SQLiteStore(home / "cache.db"), QUESTIONS[:360:12])
    assert len(store.build_index(NS, wait=True).index) == 360  # the lookup above may have started one


WRITER = """
import sys
from thrift_cli import hnsw
from thrift_cli.cache import SemanticCache
hnsw.REFRESH_AT = 50
questions = sys.stdin.read().splitlines()
cache = SemanticCache(home=sys.argv[1], namespace=sys.argv[2])
for start in range(0, len(questions), 10):
    cache.store_many([(q, "answer: " + q) for q in questions[start : start + 10]])
    cache.explain(questions[start])  # a warm process: builds and refreshes the graph as it goes
"""


def test_concurrent_writers_lose_nothing(home, thrift):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), NS], stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    for i, proc in enumerate(procs):
        proc.stdin.write("\n".join(QUESTIONS[i * 150 : (i + 1) * 150]).encode())
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert thrift("index").code == 0
    store = SQLiteStore(home / "cache.db")
    assert store.count(NS) == 450
    graph = store._graph(NS)
    assert graph is not None and len(graph.index) >= 450  # rows are never dropped from a graph
    for q in QUESTIONS[:450:9]:
        v = EMBED.embed([q])[0]
        assert store.search(NS, v, 1, time.time())[0].entry.question == q


FILLER = """
import sys
from thrift_cli.cache import SemanticCache
questions = sys.stdin.read().splitlines()
cache = SemanticCache(home=sys.argv[1], namespace=sys.argv[2], memory_index=False)
print("ready", flush=True)
while True:
    for start in range(0, len(questions), 20):
        cache.store_many([(q, "answer: " + q) for q in questions[start : start + 20]])
    questions = [q + " again" for q in questions]
"""


def test_a_writer_killed_mid_import_leaves_a_consistent_store(home, thrift):
    proc = subprocess.Popen(
        [sys.executable, "-c", FILLER, str(home), NS], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    proc.stdin.write("\n".join(QUESTIONS[:300]).encode())
    proc.stdin.close()
    assert proc.stdout.readline() == b"ready\n"
    watcher, deadline = SQLiteStore(home / "cache.db"), time.monotonic() + 120
    while watcher.count(NS) < 120 and time.monotonic() < deadline:  # past the graph's minimum
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = SQLiteStore(home / "cache.db")
    count = store.count(NS)
    assert count >= 120 and count % 20 == 0  # whole transactions only
    assert store._read("SELECT count(*) FROM entry_vectors")[0][0] == count
    assert (
        thrift("index").stdout.decode().strip()
        == f"{NS}: {count} entries, index up to date ({count} vectors)"
    )
    assert_matches_exact(SQLiteStore(home / "cache.db"), QUESTIONS[: min(count, 300) : 10])


def test_a_copied_cache_file_works_and_gets_its_own_graph(home, tmp_path, thrift):
    store = filled(home)
    store.build_index(NS)
    store.close()
    other = tmp_path / "other-machine"
    other.mkdir()
    shutil.copy(home / "cache.db", other / "cache.db")  # the file alone, no index directory
    copy = SQLiteStore(other / "cache.db")
    assert_matches_exact(copy, QUESTIONS[:300:15])
    ran = thrift("index", env={"THRIFT_HOME": str(other)})
    assert ran.code == 0 and "index up to date (300 vectors)" in ran.stdout.decode()
    assert len(graph_files(other)) == 1


def test_a_restored_backup_ignores_graphs_newer_than_itself(home, tmp_path):
    store = filled(home, 200)
    store.close()
    backup = tmp_path / "backup.db"
    shutil.copy(home / "cache.db", backup)
    store = SQLiteStore(home / "cache.db")
    store.store_many(items(QUESTIONS[200:300]))
    store.build_index(NS)  # a graph up to row 300
    store.close()
    shutil.copy(backup, home / "cache.db")  # back to 200 rows; the graph stays behind
    for suffix in ("-wal", "-shm"):
        (home / f"cache.db{suffix}").unlink(missing_ok=True)
    restored = SQLiteStore(home / "cache.db")
    restored.store_many(items(QUESTIONS[400:500]))  # rows 201..300 again, other questions
    assert restored._graph(NS) is None  # its watermark (300) was past the store's rows (200)
    assert_matches_exact(restored, QUESTIONS[400:500:10] + QUESTIONS[:200:20])


def test_thrift_index_reports_each_namespace(home, thrift):
    store = filled(home, 120)
    store.store_many(items(QUESTIONS[:5], namespace="tiny"))
    ran = thrift("index")
    assert ran.code == 0
    assert ran.stdout.decode().splitlines() == [
        f"{NS}: 120 entries, index up to date (120 vectors)",
        "tiny: 5 entries, searched exactly (no index below 100)",
    ]
    assert thrift("index", "--quiet").stdout == b""


def test_a_graph_damaged_in_place_is_repaired_by_thrift_index(home, thrift):
    store = filled(home)
    store.build_index(NS)
    (path,) = graph_files(home)
    data = bytearray(path.read_bytes())
    for i in range(1000, len(data), 997):
        data[i] ^= 0xFF  # same size, other bytes: only the checksum can tell
    path.write_bytes(bytes(data))
    # A long-lived process verifies the checksum before it maps a graph: an exact scan.
    assert_matches_exact(SQLiteStore(home / "cache.db", memory_index=True), QUESTIONS[:300:15])
    ran = thrift("index")
    assert ran.code == 0 and f"{NS}: 300 entries, index up to date (300 vectors)" in ran.stdout.decode()
    assert graph_files(home) != [path]
    assert_matches_exact(SQLiteStore(home / "cache.db"), QUESTIONS[:300:15])


def test_an_index_that_cannot_be_written_costs_nothing_but_speed(home, thrift):
    store = filled(home)
    (home / "index").write_text("a file where the index directory goes")
    assert_matches_exact(SQLiteStore(home / "cache.db"), QUESTIONS[:300:30])  # exact scan
    assert_matches_exact(SQLiteStore(home / "cache.db", memory_index=True), QUESTIONS[:300:30])
    ran = thrift("index")
    assert ran.code == 1
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith(f"thrift: cannot build the index of {NS!r} in {home / 'index'}: ")
    assert store.count(NS) == 300


def test_a_process_that_built_a_graph_can_load_onnxruntime_after(tmp_path):
    """usearch imported first made a later `import onnxruntime` crash the process."""
    code = (
        "import sys, numpy as np; from pathlib import Path; from thrift_cli import hnsw\n"
        "rows = [(i + 1, np.eye(384, dtype=np.float32)[i % 384].tobytes()) for i in range(50)]\n"
        "graph = hnsw.build(Path(sys.argv[1]), 'ns', lambda: None,\n"
        "    lambda _ns, after, limit: rows[after:after + limit], lambda _ns, _u: 0, 384, lambda _n: None)\n"
        "import onnxruntime\n"
        "print(len(graph.index))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "50"


def test_a_warm_embedder_after_usearch_falls_back_to_numpy_instead_of_crashing(tmp_path):
    code = (
        "import sys; import usearch.index\n"
        "from thrift_cli.embed import default_embedder\n"
        "e = default_embedder(warm=True, home=__import__('pathlib').Path(sys.argv[1]))\n"
        "print(type(e).__name__, 'onnxruntime' in sys.modules, e.embed(['hello']).shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["MiniLMEmbedder", "False", "(1,", "384)"]
