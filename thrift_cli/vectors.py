"""The one encoding of vectors on disk: little-endian float32, read by numpy and sqlite-vec.

numpy is imported on first use: an exact hit stores and reads no vector, and importing
numpy would add ~70 ms to every such `thrift ask`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def encode(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode(blob: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)
