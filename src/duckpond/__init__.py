"""pond: a local-first, versioned, SQL-queryable data store on Delta Lake.

`from duckpond import Pond` loads the library on first use (PEP 562), so that importing
the package for the CLI or `__version__` costs nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing`: ~10 ms of `pond --help` (cli/launch.py)

# Importing or using the library changes no process-wide setting (environment, GC,
# signal handlers): the CLI makes its own in its entry point (cli/launch.py, cli/main.py).

# The single source of the version: pyproject.toml reads it from here.
__version__ = "0.1.0"

_ERRORS = (
    "AlreadyExistsError",
    "FactoryError",
    "FormatError",
    "InvalidPathError",
    "NotFoundError",
    "PondError",
    "PondLockedError",
    "PondUsageError",
    "QueryError",
    "RemoteError",
    "RemoteNotFound",
)

if TYPE_CHECKING:
    from .errors import (
        AlreadyExistsError,
        FactoryError,
        FormatError,
        InvalidPathError,
        NotFoundError,
        PondError,
        PondLockedError,
        PondUsageError,
        QueryError,
        RemoteError,
        RemoteNotFound,
    )
    from .pond import Pond
    from .results import EntryInfo
    from .storage.objstore import StoreOptions

__all__ = [
    "AlreadyExistsError",
    "EntryInfo",
    "FactoryError",
    "FormatError",
    "InvalidPathError",
    "NotFoundError",
    "Pond",
    "PondError",
    "PondLockedError",
    "PondUsageError",
    "QueryError",
    "RemoteError",
    "RemoteNotFound",
    "StoreOptions",
    "__version__",
]

# Type checkers see only the imports above (a module `__getattr__` would make every name,
# `from duckpond import Typo` included, pass as `object`); at run time it loads on use.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        if name == "Pond":
            from .pond import Pond

            return Pond
        if name == "EntryInfo":
            from .results import EntryInfo

            return EntryInfo
        if name in _ERRORS:
            from . import errors

            return getattr(errors, name)
        if name == "StoreOptions":
            from .storage.objstore import StoreOptions

            return StoreOptions
        raise AttributeError(f"module 'duckpond' has no attribute {name!r}")
