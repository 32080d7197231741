"""Where answers live: the tier interface and the tiers that ship with thrift."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:
    from thrift_cli.tiers.memory import MemoryTier

__all__ = ["MemoryTier", "Tier", "configured", "tenant"]


def __getattr__(name: str) -> Any:
    # MemoryTier needs numpy; importing it lazily keeps the exact-hit path free of numpy.
    if name == "MemoryTier":
        from thrift_cli.tiers.memory import MemoryTier

        return MemoryTier
    raise AttributeError(f"module 'thrift_cli.tiers' has no attribute {name!r}")


def configured(home: Path | None = None) -> list[Tier]:
    """The shared tiers the settings ask for (flag-less: environment > config file):
    Redis when `REDIS_URL` / `redis_url` is set. Its module is imported only then."""
    from thrift_cli import config

    url = config.value("redis_url", home=home)
    if url is None:
        return []
    from thrift_cli.tiers.redis import RedisTier

    return [
        RedisTier(
            url,
            tenant=tenant(home),
            ttl=config.value("redis_ttl", home=home),
            connect_timeout=config.value("redis_connect_timeout", home=home),
            timeout=config.value("redis_timeout", home=home),
        )
    ]


def tenant(home: Path | None = None) -> str:
    """Whose entries these are in the shared tiers: the `tenant` setting, else a hash of
    the team's `api_key` (never the key itself), else `local`."""
    from thrift_cli import config, keys

    chosen = config.value("tenant", home=home)
    if chosen is not None:
        return str(chosen)
    api_key = config.value("api_key", home=home)
    return keys.api_key_namespace(api_key).replace(":", "-") if api_key else "local"
