"""Error types. Each carries the CLI exit code it maps to, so the CLI stays thin."""

from __future__ import annotations

# How much of one user-supplied value (a path, SQL, a config value, a CSV cell) an error
# message echoes, and how long a whole message may get: the last line of defence against a
# hostile input turning into a 300 MB error line.
ECHO_CHARS = 120
MAX_MESSAGE_CHARS = 2_000


def _escape(text: str) -> str:
    # control characters (newline, NUL, ...) are shown escaped so the message stays one line
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip(value: object, limit: int = ECHO_CHARS) -> str:
    """`value` as text fit to echo in an error message: control characters escaped, and
    shortened to `limit` characters with an ellipsis and the full length when longer."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return _escape(text)
    # escape only the kept head: a huge value is never copied whole
    return f"{_escape(text[:limit])}... ({len(text):,} chars)"


class PondError(Exception):
    """A user-facing error: the message is one line, shown as `error: ...`. A message
    longer than MAX_MESSAGE_CHARS is cut, whatever the code that built it forgot to clip."""

    exit_code = 1
    # The pond path a write was refused at, when storage knows it (`path=`): the steward
    # tells a write refused under a read-only import by it, never by the message's text.
    path: str | None = None

    def __init__(self, *args: object, path: str | None = None) -> None:
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > MAX_MESSAGE_CHARS:
            args = (clip(args[0], MAX_MESSAGE_CHARS),)
        super().__init__(*args)
        if path is not None:
            self.path = path


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


class RemoteError(PondError):
    """A remote (object store or directory) failed or refused: the message names its URL,
    never a secret."""


class RemoteNotFound(RemoteError):
    """A key that is not on the remote."""
