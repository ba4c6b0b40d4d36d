"""Reading local Parquet files without importing `pyarrow.parquet`.

`import pyarrow.parquet` loads `pyarrow.fs` and every filesystem binding (S3, GCS, Azure,
HDFS, ssl): ~13 ms of every `pond` process on a quiet machine (bench group `startup`),
while the reader itself is `pyarrow._parquet`, ~1 ms. `ParquetFile` here is the part of
`pyarrow.parquet.ParquetFile` the pond's read path uses, over the same reader. If pyarrow's
internal module ever lacks it, the public class is used instead. `pq` stands for
`pyarrow.parquet`, imported on first use (writes, other readers).

A small file (most of a pond's: per-commit appends, compacted partitions of KBs) is read
on the calling thread, without pre-buffering: the first threaded read of a process starts
pyarrow's I/O and CPU thread pools, which costs more than decoding a few KB (2.4 vs ~14 ms
for a small pond's partitions on the loaded 2-core machine); big files get both, as
pyarrow.parquet would.
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
    named columns (a struct's name selects all its fields, `a.b` one of them)."""

    def __init__(self, path: str | Path) -> None:
        self.threads = os.stat(path).st_size > SMALL_FILE_BYTES
        self.reader = _reader(str(path), self.threads)
        paths: dict[str, list[int]] = {}
        for i, parts in enumerate(self.reader.column_paths):
            for n in range(1, len(parts) + 1):
                paths.setdefault(".".join(parts[:n]), []).append(i)
        self._paths = paths

    @property
    def metadata(self) -> pq.FileMetaData:
        return self.reader.metadata

    @property
    def schema_arrow(self) -> Any:
        return self.reader.schema_arrow

    def _indices(self, columns: list[str] | None) -> list[int] | None:
        if columns is None:
            return None
        out: list[int] = []
        for c in columns:
            out.extend(self._paths.get(c, ()))
        return out

    # `use_threads` None: by the file's size (see the module's doc).
    def read(self, columns: list[str] | None = None, use_threads: bool | None = None) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.reader.read_all(column_indices=self._indices(columns), use_threads=threads)

    def read_row_group(
        self, i: int, columns: list[str] | None = None, use_threads: bool | None = None
    ) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.reader.read_row_group(
            i, column_indices=self._indices(columns), use_threads=threads
        )

    def read_row_groups(
        self, groups: list[int], columns: list[str] | None = None, use_threads: bool | None = None
    ) -> Any:
        threads = self.threads if use_threads is None else use_threads
        return self.reader.read_row_groups(
            groups, column_indices=self._indices(columns), use_threads=threads
        )


def _reader(path: str, pre_buffer: bool) -> Any:
    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:  # pragma: no cover - a pyarrow without it: the public class
        return pq.ParquetFile(path).reader
    reader = ParquetReader()
    try:
        reader.open(path, use_memory_map=False, buffer_size=0, pre_buffer=pre_buffer)
    except TypeError:  # pragma: no cover - its signature changed: the public class
        return pq.ParquetFile(path).reader
    return reader
