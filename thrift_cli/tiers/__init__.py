"""Where answers live: the tier interface and the tiers that ship with thrift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thrift_cli.tiers.base import Tier

if TYPE_CHECKING:
    from thrift_cli.tiers.memory import MemoryTier

__all__ = ["MemoryTier", "Tier"]


def __getattr__(name: str) -> Any:
    # MemoryTier needs numpy; importing it lazily keeps the exact-hit path free of numpy.
    if name == "MemoryTier":
        from thrift_cli.tiers.memory import MemoryTier

        return MemoryTier
    raise AttributeError(f"module 'thrift_cli.tiers' has no attribute {name!r}")
