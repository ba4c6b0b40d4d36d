"""Reading local Parquet files with `pyarrow.parquet.ParquetFile`, by size.

A small file (most of a pond's: per-commit appends, compacted partitions of KBs) is read
on the calling thread, without pre-buffering: the first threaded read of a process starts
pyarrow's I/O and CPU thread pools, which costs more than decoding a few KB (2.4 vs ~14 ms
for a small pond's partitions on the loaded 2-core machine); big files get both, as
pyarrow.parquet's defaults would.

`pq` stands for `pyarrow.parquet`, imported on first use: importing it loads `pyarrow.fs`
and pyarrow's filesystem bindings (S3, GCS, Azure, HDFS, ssl), ~15 ms, which a command
that reads no Parquet (`pond --version`, `pond mkdir`) does not pay. Only public pyarrow
API is used: the declared pyarrow range spans many majors.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.parquet as pq
else:

    class _LazyModule:
        """A module imported when an attribute of it is first asked for."""

        def __init__(self, name: str) -> None:
            self._name = name
            self._module: ModuleType | None = None

        def __getattr__(self, attr: str) -> Any:
            if self._module is None:
                self._module = importlib.import_module(self._name)
            return getattr(self._module, attr)

    pq = _LazyModule("pyarrow.parquet")

# Files up to this size are read without threads or pre-buffering.
SMALL_FILE_BYTES = 1 << 20


class ParquetFile:
    """One local Parquet file: footer, Arrow schema, whole-file and row-group reads of
    named columns (a struct's name selects all its fields, `a.b` one of them; an unknown
    name selects nothing), threads by the file's size unless told."""

    def __init__(self, path: str | Path) -> None:
        self.threads = os.stat(path).st_size > SMALL_FILE_BYTES
        self.file = pq.ParquetFile(
            str(path), memory_map=False, buffer_size=0, pre_buffer=self.threads
        )

    @property
    def metadata(self) -> pq.FileMetaData:
        return self.file.metadata

    @property
    def schema_arrow(self) -> Any:
        return self.file.schema_arrow

    # `use_threads` None: by the file's size (see the module's doc).
    def read(self, columns: list[str] | None = None, use_threads: bool | None = None) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.file.read(columns=columns, use_threads=threads)

    def read_row_group(
        self, i: int, columns: list[str] | None = None, use_threads: bool | None = None
    ) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.file.read_row_group(i, columns=columns, use_threads=threads)

    def read_row_groups(
        self, groups: list[int], columns: list[str] | None = None, use_threads: bool | None = None
    ) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.file.read_row_groups(groups, columns=columns, use_threads=threads)
