"""Stored pond nodes seen as live nodes, so factories read stored and derived inputs alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import nodes
from ..factories.live import LiveData, LiveDir, LiveFile, LiveNode, VersionSpan
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
        self._versions: list[nodes.NodeRow] | None = None
        self.time_column = (
            loc.row.extended_attributes.get("time_column")
            if nodes.is_series(loc.file_type)
            else None
        )

    def key(self) -> str:
        return f"{self.loc.node_id}@{self.loc.row.version}"

    def _rows(self) -> list[nodes.NodeRow]:
        if not nodes.is_series(self.file_type):
            return [self.loc.row]
        if self._versions is None:  # listed once per read (a node lives for one read)
            self._versions = self.fs.versions(self.loc.part_id, self.loc.node_id)
        return self._versions

    def parts(self) -> list[Any]:
        return self._parts(self._rows())

    def _parts(self, rows: list[nodes.NodeRow]) -> list[Any]:
        from ..query import sql

        out = []
        for row in rows:
            path = self.fs.blob_path(row)
            out.append(
                sql.Part(
                    path=path,
                    data=row.content if path is None else None,
                    min_time=row.min_event_time,
                    max_time=row.max_event_time,
                )
            )
        return out

    def schema(self) -> pa.Schema:
        from ..query import ingest, sql

        if self._schema is not None:
            return self._schema
        schemas = []
        for row in self._rows():
            source = self.fs.blob_path(row) or row.content or b""
            schemas.append(ingest.read_parquet_schema(source, self.path))
        self._schema = sql.unify_schemas(schemas)
        return self._schema

    def register(
        self, ctx: Any, names: Any, start: int | None = None, end: int | None = None
    ) -> None:
        from ..query import sql

        rows = self._rows()
        # versions outside the window are dropped before their parts (and inline contents)
        # are made: a read of the newest day of 1,000 versions touches a few of them; the
        # newest is kept anyway, its footer gives the schema when nothing else is left
        kept = [r for r in rows[:-1] if _overlaps(r, start, end)] + rows[-1:]
        sql.register_parts(
            ctx,
            self._parts(kept),
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

    def version_spans(self) -> list[VersionSpan] | None:
        if not nodes.is_series(self.file_type):
            return None
        return [
            VersionSpan(
                ident=f"{r.node_id}@{r.version}#{r.content_hash}",
                version=r.version,
                txn_seq=r.txn_seq,
                min_time=r.min_event_time,
                max_time=r.max_event_time,
                attributes=r.extended_attributes,
            )
            for r in self._rows()
        ]


def _overlaps(row: nodes.NodeRow, start: int | None, end: int | None) -> bool:
    if start is not None and row.max_event_time is not None and row.max_event_time < start:
        return False
    return not (end is not None and row.min_event_time is not None and row.min_event_time > end)


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
