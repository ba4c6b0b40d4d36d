"""The `pond` command line: a thin layer over `duckpond.Pond`."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not `from typing`: start-up time of `pond --help`

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec


class _NoPandas:
    """Keep pandas out of CLI processes.

    pyarrow imports pandas (~190 ms) the first time it converts a Python value, only to
    ask whether that value is a DataFrame; the CLI never holds one. Refusing the import
    makes pyarrow treat pandas as absent. Library users are unaffected: this is installed
    only when the `pond` command runs.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not loaded by the pond CLI", name=name)
        return None  # type: ignore[return-value]


def keep_pandas_out() -> None:
    """Called by `main()`: a `pond` process, not an importer of this package."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
