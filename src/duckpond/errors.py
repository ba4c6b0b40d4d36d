"""Error types. Each carries the CLI exit code it maps to, so the CLI stays thin."""

from __future__ import annotations


class PondError(Exception):
    """A user-facing error: the message is one line, shown as `error: ...`."""

    exit_code = 1


class PondUsageError(PondError):
    """Bad arguments (exit 2)."""

    exit_code = 2


class PondLockedError(PondError):
    """Another writer holds the write lock (exit 3)."""

    exit_code = 3


class NotFoundError(PondError):
    pass


class AlreadyExistsError(PondError):
    pass


class InvalidPathError(PondError):
    pass


class QueryError(PondError):
    pass


class FormatError(PondError):
    """Input that is not what it claims to be (bad CSV, non-Parquet given as a table...)."""


class FactoryError(PondError):
    """A factory config or a factory run failed."""
