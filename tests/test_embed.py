"""The numpy all-MiniLM-L6-v2 gives sentence-transformers' vectors, without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from thrift_cli.embed import HashEmbedder, default_embedder

TEXTS = [
    "How do I learn to code quickly?",
    "How can I learn to code fast?",
    "What is the best way to lose weight?",
    "flights from New York to Florida",
    "Café au lait, naïve façade — 東京 and emoji 🚀",
    "a",
    " ".join(["token"] * 400),  # longer than the model's 256 tokens: truncated the same way
]


def test_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer  # torch: only here, never in thrift

    from thrift_cli.minilm import model_dir

    reference = SentenceTransformer(str(model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)
    ours = default_embedder().embed(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999
    assert np.abs(ours - reference).max() < 1e-4


def test_batches_give_the_same_vectors_as_single_texts():
    embedder = default_embedder()
    batch = embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.allclose(embedder.embed([text])[0], batch[i], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_different_questions():
    v = default_embedder().embed(TEXTS[:3])
    assert v[0] @ v[1] > 0.85 > v[0] @ v[2]


def test_loading_the_model_imports_no_torch():
    code = (
        "import sys; from thrift_cli.embed import default_embedder; default_embedder().embed(['hi']); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_hash_embedder_is_deterministic_and_unit_length():
    a, b = HashEmbedder().embed(["same words here", "same words here"])
    assert np.array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0)
