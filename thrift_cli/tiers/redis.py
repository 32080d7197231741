"""The Redis tier: exact answers shared by every machine of a team, scoped by tenant.

A key is `thrift:v1:<tenant>:<hash>`, the hash being the local store's exact key (of the
namespace and the normalized question), so two tenants sharing one Redis never see each
other's entries. The value is the entry as JSON; its Redis TTL is the entry's remaining
lifetime, or `redis_ttl` (30 days) for one that never expires. Hits are counted in the
hash `thrift:hits:v1:<tenant>`, after the answer is served; the local store stays the
source of truth for hit counts.

Redis is a shared convenience, never a dependency: down, slow, full or answering garbage,
the tier prints one warning line per process, stops asking for a while, and every call
returns as a miss would, so `thrift ask` answers from its local tiers as if Redis were
not configured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from thrift_cli import keys
from thrift_cli.models import CacheEntry
from thrift_cli.tiers.base import Tier, print_warning
from thrift_cli.tiers.resp import Connection, RedisError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_TTL_S = 30 * 86400.0
DEFAULT_CONNECT_TIMEOUT_S = 0.05
DEFAULT_TIMEOUT_S = 0.1
# After a failure, how long a long-lived process (an application, `thrift serve`) leaves
# Redis alone before trying again. A `thrift ask` ends long before.
RETRY_AFTER_S = 30.0
# SCAN page size, for deleting a namespace.
_SCAN_COUNT = 500

_warned: set[str] = set()  # the URLs this process has warned about: one line each


class RedisTier(Tier):
    name = "redis"
    order = 0  # asked before the local tier: it holds what other machines answered
    semantic = False

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "local",
        ttl: float = DEFAULT_TTL_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        warn: Callable[[str], None] = print_warning,
    ) -> None:
        self.url, self.tenant, self.ttl = url, tenant, ttl
        self._conn = Connection(url, connect_timeout=connect_timeout, timeout=timeout)
        self._warn = warn
        self._down_until = 0.0
        self.last_error: str | None = None

    def key(self, question_hash: str) -> str:
        """`thrift:v1:<tenant>:<hex>` for the exact key `v1:<hex>`."""
        version, _, digest = question_hash.partition(":")
        return f"thrift:{version}:{self.tenant}:{digest}"

    @property
    def hits_key(self) -> str:
        return f"thrift:hits:v1:{self.tenant}"

    # -- Tier ---------------------------------------------------------------------------

    def lookup(self, question_hash: str, now: float) -> CacheEntry | None:
        data = self._call("look up an answer", "GET", self.key(question_hash))
        if data is None:
            return None
        entry = _entry(data, question_hash)
        if entry is None:
            self._failed("look up an answer", f"key {self.key(question_hash)} does not hold a thrift entry")
            return None
        return None if entry.expired(now) else entry

    def store(
        self, entry: CacheEntry, vector: np.ndarray | None = None, *, replace: bool = False
    ) -> CacheEntry:
        """Keep `entry` for its remaining lifetime; an existing key is kept unless
        `replace` (the local store has already decided which entry is kept)."""
        now = time.time()
        lifetime = self.ttl if entry.expires_at is None else min(entry.expires_at - now, self.ttl)
        if lifetime <= 0.001:
            return entry
        command: tuple[str | int, ...] = ("SET", self.key(entry.question_hash), _json(entry), "PX")
        command += (max(int(lifetime * 1000), 1),)
        self._call("store an answer", *(command if replace else (*command, "NX")))
        return entry

    def remove(self, entry: CacheEntry) -> bool:
        """Delete the answer under `entry`'s key and the hits counted on it (an answer
        given again later starts from zero)."""
        digest = entry.question_hash.partition(":")[2]
        replies = self._pipeline(
            "delete an answer", [("DEL", self.key(entry.question_hash)), ("HDEL", self.hits_key, digest)]
        )
        return bool(replies and replies[0])

    def remove_key(self, question_hash: str) -> CacheEntry | None:
        """Delete the entry under this exact key, if Redis holds one; return it."""
        entry = self.lookup(question_hash, time.time())
        return entry if entry is not None and self.remove(entry) else None

    def remove_namespace(self, namespace: str) -> int:
        """Delete every entry of `namespace` this tenant holds; how many there were."""
        removed = 0
        for page in self._pages("list answers"):
            doomed = [key for key, value in page if _namespace_of(value) == namespace]
            if doomed:
                removed += int(self._call("delete answers", "DEL", *doomed) or 0)
        return removed

    def entries(self, namespace: str) -> list[CacheEntry]:
        """The live entries of `namespace` this tenant holds (one SCAN of its keys)."""
        now = time.time()
        found: dict[bytes, CacheEntry] = {}
        for page in self._pages("list answers"):
            for key, value in page:
                if _namespace_of(value) == namespace:
                    entry = _entry(value, _question_hash(key))
                    if entry is not None and not entry.expired(now):
                        found[key] = entry  # SCAN may return a key twice
        return list(found.values())

    def entry(self, entry_id: str) -> CacheEntry | None:
        """The entry with this id, found by a SCAN of the tenant's keys: Redis is keyed by
        question, so this reads every one of them (for `thrift forget --id`, not lookups)."""
        needle = json.dumps(entry_id, ensure_ascii=False).encode()
        for page in self._pages("find an answer"):
            for key, value in page:
                if needle in value:  # cheap filter before parsing
                    entry = _entry(value, _question_hash(key))
                    if entry is not None and entry.id == entry_id:
                        return entry
        return None

    def _pages(self, doing: str) -> Iterator[list[tuple[bytes, bytes]]]:
        """Every entry key of this tenant with its value, a SCAN page at a time. A failure
        ends the iteration (the tier has warned)."""
        cursor: object = b"0"
        pattern = f"thrift:v1:{self.tenant}:*"
        while True:
            page = self._call(doing, "SCAN", cursor, "MATCH", pattern, "COUNT", _SCAN_COUNT)
            if not isinstance(page, list) or len(page) != 2:
                return
            cursor, keys = page
            keys = [k for k in keys if isinstance(k, bytes)] if isinstance(keys, list) else []
            if keys:
                values = self._call(doing, "MGET", *keys)
                values = values if isinstance(values, list) else []
                yield [(k, v) for k, v in zip(keys, values, strict=False) if isinstance(v, bytes)]
            if cursor in (b"0", None):
                return

    def touch(self, entry: CacheEntry, now: float) -> None:
        self._call("count a hit", "HINCRBY", self.hits_key, entry.question_hash.partition(":")[2], 1)

    def hit_count(self, question_hash: str) -> int:
        """Hits counted here on the entry with this key (all machines of the tenant)."""
        value = self._call("read a hit count", "HGET", self.hits_key, question_hash.partition(":")[2])
        return int(value) if isinstance(value, bytes) and value.isdigit() else 0

    def probe(self) -> float:
        """Write, read and delete a probe key under the tenant's prefix; the round trip in
        ms. Raises RedisError, unlike every other method: `thrift doctor` reports it."""
        key = f"thrift:v1:{self.tenant}:doctor-probe"
        started = time.perf_counter()
        replies = self._conn.pipeline([("SET", key, "probe", "PX", 10_000), ("GET", key), ("DEL", key)])
        elapsed = (time.perf_counter() - started) * 1000.0
        if replies[1] != b"probe":
            raise RedisError(f"wrote a probe key and read back {replies[1]!r}")
        return elapsed

    def close(self) -> None:
        self._conn.close()

    # -- failures: one warning, then a rest ----------------------------------------------

    def _call(self, doing: str, *command: Any) -> Any:
        replies = self._pipeline(doing, [command])
        return replies[0] if replies else None

    def _pipeline(self, doing: str, commands: list[tuple[Any, ...]]) -> list[Any] | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            return self._conn.pipeline(commands)
        except RedisError as exc:
            self._failed(doing, str(exc))
            return None

    def _failed(self, doing: str, reason: str) -> None:
        self.last_error = reason
        self._down_until = time.monotonic() + RETRY_AFTER_S
        shown = _without_password(self.url)
        if shown not in _warned:
            _warned.add(shown)
            self._warn(f"Redis at {shown}: cannot {doing}: {reason}; using the local cache only")


def _json(entry: CacheEntry) -> str:
    return json.dumps(
        {
            "id": entry.id,
            "namespace": entry.namespace,
            "question": entry.question,
            "question_hash": entry.question_hash,
            "answer": entry.answer,
            "created_at": entry.created_at,
            "expires_at": entry.expires_at,
            # The question was scrubbed of PII (privacy.py): it no longer spells its key.
            "scrubbed": keys.exact_key(entry.namespace, entry.question) != entry.question_hash,
        },
        ensure_ascii=False,
    )


def _entry(data: bytes, question_hash: str) -> CacheEntry | None:
    """The entry stored as `data` under `question_hash`'s key, or None if `data` is not one
    (garbage, another program's key, a truncated value)."""
    try:
        value = json.loads(data)
        entry = CacheEntry(
            namespace=value["namespace"],
            question=value["question"],
            question_hash=value["question_hash"],
            answer=value["answer"],
            id=value["id"],
            created_at=float(value["created_at"]),
            expires_at=None if value["expires_at"] is None else float(value["expires_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    fields = (entry.namespace, entry.question, entry.answer, entry.id)
    if entry.question_hash != question_hash or not all(isinstance(f, str) for f in fields):
        return None
    if not value.get("scrubbed") and keys.exact_key(entry.namespace, entry.question) != question_hash:
        return None  # the key and the question it claims to answer disagree
    return entry if entry.answer.strip() else None


def _question_hash(key: bytes) -> str:
    """The exact key `v1:<hex>` of a Redis key `thrift:v1:<tenant>:<hex>`."""
    parts = key.decode("utf-8", "replace").split(":")
    return f"{parts[1]}:{parts[-1]}" if len(parts) >= 4 else ""


def _namespace_of(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("namespace") if isinstance(value, dict) else None


def _without_password(url: str) -> str:
    from thrift_cli.config import masked

    return masked("redis_url", url)
