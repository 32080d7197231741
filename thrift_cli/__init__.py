"""thrift: a semantic cache for LLM calls.

    from thrift_cli import SemanticCache
    cache = SemanticCache(min_similarity=0.85, namespace="docs")
    answer = cache.get_or_call("What is semantic caching?", call_llm)

Names are imported on first use, so `import thrift_cli` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CacheEntry",
    "CacheHit",
    "MemoryTier",
    "SemanticCache",
    "ThriftError",
    "__version__",
]

if TYPE_CHECKING:
    from thrift_cli.cache import SemanticCache
    from thrift_cli.errors import ThriftError
    from thrift_cli.models import CacheEntry, CacheHit
    from thrift_cli.tiers.memory import MemoryTier

_LAZY = {
    "SemanticCache": "thrift_cli.cache",
    "CacheEntry": "thrift_cli.models",
    "CacheHit": "thrift_cli.models",
    "ThriftError": "thrift_cli.errors",
    "MemoryTier": "thrift_cli.tiers.memory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thrift_cli' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
