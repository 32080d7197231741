"""Where answers live: the tier interface and the tiers that ship with thrift."""

from thrift_cli.tiers.base import Tier
from thrift_cli.tiers.memory import MemoryTier

__all__ = ["MemoryTier", "Tier"]
