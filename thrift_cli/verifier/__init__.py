"""The verifier: a second look at a semantic candidate, the query and it read together.

A cosine compares two vectors made apart; "How do I encrypt a file?" and "How do I
decrypt a file?" get 0.9 because the vectors cannot see that the one word that differs is
the one that matters. A cross-encoder reads both texts in one pass, attention running
across them, and gives the probability that one answer fits both.

This one is the first four layers of the packaged all-MiniLM-L6-v2, fine-tuned as a
cross-encoder by `scripts/train_verifier.py` (its data, split and hyperparameters are in
`card.json`). It runs in numpy, with minilm.py's encoder, and reuses the embedding model's
word table rather than shipping a copy, so only `weights.safetensors` (float16) ships
here, checked against the SHA-256 in `card.json` when it is loaded. The cache loads it
only when a lookup has a candidate above the similarity floor.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrift_cli import minilm
from thrift_cli.errors import EmbedError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Card:
    """What `card.json` says of the weights beside it."""

    sha256: str
    layers: int
    max_tokens: int
    threshold: float  # serve when the score is at least this (chosen on calibration pairs)

    @classmethod
    def read(cls, path: Path) -> Card:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["sha256"], data["layers"], data["max_tokens"], data["threshold"])


class Verifier:
    """Scores (query, candidate) pairs: the probability that one answer serves both."""

    def __init__(self, path: Path = HERE, model: Path | None = None) -> None:
        from tokenizers import Tokenizer

        weights = path / "weights.safetensors"
        try:
            self.card = Card.read(path / "card.json")
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        except (OSError, ValueError, KeyError) as exc:
            raise EmbedError(
                f"the verifier is missing or unreadable in {path} ({exc}); reinstall thrift-cli"
            ) from None
        if digest != self.card.sha256:
            raise EmbedError(f"the verifier's weights {weights} fail their checksum; reinstall thrift-cli")
        model = model or minilm.model_dir()
        self._tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.card.max_tokens, strategy="longest_first")
        w = {k: np.asarray(v, dtype=np.float32) for k, v in minilm.read_safetensors(weights).items()}
        self._word = minilm.read_safetensors(model / "model.safetensors")["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"]
        self._emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = minilm.load_layers(w, self.card.layers)
        self._head = (w["head.weight"][0], w["head.bias"][0])

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def score(self, query: str, candidate: str) -> float:
        return float(self.scores([(query, candidate)])[0])

    def scores(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Probabilities for each (query, candidate), in padded batches of similar length."""
        out = np.empty(len(pairs), dtype=np.float32)
        for rows, ids, mask, types in minilm.padded(self._tokenizer.encode_batch(pairs)):
            weights = mask.astype(np.float32)
            x = self._word[ids] + self._position[: ids.shape[1]] + self._token_type[types]
            x = minilm.encode(minilm._layer_norm(x, *self._emb_norm), weights, self._layers)
            logits = minilm.mean_pool(x, weights) @ self._head[0] + self._head[1]
            out[rows] = 1.0 / (1.0 + np.exp(-logits))
        return out


_LOADED: Verifier | None = None
_LOCK = threading.Lock()


def shared() -> Verifier:
    """The process's verifier, loaded on first use (~0.1 s, its checksum included), then kept."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            _LOADED = Verifier()
        return _LOADED
