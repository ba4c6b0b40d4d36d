"""pond: a local-first, versioned, SQL-queryable data store on Delta Lake.

`from duckpond import Pond` loads the library on first use (PEP 562), so that importing
the package for the CLI or `__version__` costs nothing.
"""

from __future__ import annotations

import os as _os

TYPE_CHECKING = False  # not `from typing`: ~10 ms of `pond --help` (cli/launch.py)

# pyarrow's default memory pool is mimalloc 3, which keeps freed pages resident for
# `purge_delay` (1 s) in case they are reused. A pond's upkeep allocates a few MB every
# few dozen commits (checkpoints, compactions), so in a long-lived process pages freed by
# one burst were still held when the next came elsewhere in the arena: 10,000 write+read
# steps held ~50 MB of Arrow pages for 12 MB in use (bench 12). Purging at once kept the
# arena near what is in use at no measured cost in time. mimalloc reads the setting when
# pyarrow's library loads, so it applies when duckpond is imported first; a value the
# user set is kept.
_os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

# The single source of the version: pyproject.toml reads it from here.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import PondError
    from .pond import Pond
    from .results import EntryInfo
    from .storage.objstore import StoreOptions

__all__ = ["EntryInfo", "Pond", "PondError", "StoreOptions", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Pond":
        from .pond import Pond

        return Pond
    if name == "EntryInfo":
        from .results import EntryInfo

        return EntryInfo
    if name == "PondError":
        from .errors import PondError

        return PondError
    if name == "StoreOptions":
        from .storage.objstore import StoreOptions

        return StoreOptions
    raise AttributeError(f"module 'duckpond' has no attribute {name!r}")
