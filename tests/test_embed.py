"""Both all-MiniLM-L6-v2 embedders give sentence-transformers' vectors, without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thrift_cli.embed import HashEmbedder
from thrift_cli.minilm import MiniLMEmbedder, model_dir
from thrift_cli.minilm_onnx import OnnxMiniLMEmbedder, cached_model

TEXTS = [
    "How do I learn to code quickly?",
    "How can I learn to code fast?",
    "What is the best way to lose weight?",
    "flights from New York to Florida",
    "Café au lait, naïve façade — 東京 and emoji 🚀",
    "a",
    " ".join(["token"] * 400),  # longer than the model's 256 tokens: truncated the same way
]


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="module", params=["numpy", "onnx"])
def embedder(request: pytest.FixtureRequest, onnx_home: Path):
    return MiniLMEmbedder() if request.param == "numpy" else OnnxMiniLMEmbedder(onnx_home)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer  # torch: only here, never in thrift

    return SentenceTransformer(str(model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)


def test_matches_sentence_transformers(embedder, reference):
    ours = embedder.embed(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999
    assert np.abs(ours - reference).max() < 1e-4


def test_batches_give_the_same_vectors_as_single_texts(embedder):
    batch = embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.allclose(embedder.embed([text])[0], batch[i], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_different_questions(embedder):
    v = embedder.embed(TEXTS[:3])
    assert v[0] @ v[1] > 0.85 > v[0] @ v[2]


@pytest.mark.parametrize("warm", [False, True])
def test_loading_the_model_imports_no_torch(warm, tmp_path):
    code = (
        f"import sys; from thrift_cli.embed import default_embedder; e = default_embedder(warm={warm}); "
        "e.embed(['hi']); print(type(e).__name__, "
        "sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    env = {**os.environ, "THRIFT_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split(maxsplit=1) == ["OnnxMiniLMEmbedder" if warm else "MiniLMEmbedder", "[]\n"]


def test_onnx_model_is_built_once_and_survives_damage(tmp_path):
    path = cached_model(tmp_path)
    assert path.parent == tmp_path / "models" and path.stat().st_size > 80_000_000
    mtime = path.stat().st_mtime_ns
    assert cached_model(tmp_path) == path and path.stat().st_mtime_ns == mtime  # not rebuilt
    path.write_bytes(path.read_bytes()[:1000])  # a damaged file, e.g. a disk filled up outside thrift
    vector = OnnxMiniLMEmbedder(tmp_path).embed(["How do I learn to code quickly?"])[0]
    assert vector @ MiniLMEmbedder().embed(["How do I learn to code quickly?"])[0] > 0.9999
    assert path.stat().st_size > 80_000_000  # rebuilt: the same bytes, so the same name


def test_an_interrupted_onnx_build_leaves_no_model_file(tmp_path):
    code = (
        "import os, sys; from pathlib import Path; import thrift_cli.minilm_onnx as m; "
        "real = os.replace\n"
        "def die(src, dst): os._exit(9)  # killed between writing and renaming\n"
        "m.os.replace = die; m.cached_model(Path(sys.argv[1]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True)
    assert proc.returncode == 9
    assert not list((tmp_path / "models").glob("*.onnx"))  # only a temporary file, never a half model
    assert OnnxMiniLMEmbedder(tmp_path).embed(["hi"]).shape == (1, 384)
    assert len(list((tmp_path / "models").glob("*.onnx"))) == 1


def test_hash_embedder_is_deterministic_and_unit_length():
    a, b = HashEmbedder().embed(["same words here", "same words here"])
    assert np.array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0)


def test_an_onnx_model_damaged_in_place_is_rebuilt(tmp_path):
    path = cached_model(tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1000] = bytes(1000)  # still loads; its weights are wrong
    path.write_bytes(bytes(data))
    text = ["How do I learn to code quickly?"]
    vector = OnnxMiniLMEmbedder(tmp_path).embed(text)[0]
    assert vector @ MiniLMEmbedder().embed(text)[0] > 0.9999
    assert path.read_bytes() != bytes(data)  # rebuilt: its checksum no longer matched its name


def test_batches_hold_texts_of_similar_length_only():
    """Padding costs as much as real tokens: a short text never waits in a long one's batch."""
    from tokenizers import Tokenizer

    from thrift_cli.minilm import BATCH_SIZE, SPREAD, padded_batches

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    texts = [" ".join(["word"] * (i % 50 + 1)) for i in range(200)]
    seen: list[int] = []
    for rows, ids, mask in padded_batches(tokenizer, texts):
        lengths = mask.sum(axis=1)
        assert len(rows) <= BATCH_SIZE and ids.shape == mask.shape == (len(rows), lengths.max())
        assert lengths.max() <= lengths.min() * SPREAD + 2
        seen += rows
    assert sorted(seen) == list(range(len(texts)))
