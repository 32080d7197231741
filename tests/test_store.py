"""The SQLite store: migrations, WAL, tiers' reads and writes, expiry, the pysqlite3 fallback."""

from __future__ import annotations

import numpy as np
import pytest

from thrift_cli import db
from thrift_cli.embed import HashEmbedder
from thrift_cli.errors import StoreError
from thrift_cli.keys import exact_key
from thrift_cli.models import CacheEntry, Event
from thrift_cli.store import SQLiteStore

EMBED = HashEmbedder()


def entry(question: str, namespace: str = "ns", **kw) -> tuple[CacheEntry, np.ndarray]:
    e = CacheEntry(namespace, question, exact_key(namespace, question), f"answer: {question}", **kw)
    return e, EMBED.embed([question])[0]


@pytest.fixture(params=["default", "pysqlite3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "pysqlite3":
        monkeypatch.setenv("THRIFT_SQLITE", "pysqlite3")
    s = SQLiteStore(tmp_path / "cache.db")
    yield s
    s.close()


def test_migrations_are_recorded_once_and_in_order(tmp_path):
    path = tmp_path / "cache.db"
    SQLiteStore(path).close()
    SQLiteStore(path).close()  # reopening applies nothing twice
    conn = db.sqlite_module().connect(str(path))
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
    assert names == [name for name, _ in db.migrations()]
    assert names[0] == "0001_initial"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_file_is_private(tmp_path):
    SQLiteStore(tmp_path / "home" / "cache.db").close()
    assert (tmp_path / "home" / "cache.db").stat().st_mode & 0o077 == 0
    assert (tmp_path / "home").stat().st_mode & 0o077 == 0


def test_exact_lookup_and_namespaces(store):
    e, v = entry("What is RAG?")
    store.store(e, v)
    assert store.lookup(e.question_hash, now=0).answer == "answer: What is RAG?"
    assert store.lookup(exact_key("other", "What is RAG?"), now=0) is None


def test_search_ranks_by_cosine_within_the_namespace(store):
    for q in ["how to bake bread", "how to bake sourdough bread", "tax rules in france"]:
        store.store(*entry(q))
    store.store(*entry("how to bake bread at home", namespace="elsewhere"))
    query = EMBED.embed(["how to bake bread at home"])[0]
    found = store.search("ns", query, k=5, now=0)
    assert [c.entry.question for c in found][:2] == ["how to bake bread", "how to bake sourdough bread"]
    assert all(c.entry.namespace == "ns" for c in found)
    expected = float(EMBED.embed(["how to bake bread"])[0] @ query)
    assert found[0].similarity == pytest.approx(expected, abs=1e-5)


def test_store_keeps_the_first_answer_unless_replace(store):
    e, v = entry("What is RAG?")
    store.store(e, v)
    second = CacheEntry("ns", "what is rag", e.question_hash, "another answer")
    assert store.store(second, v).answer == "answer: What is RAG?"
    assert store.store(second, v, replace=True).answer == "another answer"
    assert len(store.entries()) == 1
    assert len(store.search("ns", v, k=5, now=0)) == 1  # the old vector went with it


def test_expired_entries_are_invisible_then_purged(store):
    old, v = entry("old news", expires_at=100.0)
    store.store(old, v)
    assert store.lookup(old.question_hash, now=99.0) is not None
    assert store.lookup(old.question_hash, now=100.0) is None
    assert store.search("ns", v, k=5, now=100.0) == []
    store.store(*entry("fresh news"))  # a write purges what has expired
    assert [e.question for e in store.entries()] == ["fresh news"]


def test_delete_removes_entry_and_vector(store):
    e, v = entry("What is RAG?")
    store.store(e, v)
    assert store.delete(e.id) is True
    assert store.delete(e.id) is False
    assert store.search("ns", v, k=5, now=0) == [] and store.entries() == []


def test_hits_and_events_are_counted(store):
    e, v = entry("What is RAG?")
    store.store(e, v)
    store.record_hit(e, Event("ns", "exact", 0.5, 1.0, 10, entry_id=e.id, at=123.0))
    store.record(Event("ns", "miss", 2.0, outcome="stored"))
    (stored,) = store.entries()
    assert stored.hit_count == 1 and stored.last_hit_at == 123.0
    assert [(ev.tier, ev.outcome) for ev in store.events()] == [("exact", None), ("miss", "stored")]


def test_meta_is_claimed_once(store):
    assert store.claim_meta("embedding_model", "a/384") == "a/384"
    assert store.claim_meta("embedding_model", "b/512") == "a/384"


def test_not_a_database(tmp_path):
    path = tmp_path / "cache.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="corrupt"):
        SQLiteStore(path)
    assert path.read_bytes() == b"garbage" * 1000


def test_the_sqlite_module_chosen_can_load_extensions(monkeypatch):
    assert hasattr(db.sqlite_module().Connection, "enable_load_extension")
    monkeypatch.setenv("THRIFT_SQLITE", "pysqlite3")
    assert db.sqlite_module().__name__ == "pysqlite3.dbapi2"


def test_memory_index_follows_other_connections(tmp_path):
    reader = SQLiteStore(tmp_path / "cache.db", memory_index=True)
    writer = SQLiteStore(tmp_path / "cache.db")
    bread, v_bread = entry("how to bake bread")
    tax, v_tax = entry("tax rules in france")
    writer.store(bread, v_bread)
    assert [c.entry.question for c in reader.search("ns", v_bread, 5, now=0)] == ["how to bake bread"]
    writer.store(tax, v_tax)  # another connection adds: the reader sees it
    assert reader.search("ns", v_tax, 1, now=0)[0].entry.question == "tax rules in france"
    writer.delete(bread.id)  # ... and deletes
    assert [c.entry.question for c in reader.search("ns", v_bread, 5, now=0)] == ["tax rules in france"]
    replaced = CacheEntry("ns", "tax rules in france", tax.question_hash, "new answer")
    writer.store(replaced, v_tax, replace=True)  # ... and replaces
    (only,) = reader.search("ns", v_tax, 5, now=0)
    assert only.entry.answer == "new answer"
    own, v_own = entry("how to bake sourdough bread")
    reader.store(own, v_own)  # its own writes too
    assert reader.search("ns", v_own, 1, now=0)[0].entry.id == own.id


def test_memory_index_and_sqlite_vec_agree(tmp_path):
    disk = SQLiteStore(tmp_path / "cache.db")
    memory = SQLiteStore(tmp_path / "cache.db", memory_index=True)
    questions = [f"item{i} group{i % 7} batch{i % 11}" for i in range(200)]
    disk.store_many([entry(q) for q in questions])
    for q in ["item3 group3 batch3 extra", "item42 group0", "item150 batch7 other words"]:
        v = EMBED.embed([q])[0]
        a, b = disk.search("ns", v, 5, now=0), memory.search("ns", v, 5, now=0)
        assert [c.similarity for c in a] == pytest.approx([c.similarity for c in b], abs=1e-5)
        assert a[0].similarity > a[1].similarity + 1e-4  # no tie at the top ...
        assert a[0].entry.id == b[0].entry.id  # ... so both must find the same best entry
