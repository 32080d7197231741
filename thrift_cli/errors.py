"""One tree of errors: everything thrift raises on purpose is a `ThriftError`.

The CLI turns any of them into one line on stderr and exit code 1 (usage errors: 2).
"""


class ThriftError(Exception):
    """Base class of thrift's own errors."""


class UsageError(ThriftError, ValueError):
    """The caller asked for something that cannot be done as asked (bad value, no question)."""


class StoreError(ThriftError):
    """The local cache file cannot be opened, read or written."""


class EmbedError(ThriftError):
    """The embedding model cannot be loaded or run."""


class RunnerError(ThriftError):
    """The LLM command could not be started."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
