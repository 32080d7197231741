"""Embedders: the real all-MiniLM-L6-v2 and a deterministic fake for unit tests."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


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


_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide all-MiniLM-L6-v2 embedder, loaded on first use (~0.2 s)."""
    global _default
    with _default_lock:
        if _default is None:
            from thrift_cli.minilm import MiniLMEmbedder

            _default = MiniLMEmbedder()
        return _default
