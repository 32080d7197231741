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


def configured(home: Path | None = None, *, remote: bool | None = None) -> list[Tier]:
    """The shared tiers the settings ask for (environment > config file): Redis when
    `REDIS_URL` / `redis_url` is set; the remote when `remote_lookup` is true (or
    `remote`, `thrift ask --remote`, says so) and `api_key` and a remote are set
    (`database_url`, or `supabase_url` + `supabase_key` for the REST path).
    Their modules are imported only then."""
    from thrift_cli import config

    shared: list[Tier] = []
    url = config.value("redis_url", home=home)
    if url is not None:
        from thrift_cli.tiers.redis import RedisTier

        shared.append(
            RedisTier(
                url,
                tenant=tenant(home),
                ttl=config.value("redis_ttl", home=home),
                connect_timeout=config.value("redis_connect_timeout", home=home),
                timeout=config.value("redis_timeout", home=home),
            )
        )
    if remote if remote is not None else config.value("remote_lookup", home=home):
        where, api_key = config.remote(home), config.value("api_key", home=home)
        if where is None or api_key is None:
            from thrift_cli.errors import UsageError

            raise UsageError(
                "a remote lookup needs database_url (SUPABASE_DB_URL) or supabase_url and supabase_key "
                "(SUPABASE_URL, SUPABASE_KEY), and api_key (THRIFT_API_KEY)"
            )
        from thrift_cli.tiers.remote import RemoteTier

        url, rest_key = where
        shared.append(
            RemoteTier(url, api_key, timeout=config.value("remote_timeout", home=home), rest_key=rest_key)
        )
    return shared


def tenant(home: Path | None = None) -> str:
    """Whose entries these are in the shared tiers: the `tenant` setting, else a hash of
    the team's `api_key` (never the key itself), else `local`."""
    from thrift_cli import config, keys

    chosen = config.value("tenant", home=home)
    if chosen is not None:
        return str(chosen)
    api_key = config.value("api_key", home=home)
    return keys.api_key_namespace(api_key).replace(":", "-") if api_key else "local"
