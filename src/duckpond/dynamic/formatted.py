"""A raw file read in a format, as a factory input: `in_pattern: oteljson:///ingest/*.json`.

Each raw file (stored or derived) a format URL matches becomes a LiveFile whose table is the
file parsed by duckpond.formats (cached per version), so sql-derived and temporal-reduce
read logs and metrics as they read tables and series."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import nodes
from ..errors import FactoryError
from ..factories.live import LiveData, LiveFile, LiveNode, window

if TYPE_CHECKING:
    import pyarrow as pa

    from ..query.urls import SourceURL


class FormattedFile(LiveFile):
    def __init__(self, node: LiveData, src: SourceURL) -> None:
        from .. import formats

        assert src.format is not None
        self.node = node
        self.src = src
        self.path = node.path
        self.version = getattr(node, "version", 0)
        self.size = getattr(node, "size", 0)
        self._fixed_time = formats.get(src.format).time_column
        self.file_type = nodes.FILE_SERIES_DYNAMIC if self._fixed_time else nodes.FILE_TABLE_DYNAMIC
        self._table: pa.Table | None = None

    def key(self) -> str:
        return f"{self.src.fmt}+{self.src.compression}?{self.src.options}:{self.node.key()}"

    def table(self) -> pa.Table:
        if self._table is None:
            from .. import formats

            assert self.src.format is not None
            self._table = formats.read(
                self.src.format,
                self.node.read_bytes(),
                what=self.path,
                compression=self.src.compression,
                options=dict(self.src.options),
                key=self.node.key(),
            )
        return self._table

    @property
    def time_column(self) -> str | None:  # type: ignore[override]
        schema = self.schema()
        if self._fixed_time is not None and self._fixed_time in schema.names:
            return self._fixed_time
        from ..query import ingest

        return ingest.detect_time_column(schema)

    def schema(self) -> pa.Schema:
        return self.table().schema

    def scan(self, start: int | None = None, end: int | None = None) -> pa.Table:
        column = self.time_column
        if column is None:
            return self.table()
        return window(self.table(), column, start, end)


def formatted(nodes_found: list[LiveNode], src: SourceURL, pattern: str) -> list[LiveNode]:
    """The raw files among `nodes_found` as FormattedFiles (directories are passed over)."""
    out: list[LiveNode] = []
    for node in nodes_found:
        if isinstance(node, LiveData):
            out.append(FormattedFile(node, src))
        elif isinstance(node, LiveFile):
            raise FactoryError(
                f"{pattern} matches {node.path}, which is already a table or series: "
                f"use {src.path} without the {src.fmt}: scheme"
            )
    return out
