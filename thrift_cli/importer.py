"""`thrift import`: bulk-load question/answer pairs from JSONL, CSV, TSV or llm's logs.db.

Two passes over the file. The first reads every record, validates it and marks in-file
duplicates, so a bad line stores nothing. The second stores the records in chunks, each
embedded in batches and written in one transaction, so memory stays bounded whatever the
file's size. Questions already cached are found by key before anything is embedded: a
second import of the same file embeds nothing and stores nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import stat
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from thrift_cli import keys, vectors
from thrift_cli.errors import UsageError

if TYPE_CHECKING:
    from thrift_cli.cache import SemanticCache
    from thrift_cli.models import CacheEntry

QUESTION_KEYS = ("question", "prompt", "q", "input")
ANSWER_KEYS = ("answer", "response", "completion", "a", "output")
SQLITE_HEADER = b"SQLite format 3\x00"
# Pairs handed to SemanticCache.store_many at once: it embeds them in batches of
# cache.EMBED_BATCH, and no more than this many pairs per namespace wait in memory.
CHUNK = 512


class Exported(NamedTuple):
    """What a line of `thrift export` adds to its pair: the entry as it was stored, so an
    import makes the same entry again (each field None where the line lacks it)."""

    id: str | None
    created_at: float | None
    expires_at: float | None
    has_expires_at: bool  # `"expires_at": null` (never expires) is not a missing field
    last_hit_at: float | None
    hit_count: int | None
    embedding_model: str | None
    embedding: bytes | None  # the little-endian float32 blob, checked: stored as is


class Record(NamedTuple):
    """One question/answer pair; `line` says where it starts in the file (0 in a database)."""

    question: str
    answer: str
    namespace: str | None
    line: int
    exported: Exported | None = None


class Skipped(NamedTuple):
    """A row of an llm database that holds no reusable answer, and why."""

    reason: str


@dataclass
class ImportSummary:
    path: str
    format: str
    records: int = 0  # pairs read, in-file duplicates included, skipped rows not
    imported: int = 0  # entries written: new ones, and replaced ones under `replace`
    replaced: int = 0
    already_cached: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many rows
    namespaces: list[str] = field(default_factory=list)
    seconds: float = 0.0
    embedded: int = 0  # entries whose vector was computed here (not read from the file)
    warnings: list[str] = field(default_factory=list)  # e.g. an index that could not be built

    @property
    def entries_per_s(self) -> float:
        """Entries of the file now in the cache (written or found there), per second."""
        return (self.imported + self.already_cached) / self.seconds if self.seconds else 0.0


def import_file(
    path: str,
    *,
    namespace: str | None = None,
    ttl: float | None = None,
    ttl_wins: bool = False,
    replace: bool = False,
    home: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    scrub: bool | None = None,
) -> ImportSummary:
    """Store the pairs of `path` under `namespace`, or each record's own namespace.

    A record from `thrift export` keeps its id, times and hit count, and its vector when
    the line has one (nothing is embedded for it). `ttl` applies to records without an
    `expires_at` field, or to all of them if `ttl_wins` (an explicit --ttl).

    Raises UsageError, storing nothing, when the file cannot be read or any record is bad.
    `progress(done, total)` is called after each chunk. `scrub`: replace personal data
    in the answers (privacy.py); None follows the `scrub` setting.
    """
    from thrift_cli.cache import SemanticCache

    started = time.perf_counter()
    fmt = detect(path)
    summary = ImportSummary(path, fmt)
    duplicates, total, model = _validate(path, fmt, namespace, summary)
    caches: dict[str, SemanticCache] = {}
    pending: dict[str, list[tuple[Record, str]]] = {}
    done = 0

    def cache_for(ns: str) -> SemanticCache:
        if ns not in caches:  # one connection, shared by every namespace's cache
            first = next(iter(caches.values()), None)
            tier = first.tier if first is not None else None
            caches[ns] = SemanticCache(namespace=ns, home=home, tier=tier, scrub=scrub)
        return caches[ns]

    def flush(ns: str) -> None:
        nonlocal done
        batch = pending.pop(ns, [])
        _store(cache_for(ns), batch, ttl, ttl_wins, replace, summary)
        done += len(batch)
        if progress is not None:
            progress(done, total)

    try:
        if model is not None and summary.namespaces:  # before anything is written
            _check_model(cache_for(summary.namespaces[0]).tier, model[0], path, model[1])
        if progress is not None:
            progress(0, total)
        for index, item in enumerate(read(path, fmt)):
            if isinstance(item, Skipped) or index in duplicates:
                done += 1
                continue
            ns = namespace or item.namespace
            assert ns is not None  # _validate made sure
            batch = pending.setdefault(ns, [])
            batch.append((item, keys.exact_key(ns, item.question)))
            if len(batch) >= CHUNK:
                flush(ns)
        for ns in list(pending):
            flush(ns)
        _index(caches, summary)
    finally:
        if caches:
            next(iter(caches.values())).close()
    summary.seconds = time.perf_counter() - started
    return summary


def _index(caches: dict[str, SemanticCache], summary: ImportSummary) -> None:
    """Bring the HNSW graph of every large namespace imported into up to date now, so the
    next `thrift ask` does not start with an exact scan and a background build. A graph
    that cannot be built is a warning: the entries are stored, and searched exactly."""
    from thrift_cli import hnsw
    from thrift_cli.errors import StoreError
    from thrift_cli.store import SQLiteStore

    for ns, cache in caches.items():
        if isinstance(cache.tier, SQLiteStore) and cache.tier.count(ns) >= hnsw.min_entries():
            try:
                cache.tier.build_index(ns, wait=True)
            except StoreError as exc:
                summary.warnings.append(str(exc))


def _check_model(tier: Any, model: str, path: str, line: int) -> None:
    """The file's vectors must be those this cache holds (or, in a cache that holds none
    yet, those thrift computes): vectors of two models cannot be compared."""
    from thrift_cli.embed import DEFAULT_MODEL

    held = tier.meta("embedding_model")
    if held is None and model == DEFAULT_MODEL:
        held = tier.claim_meta("embedding_model", model)
    expected = held or DEFAULT_MODEL
    if model != expected:
        raise _bad(
            path,
            line,
            f"the embedding comes from {model}, but this cache's vectors "
            f"{'come' if held else 'would come'} from {expected}; import the file without its "
            "vectors (jq -c 'del(.embedding, .embedding_model)'), or into another THRIFT_HOME",
        )


def _validate(
    path: str, fmt: str, namespace: str | None, summary: ImportSummary
) -> tuple[set[int], int, tuple[str, int] | None]:
    """Read everything once: raise on the first bad record; return the positions of
    in-file duplicates (the first of a question wins), the number of items, and the
    embedding model of the file's vectors with the line of the first (None: no vectors)."""
    model: tuple[str, int] | None = None
    seen: set[str] = set()
    duplicates: set[int] = set()
    skipped: Counter[str] = Counter()
    namespaces: set[str] = set()
    index = -1
    for index, item in enumerate(read(path, fmt)):
        if isinstance(item, Skipped):
            skipped[item.reason] += 1
            continue
        ns = namespace or item.namespace
        if ns is None:
            raise _bad(
                path,
                item.line,
                "no namespace for this record: pass --namespace NAME, or the LLM command "
                "after -- (thrift import FILE -- llm -m MODEL)",
            )
        summary.records += 1
        if item.exported is not None and item.exported.embedding_model is not None:
            if model is None:
                model = (item.exported.embedding_model, item.line)
            elif item.exported.embedding_model != model[0]:
                raise _bad(
                    path,
                    item.line,
                    f"the embedding comes from {item.exported.embedding_model}, "
                    f"line {model[1]}'s from {model[0]}: one file, one model",
                )
        key = keys.exact_key(ns, item.question)
        if key in seen:
            duplicates.add(index)
            skipped["duplicate question"] += 1
        else:
            seen.add(key)
            namespaces.add(ns)
    summary.skipped = dict(skipped.most_common())
    summary.namespaces = sorted(namespaces)
    return duplicates, index + 1, model


def _store(
    cache: SemanticCache,
    batch: list[tuple[Record, str]],
    ttl: float | None,
    ttl_wins: bool,
    replace: bool,
    summary: ImportSummary,
) -> None:
    """Store one chunk of one namespace: look every key up first (an indexed read, far
    cheaper than an embedding) so only new or changed answers are embedded, and a
    record that brings its vector is not embedded at all."""
    from thrift_cli.cache import EMBED_BATCH, clean_question

    now = time.time()
    todo: list[tuple[Record, str, bool]] = []  # (record, key, replaces an entry)
    for record, key in batch:
        if cache.scrubber is not None:  # what would be stored is what --replace compares
            record = record._replace(answer=cache.scrubber.scrub(record.answer).text)
        held = cache.tier.lookup(key, now)
        if held is None:
            todo.append((record, key, False))
        elif replace and held.answer != record.answer:
            todo.append((record, key, True))
        else:
            summary.already_cached += 1
    for start in range(0, len(todo), EMBED_BATCH):
        chunk = []
        for record, key, replaces in todo[start : start + EMBED_BATCH]:
            entry = _entry(cache, record, key, clean_question(record.question), ttl, ttl_wins, now)
            if entry.expired(now):  # exported live, dead by now: not worth an embedding
                summary.skipped["expired"] = summary.skipped.get("expired", 0) + 1
            else:
                chunk.append((record, entry, replaces))
        embed = [
            i
            for i, (record, _, _) in enumerate(chunk)
            if record.exported is None or not record.exported.embedding
        ]
        computed = dict(zip(embed, cache.queries([chunk[i][1].question for i in embed]), strict=True))
        summary.embedded += len(embed)
        fresh: list[tuple[CacheEntry, Any]] = []
        changed: list[tuple[CacheEntry, Any]] = []
        for i, (record, entry, replaces) in enumerate(chunk):
            if i in computed:
                vector = computed[i].vector
            else:
                assert record.exported is not None and record.exported.embedding is not None
                vector = vectors.decode(record.exported.embedding)
            (changed if replaces else fresh).append((entry, vector))
        if fresh:
            for stored, (entry, _) in zip(cache.tier.store_many(fresh), fresh, strict=True):
                # Another process may have stored the question since the lookup: its entry stays.
                if stored.id == entry.id:
                    summary.imported += 1
                else:
                    summary.already_cached += 1
        if changed:
            cache.tier.store_many(changed, replace=True)
            summary.imported += len(changed)
            summary.replaced += len(changed)


def _entry(
    cache: SemanticCache,
    record: Record,
    key: str,
    question: str,
    ttl: float | None,
    ttl_wins: bool,
    now: float,
) -> CacheEntry:
    """The entry a record makes: an exported one as it was (its id too, unless another
    question's entry in this cache has that id), any other one new, created now."""
    from thrift_cli.models import CacheEntry

    e = record.exported
    expires_at = None if ttl is None else now + ttl
    if e is not None and e.has_expires_at and not ttl_wins:
        expires_at = e.expires_at
    entry = CacheEntry(
        namespace=cache.namespace,
        question=question,
        question_hash=key,
        answer=record.answer,
        created_at=now if e is None or e.created_at is None else e.created_at,
        expires_at=expires_at,
        last_hit_at=None if e is None else e.last_hit_at,
        hit_count=0 if e is None or e.hit_count is None else e.hit_count,
    )
    if e is not None and e.id is not None:
        held = cache.tier.entry(e.id)
        if held is None or held.question_hash == key:
            entry = dataclasses.replace(entry, id=e.id)
    return entry


# -- formats -------------------------------------------------------------------------


def detect(path: str) -> str:
    """`jsonl`, `json` (an array), `csv`, `tsv` or `llm`: by content, then by extension."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe could not be read twice
            raise UsageError(f"{path} is not a regular file: save it to one first, or give it as - (stdin)")
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(SQLITE_HEADER):
        return "llm"
    suffix = Path(path).suffix.lower()
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json" if text.startswith(b"[") else "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".db", ".sqlite", ".sqlite3"):
        raise UsageError(f"{path} is not a SQLite database")
    first = text.split(b"\n", 1)[0]
    if first.startswith(b"{"):
        return "jsonl"
    if first.startswith(b"["):
        return "json"
    if b"\t" in first:
        return "tsv"
    if b"," in first:
        return "csv"
    raise UsageError(f"cannot tell the format of {path}: name it .jsonl, .csv or .tsv, or give llm's logs.db")


def read(path: str, fmt: str) -> Iterator[Record | Skipped]:
    """The records of `path`, read as `fmt` (see `detect`)."""
    if fmt == "llm":
        from thrift_cli.llm_logs import read_logs

        return read_logs(path)
    return {"jsonl": _jsonl, "json": _json_array, "csv": _csv, "tsv": _tsv}[fmt](path)


def _jsonl(path: str) -> Iterator[Record]:
    with _open(path) as f:
        for number, text in _lines(f, path):
            if text.strip():
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise _bad(path, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
                yield _from_object(obj, path, number)


def _json_array(path: str) -> Iterator[Record]:
    with _open(path) as f:
        data = f.read()
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _bad(path, data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, exc.lineno, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(items, list):
        raise UsageError(f"{path}: expected a JSON array of objects or one object per line")
    for number, obj in enumerate(items, 1):
        yield _from_object(obj, path, number, where="item")


def _csv(path: str) -> Iterator[Record]:
    # Answers are often longer than csv's default field limit of 128 KiB.
    csv.field_size_limit(2**31 - 1)
    with _open(path) as f:
        lines = _lines(f, path)
        reader = csv.reader((text for _, text in lines), strict=True)
        start = 1  # the line a record starts on: a quoted field may span several
        try:
            header = next(reader, None)
            if header is None:
                raise UsageError(f"{path}: empty file, expected a header row")
            columns = _columns(header, path)
            start = reader.line_num + 1
            for row in reader:
                if row:
                    yield _from_row(row, columns, len(header), path, start)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise _bad(path, start, f"bad CSV ({exc})") from None


def _tsv(path: str) -> Iterator[Record]:
    # Like the benchmark files: no quoting, no tab or newline inside a field.
    with _open(path) as f:
        lines = _lines(f, path)
        first = next(lines, None)
        if first is None:
            raise UsageError(f"{path}: empty file, expected a header row")
        header = first[1].rstrip("\r\n").split("\t")
        columns = _columns(header, path)
        for number, text in lines:
            text = text.rstrip("\r\n")
            if text:
                yield _from_row(text.split("\t"), columns, len(header), path, number)


class _Columns(NamedTuple):
    question: int
    answer: int
    namespace: int | None


def _columns(header: list[str], path: str) -> _Columns:
    names = [name.strip().lower() for name in header]

    def find(choices: tuple[str, ...], what: str) -> int:
        for choice in choices:
            if choice in names:
                return names.index(choice)
        raise _bad(path, 1, f"no {what} column (expected one of {', '.join(choices)})")

    ns = names.index("namespace") if "namespace" in names else None
    return _Columns(find(QUESTION_KEYS, "question"), find(ANSWER_KEYS, "answer"), ns)


def _from_row(row: list[str], columns: _Columns, width: int, path: str, number: int) -> Record:
    if len(row) != width:
        raise _bad(path, number, f"expected {width} fields like the header, got {len(row)}")
    ns = row[columns.namespace] if columns.namespace is not None else None
    return _record(row[columns.question], row[columns.answer], ns, path, number)


def _from_object(obj: Any, path: str, number: int, where: str = "") -> Record:
    if not isinstance(obj, dict):
        raise _bad(path, number, f"expected a JSON object, got {_json_type(obj)}", where)
    values = []
    for choices, what in ((QUESTION_KEYS, "question"), (ANSWER_KEYS, "answer")):
        key = next((k for k in choices if obj.get(k) is not None), None)
        if key is None:
            raise _bad(path, number, f"no {what} field (expected one of {', '.join(choices)})", where)
        if not isinstance(obj[key], str):
            raise _bad(path, number, f"the {key} field must be a string, got {_json_type(obj[key])}", where)
        values.append(obj[key])
    ns = obj.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise _bad(path, number, f"the namespace field must be a string, got {_json_type(ns)}", where)
    record = _record(values[0], values[1], ns, path, number, where)
    if any(name in obj for name in EXPORT_KEYS):
        record = record._replace(exported=_exported(obj, path, number, where))
    return record


# The fields `thrift export` writes beside the pair (thrift_cli/export.py).
EXPORT_KEYS = ("id", "created_at", "expires_at", "last_hit_at", "hit_count", "embedding_model", "embedding")


def _exported(obj: dict[str, Any], path: str, number: int, where: str) -> Exported:
    def bad(message: str) -> UsageError:
        return _bad(path, number, message, where)

    def seconds(name: str) -> float | None:
        value = obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
            raise bad(f"the {name} field must be unix seconds (a number) or null, got {_shown(value)}")
        return float(value)

    entry_id = obj.get("id")
    if entry_id is not None:
        try:
            entry_id = str(uuid.UUID(entry_id)) if isinstance(entry_id, str) else None
        except ValueError:
            entry_id = None
        if entry_id is None:
            raise bad(f"the id field must be a UUID (as thrift export writes), got {_shown(obj['id'])}")
    hits = obj.get("hit_count")
    if hits is not None and (isinstance(hits, bool) or not isinstance(hits, int) or not 0 <= hits < 2**63):
        raise bad(f"the hit_count field must be a whole number from 0, got {_shown(hits)}")
    model, blob = obj.get("embedding_model"), obj.get("embedding")
    if (model is None) != (blob is None):
        missing = "embedding_model" if model is None else "embedding"
        raise bad(f"an embedding needs both embedding and embedding_model fields; no {missing}")
    if model is not None and not isinstance(model, str):
        raise bad(f"the embedding_model field must be a string, got {_json_type(model)}")
    return Exported(
        id=entry_id,
        created_at=seconds("created_at"),
        expires_at=seconds("expires_at"),
        has_expires_at="expires_at" in obj,
        last_hit_at=seconds("last_hit_at"),
        hit_count=hits,
        embedding_model=model,
        embedding=_embedding(blob, model, bad) if model is not None else None,
    )


def _embedding(text: Any, model: str, bad: Callable[[str], UsageError]) -> bytes:
    """The vector of an exported line, checked: base64 of little-endian float32, as many
    as the model's dimension (the end of its name: .../384), finite, of unit length."""
    import base64
    import binascii

    import numpy as np

    if not isinstance(text, str):
        raise bad(f"the embedding field must be base64 text, got {_json_type(text)}")
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad("the embedding field is not valid base64") from None
    dim = model.rsplit("/", 1)[-1]
    if not dim.isdigit():
        raise bad(f"the embedding_model field must end in the dimension (name/384), got {_shown(model)}")
    if len(blob) != 4 * int(dim):
        raise bad(f"the embedding has {len(blob) / 4:g} dimensions, {model} has {dim}")
    vector = vectors.decode(blob)
    if not np.isfinite(vector).all():
        raise bad("the embedding holds a NaN or an infinity")
    if abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        raise bad(f"the embedding is not of unit length (norm {float(np.linalg.norm(vector)):.4f})")
    return blob


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _record(question: str, answer: str, ns: str | None, path: str, number: int, where: str = "") -> Record:
    if not question.strip():
        raise _bad(path, number, "empty question", where)
    if not answer.strip():
        raise _bad(path, number, "empty answer", where)
    for text, what in ((question, "question"), (answer, "answer"), (ns, "namespace")):
        if text and not encodable(text):
            raise _bad(path, number, f"the {what} is not valid text (a lone surrogate)", where)
    return Record(question, answer, ns if ns and ns.strip() else None, number)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _lines(f: Iterable[bytes], path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded one at a time so that an error names
    its line; a byte-order mark at the start is dropped."""
    for number, raw in enumerate(f, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(path, number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def _bad(path: str, number: int, message: str, where: str = "") -> UsageError:
    return UsageError(f"{path}: {where} {number}: {message}" if where else f"{path}:{number}: {message}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    return names.get(type(value), "null" if value is None else "a number")
