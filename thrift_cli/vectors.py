"""The one encoding of vectors on disk: little-endian float32, read by numpy and sqlite-vec."""

from __future__ import annotations

import numpy as np

_LE_F32 = np.dtype("<f4")


def encode(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=_LE_F32).tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_LE_F32).astype(np.float32, copy=False)
