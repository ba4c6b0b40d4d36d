"""Stored pond nodes seen as live nodes, so factories read stored and derived inputs alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import nodes, seriesview
from ..factories.live import (
    LiveData,
    LiveDir,
    LiveFile,
    LiveNode,
    VersionSpan,
    VersionTail,
)
from ..storage import applog
from ..storage.fs import Located, PondFS

if TYPE_CHECKING:
    import pyarrow as pa


class StoredFile(LiveFile):
    """A physical table (its latest version) or series (the union of its versions)."""

    def __init__(self, fs: PondFS, loc: Located) -> None:
        self.fs = fs
        self.loc = loc
        self.path = loc.path
        self.file_type = loc.file_type
        self.version = loc.row.version
        self.size = loc.row.size
        self._schema: pa.Schema | None = None
        self._shown: seriesview.Bounds | None = None
        self.time_column = (
            loc.row.extended_attributes.get("time_column")
            if nodes.is_series(loc.file_type)
            else None
        )

    def key(self) -> str:
        return f"{self.loc.node_id}@{self.loc.row.version}"

    def _bounds(self) -> seriesview.Bounds:
        """The series' temporal bounds (set-temporal-bounds), read once."""
        if self._shown is None:
            self._shown = (
                self.fs.series_bounds(self.loc.part_id, self.loc.node_id)
                if nodes.is_series(self.file_type)
                else (None, None)
            )
        return self._shown

    def parts(self, start: int | None = None, end: int | None = None) -> list[Any] | None:
        """The Parquet parts of the live versions whose event times can fall in [start,
        end] (a table: its one part), found in one batched lookup; None for a series with
        temporal bounds, whose rows must be filtered by them (callers then register or
        scan it, which applies them)."""
        if self._bounds() != (None, None):
            return None
        return self._all_parts(start, end)

    def _all_parts(self, start: int | None = None, end: int | None = None) -> list[Any]:
        from ..query import relations

        if nodes.is_series(self.file_type):
            found = self.fs.series_parts(self.loc.part_id, self.loc.node_id, start, end)
            return [
                relations.Part(path=p.path, data=p.data, min_time=p.min_time, max_time=p.max_time)
                for p in found
            ]
        row = self.loc.row
        path = self.fs.blob_path(row)
        data = row.content if path is None else None
        return [
            relations.Part(
                path=path, data=data, min_time=row.min_event_time, max_time=row.max_event_time
            )
        ]

    def schema(self) -> pa.Schema:
        """A table's schema; a series': its versions' unified, from the read cache's
        recorded schemas and the footers of the versions after them (a few files, not one
        per version: query/seriescache.py)."""
        from ..query import ingest, relations, seriescache

        if self._schema is not None:
            return self._schema
        if nodes.is_series(self.file_type):
            self._schema = seriescache.series_schema(
                self.fs, self.loc.part_id, self.loc.node_id, self.path
            )
            return self._schema
        part = self._all_parts()[0]
        schema = ingest.read_parquet_schema(part.path or part.data or b"", self.path)
        self._schema = relations.unify_schemas([schema])
        return self._schema

    def register(
        self, ctx: Any, names: Any, start: int | None = None, end: int | None = None
    ) -> None:
        """Register the file under `names`; a series through its read cache, as `pond cat`
        reads it (query/seriescache.py: the window narrowed to its bounds, only the versions
        it can reach opened, a new segment written after a whole read)."""
        from ..query import relations, seriescache

        start, end = seriesview.narrow(self._bounds(), start, end)
        if nodes.is_series(self.file_type):
            seriescache.register_series(
                ctx,
                self.fs,
                self.loc.part_id,
                self.loc.node_id,
                time_column=self.time_column,
                time_start=start,
                time_end=end,
                names=names,
            )
            return
        relations.register_parts(
            ctx,
            self._all_parts(start, end),
            names=names,
            time_column=self.time_column,
            time_start=start,
            time_end=end,
        )

    def scan(self, start: int | None = None, end: int | None = None) -> pa.Table:
        from ..query import sql

        ctx = sql.make_context()
        self.register(ctx, ["source"], start, end)
        return sql.run_sql(ctx, "SELECT * FROM source")

    def scan_versions(
        self,
        versions: list[int],
        bounds: seriesview.Bounds,
        start: int | None = None,
        end: int | None = None,
    ) -> pa.Table:
        """The rows of those versions, read as scan() reads the live ones (their parts, in
        that order, filtered to the window narrowed to the bounds), each version found by
        bisection: no pass over the whole history."""
        from ..query import relations, sql

        if not nodes.is_series(self.file_type):
            raise NotImplementedError(f"{self.path} is not a stored series")
        start, end = seriesview.narrow(bounds, start, end)
        found = self.fs.version_parts(self.loc.part_id, self.loc.node_id, versions)
        parts = [
            relations.Part(path=p.path, data=p.data, min_time=p.min_time, max_time=p.max_time)
            for p in found
        ]
        ctx = sql.make_context()
        relations.register_parts(
            ctx,
            parts,
            names=["source"],
            time_column=self.time_column,
            time_start=start,
            time_end=end,
        )
        return sql.run_sql(ctx, "SELECT * FROM source")

    def version_tail(self, first: int = 0) -> VersionTail | None:
        """The series' stored versions from the `first`th on, live or not, from the index
        columns alone (no content read; only the tail's columns are picked)."""
        if not nodes.is_series(self.file_type):
            return None
        node = self.loc.node_id
        total, c = self.fs.version_tail(self.loc.part_id, node, first)
        spans = [
            VersionSpan(f"{node}@{v}#{h}", v, txn, lo, hi, attrs)
            for v, txn, h, lo, hi, attrs in zip(
                c.version,
                c.txn_seq,
                c.content_hash,
                c.min_time,
                c.max_time,
                c.attributes,
                strict=True,
            )
        ]
        return VersionTail(total, min(max(first, 0), total), spans)


class StoredData(LiveData):
    """A raw file, symlink or an executor factory's node (its bytes are the config)."""

    def __init__(self, fs: PondFS, loc: Located) -> None:
        self.fs = fs
        self.loc = loc
        self.path = loc.path
        self.file_type = loc.file_type
        self.factory = loc.row.factory
        self.version = loc.row.version
        self.size = applog.total_size(loc.row)  # an appended log: all its versions

    def key(self) -> str:
        return f"{self.loc.node_id}@{self.loc.row.version}"

    def read_bytes(self) -> bytes:
        return self.fs.content(self.loc.row)


class StoredDir(LiveDir):
    def __init__(self, resolver: Any, loc: Located) -> None:
        self.resolver = resolver
        self.loc = loc
        self.path = loc.path
        self.file_type = loc.file_type
        self.version = loc.row.version
        self.size = loc.row.size

    def key(self) -> str:
        return f"{self.loc.node_id}@{self.loc.row.version}"

    def names(self) -> list[str]:
        return [e.name for e in self.resolver.fs.entries_of(self.loc).entries()]

    def child(self, name: str) -> LiveNode | None:
        node: LiveNode | None = self.resolver.lookup(f"{self.path.rstrip('/')}/{name}")
        return node

    def children(self) -> list[LiveNode]:
        return [self.resolver.node_for(c) for c in self.resolver.fs.children(self.loc)]
