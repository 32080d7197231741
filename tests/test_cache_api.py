"""The Python API: ThriftLM-compatible names, typed results, events."""

from __future__ import annotations

import pytest

from thrift_cli import CacheHit, MemoryTier, SemanticCache
from thrift_cli.embed import HashEmbedder
from thrift_cli.errors import StoreError, UsageError


def memory_cache(**kw) -> SemanticCache:
    # verify=False: hashed words have no meaning for the verifier to read.
    return SemanticCache(tier=MemoryTier(), embedder=HashEmbedder(), **{"verify": False, **kw})


class Counter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, question: str) -> str:
        self.calls.append(question)
        return f"answer to {question}"


def test_get_or_call_calls_once_per_question():
    cache, llm = memory_cache(), Counter()
    assert cache.get_or_call("What is RAG?", llm) == "answer to What is RAG?"
    assert cache.get_or_call("what is rag", llm) == "answer to What is RAG?"
    assert llm.calls == ["What is RAG?"]


def test_lookup_returns_typed_hits():
    cache = memory_cache(min_similarity=0.5)
    assert cache.lookup("how to bake bread at home") is None
    cache.store("how to bake bread", "knead, rise, bake")
    exact = cache.lookup("How to bake bread?")
    assert isinstance(exact, CacheHit)
    assert (exact.tier, exact.similarity, exact.answer) == ("exact", 1.0, "knead, rise, bake")
    near = cache.lookup("how to bake bread at home")
    assert near is not None and near.tier == "semantic"
    assert 0.5 <= near.similarity < 1.0 and near.question == "how to bake bread"


def test_thriftlm_names_threshold_and_api_key(tmp_path):
    cache = SemanticCache(threshold=0.9, api_key="sk-secret-123", home=tmp_path)
    assert cache.min_similarity == 0.9
    assert cache.namespace.startswith("key:") and "sk-secret" not in cache.namespace
    other = SemanticCache(threshold=0.9, api_key="sk-other", home=tmp_path)
    cache.store("What is RAG?", "retrieval augmented generation")
    assert other.lookup("What is RAG?") is None  # each key is its own cache
    assert b"sk-secret-123" not in (tmp_path / "cache.db").read_bytes()
    with pytest.raises(UsageError):
        SemanticCache(min_similarity=0.8, threshold=0.9, home=tmp_path)


@pytest.mark.parametrize("bad", [1.5, 0, -1, float("nan")])
def test_bad_min_similarity_is_a_value_error(bad):
    with pytest.raises(ValueError, match="min_similarity"):
        memory_cache(min_similarity=bad)


def test_failed_or_empty_answers_are_not_stored():
    cache = memory_cache()

    def boom(question: str) -> str:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        cache.get_or_call("What is RAG?", boom)
    assert cache.get_or_call("What is RAG?", lambda q: "  ") == "  "
    assert cache.lookup("What is RAG?") is None
    with pytest.raises(UsageError):
        cache.store("What is RAG?", "")
    with pytest.raises(UsageError):
        cache.lookup("   ")


def test_every_lookup_records_an_event():
    tier = MemoryTier()
    cache = SemanticCache(tier=tier, embedder=HashEmbedder())
    cache.get_or_call("What is RAG?", Counter())
    cache.get_or_call("What is RAG?", Counter())
    cache.lookup("something else entirely")
    assert [(e.tier, e.outcome) for e in tier.events] == [
        ("miss", "stored"),
        ("exact", None),
        ("miss", "lookup"),
    ]
    assert tier.events[0].call_ms is not None and tier.events[1].answer_bytes == len("answer to What is RAG?")


def test_ttl_and_forget(tmp_path):
    cache = SemanticCache(home=tmp_path, embedder=HashEmbedder(), ttl=3600)
    entry = cache.store("What is RAG?", "r.a.g.")
    assert entry.expires_at == pytest.approx(entry.created_at + 3600)
    assert cache.forget("what is rag") is True
    assert cache.lookup("What is RAG?") is None


def test_persisted_across_instances_with_the_real_model(tmp_path):
    with SemanticCache(home=tmp_path, namespace="docs") as first:
        first.store("How do I learn to code quickly?", "practice daily")
    with SemanticCache(home=tmp_path, namespace="docs") as second:
        hit = second.lookup("How can I learn to code fast?")
        assert hit is not None and hit.tier == "semantic" and hit.answer == "practice daily"


def test_a_cache_never_mixes_embedding_models(tmp_path):
    SemanticCache(home=tmp_path, embedder=HashEmbedder()).store("What is RAG?", "r.a.g.")
    with pytest.raises(StoreError, match="vectors come from"):
        SemanticCache(home=tmp_path).lookup("Tell me about retrieval")


def test_bad_namespace_and_unencodable_answers():
    with pytest.raises(UsageError, match="namespace"):
        SemanticCache(namespace=5, tier=MemoryTier(), embedder=HashEmbedder())  # type: ignore[arg-type]
    cache = memory_cache()
    broken = "half a surrogate \ud800"
    assert cache.get_or_call("What is RAG?", lambda q: broken) == broken  # paid for: returned
    assert cache.lookup("What is RAG?") is None  # ... but never stored
