"""`thrift import`: bulk-load question/answer pairs from JSONL, CSV, TSV or llm's logs.db.

Two passes over the file. The first reads every record, validates it and marks in-file
duplicates, so a bad line stores nothing. The second stores the records in chunks, each
embedded in batches and written in one transaction, so memory stays bounded whatever the
file's size. Questions already cached are found by key before anything is embedded: a
second import of the same file embeds nothing and stores nothing.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from thrift_cli import keys
from thrift_cli.errors import UsageError

if TYPE_CHECKING:
    from thrift_cli.cache import SemanticCache

QUESTION_KEYS = ("question", "prompt", "q", "input")
ANSWER_KEYS = ("answer", "response", "completion", "a", "output")
SQLITE_HEADER = b"SQLite format 3\x00"
# Pairs handed to SemanticCache.store_many at once: it embeds them in batches of
# cache.EMBED_BATCH, and no more than this many pairs per namespace wait in memory.
CHUNK = 512


class Record(NamedTuple):
    """One question/answer pair; `line` says where it starts in the file (0 in a database)."""

    question: str
    answer: str
    namespace: str | None
    line: int


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
    replace: bool = False,
    home: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Store the pairs of `path` under `namespace`, or each record's own namespace.

    Raises UsageError, storing nothing, when the file cannot be read or any record is bad.
    `progress(done, total)` is called after each chunk.
    """
    from thrift_cli.cache import SemanticCache

    started = time.perf_counter()
    fmt = detect(path)
    summary = ImportSummary(path, fmt)
    duplicates, total = _validate(path, fmt, namespace, summary)
    caches: dict[str, SemanticCache] = {}
    pending: dict[str, list[tuple[str, str, str]]] = {}
    done = 0

    def flush(ns: str) -> None:
        nonlocal done
        batch = pending.pop(ns, [])
        if ns not in caches:  # one connection, shared by every namespace's cache
            first = next(iter(caches.values()), None)
            tier = first.tier if first is not None else None
            caches[ns] = SemanticCache(namespace=ns, home=home, tier=tier)
        _store(caches[ns], batch, ttl, replace, summary)
        done += len(batch)
        if progress is not None:
            progress(done, total)

    try:
        if progress is not None:
            progress(0, total)
        for index, item in enumerate(read(path, fmt)):
            if isinstance(item, Skipped) or index in duplicates:
                done += 1
                continue
            ns = namespace or item.namespace
            assert ns is not None  # _validate made sure
            batch = pending.setdefault(ns, [])
            batch.append((item.question, item.answer, keys.exact_key(ns, item.question)))
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


def _validate(path: str, fmt: str, namespace: str | None, summary: ImportSummary) -> tuple[set[int], int]:
    """Read everything once: raise on the first bad record; return the positions of
    in-file duplicates (the first of a question wins) and the number of items."""
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
        key = keys.exact_key(ns, item.question)
        if key in seen:
            duplicates.add(index)
            skipped["duplicate question"] += 1
        else:
            seen.add(key)
            namespaces.add(ns)
    summary.skipped = dict(skipped.most_common())
    summary.namespaces = sorted(namespaces)
    return duplicates, index + 1


def _store(
    cache: SemanticCache,
    batch: list[tuple[str, str, str]],
    ttl: float | None,
    replace: bool,
    summary: ImportSummary,
) -> None:
    """Store one chunk of one namespace: look every key up first (an indexed read, far
    cheaper than an embedding) so only new or changed answers are embedded."""
    now = time.time()
    fresh: list[tuple[str, str]] = []
    changed: list[tuple[str, str]] = []
    for question, answer, key in batch:
        entry = cache.tier.lookup(key, now)
        if entry is None:
            fresh.append((question, answer))
        elif replace and entry.answer != answer:
            changed.append((question, answer))
        else:
            summary.already_cached += 1
    if fresh:
        started = time.time()
        for entry, (_, answer) in zip(cache.store_many(fresh, ttl=ttl), fresh, strict=True):
            # Another process may have stored the question since the lookup: its entry stays.
            if entry.created_at >= started and entry.answer == answer:
                summary.imported += 1
            else:
                summary.already_cached += 1
    if changed:
        cache.store_many(changed, ttl=ttl, replace=True)
        summary.imported += len(changed)
        summary.replaced += len(changed)


# -- formats -------------------------------------------------------------------------


def detect(path: str) -> str:
    """`jsonl`, `json` (an array), `csv`, `tsv` or `llm`: by content, then by extension."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe could not be read twice
            raise UsageError(f"{path} is not a regular file; save it to one first")
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
    return _record(values[0], values[1], ns, path, number, where)


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
