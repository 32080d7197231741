"""Embedders: the real all-MiniLM-L6-v2 and a deterministic fake for unit tests."""

from __future__ import annotations

import hashlib
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


# What a cache records as its model (meta `embedding_model`: name/dim) when the default
# embedder writes its vectors; spelled out here so that checking a file's vectors against
# it (`thrift import` of an export) needs no import of the model's module.
# tests/test_export.py checks it against thrift_cli.minilm.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2/384"


class Embedder(Protocol):
    """Turns texts into unit vectors; `name` says which model, so a cache never mixes two."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class HashEmbedder:
    """Bag of hashed words and word pairs: deterministic, instant, no model.

    Questions that share words get similar vectors, which is enough to test the cache's
    logic. It knows nothing of meaning; never use it to judge paraphrases.
    """

    name = "test/hash-words"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.casefold())
            for feature in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


_defaults: dict[bool, Embedder] = {}
_default_lock = threading.Lock()


def default_embedder(*, warm: bool = False, home: Path | None = None) -> Embedder:
    """The process-wide all-MiniLM-L6-v2 embedder, loaded on first use.

    Both give the same vectors (within 1e-6 of sentence-transformers). `warm=False`, for a
    process that embeds once (`thrift ask`): numpy, which loads in ~0.1 s. `warm=True`, for
    one that embeds many times (the API, `thrift import`): ONNX Runtime, ~0.3 s to load and
    ~3x faster per text; numpy again if ONNX Runtime is missing or its model cannot be built
    under `home` (default `THRIFT_HOME`), or if usearch was imported first (an onnxruntime
    imported after usearch crashes the process; see hnsw._before_usearch).
    """
    with _default_lock:
        if warm not in _defaults:
            _defaults[warm] = _load(warm, home)
        return _defaults[warm]


def _load(warm: bool, home: Path | None) -> Embedder:
    from thrift_cli.minilm import MiniLMEmbedder

    if warm and ("onnxruntime" in sys.modules or "usearch.index" not in sys.modules):
        from thrift_cli.errors import EmbedError
        from thrift_cli.home import thrift_home

        try:
            from thrift_cli.minilm_onnx import OnnxMiniLMEmbedder

            return OnnxMiniLMEmbedder(home or thrift_home())
        except (ImportError, EmbedError, OSError):
            pass
    return MiniLMEmbedder()
