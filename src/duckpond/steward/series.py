"""Writing series versions that change what reads show: temporal bounds, and collapsing
many live versions into one (`pond maintain --collapse-versions N`). What a read then
sees is decided in one place, duckpond.seriesview."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import nodes, paths, seriesview
from ..crashpoints import crash_point
from ..errors import InvalidPathError, NotFoundError, PondError, PondUsageError
from ..jsonvalues import JSON

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..storage.fs import Located, PondFS
    from ..txn import WriteTxn
    from .steward import Steward


@dataclass(frozen=True)
class BoundsResult:
    """`Pond.set_temporal_bounds`: the bounds now in force (µs UTC, None = open) and
    whether a version was written (setting the bounds already in force writes nothing)."""

    path: str
    min_time: int | None
    max_time: int | None
    version: int
    changed: bool

    def to_json(self) -> dict[str, JSON]:
        return {
            "path": self.path,
            "min_time": iso(self.min_time),
            "max_time": iso(self.max_time),
            "version": self.version,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class CollapsedSeries:
    path: str
    versions: int  # live versions folded
    new_version: int
    rows: int


@dataclass(frozen=True)
class CollapseReport:
    """`Pond.collapse_versions`: the series with more than N live versions, each folded
    into one new version (`candidates` counts them before the write)."""

    candidates: int
    collapsed: list[CollapsedSeries] = field(default_factory=list)

    @property
    def superseded(self) -> int:
        return sum(c.versions for c in self.collapsed)

    def line(self) -> str:
        return (
            f"collapse: {len(self.collapsed)} file(s) collapsed, {self.superseded} version(s) "
            f"superseded ({self.candidates} candidate(s))"
        )

    def to_json(self) -> dict[str, JSON]:
        return {
            "candidates": self.candidates,
            "superseded": self.superseded,
            "collapsed": [
                {
                    "path": c.path,
                    "versions": c.versions,
                    "new_version": c.new_version,
                    "rows": c.rows,
                }
                for c in self.collapsed
            ],
        }


def iso(us: int | None) -> str | None:
    import datetime as dt

    if us is None:
        return None
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return t.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# temporal bounds


def _stored_series(loc: Located | None, path: str) -> Located:
    if loc is None:
        raise NotFoundError(f"no such file or directory: {paths.normalize(path)}")
    if loc.file_type == nodes.FILE_SERIES_DYNAMIC:
        raise InvalidPathError(
            f"{loc.path} is derived: bound its stored inputs (a derived series follows them)"
        )
    if loc.file_type != nodes.FILE_SERIES:
        raise InvalidPathError(f"{loc.path} is a {loc.file_type}, not a series")
    return loc


def set_bounds(tx: WriteTxn, path: str, lo: int | None, hi: int | None) -> BoundsResult:
    """Record bounds [lo, hi] (None = open; both None clears them) on the series at `path`
    as a new version holding no rows; nothing when they are already in force."""
    if lo is not None and hi is not None and lo > hi:
        raise PondUsageError(f"--min-time {iso(lo)} is after --max-time {iso(hi)}")
    staged = tx.staged
    loc = _stored_series(staged.lookup(path, follow=True), path)
    from ..dynamic.resolver import StagedView

    rows = StagedView(staged).versions(loc.part_id, loc.node_id)
    shown = seriesview.view(rows)
    if shown.bounds == (lo, hi):
        return BoundsResult(loc.path, lo, hi, rows[-1].version, changed=False)
    from ..query import ingest

    newest = shown.rows[-1] if shown.rows else loc.row
    schema = ingest.read_parquet_schema(_source(staged.fs, newest), loc.path)
    empty = schema.empty_table()
    attrs = {
        "time_column": loc.row.extended_attributes.get("time_column"),
        seriesview.BOUNDS_KEY: {"min": lo, "max": hi},
    }
    row = staged.write(
        loc.path, nodes.FILE_SERIES, ingest.table_to_parquet_bytes(empty), attrs=attrs
    )
    return BoundsResult(loc.path, lo, hi, row.version, changed=True)


def _source(fs: PondFS, row: nodes.NodeRow) -> str | bytes:
    return fs.blob_path(row) or row.content or b""


# ---------------------------------------------------------------------------------------------
# collapse


def candidates(fs: PondFS, keep: int) -> list[Located]:
    """Stored series with more than `keep` live versions holding data."""
    out = []
    for loc in fs.glob("/**/*"):
        if loc.file_type != nodes.FILE_SERIES:
            continue
        if len(seriesview.view(fs.versions(loc.part_id, loc.node_id)).rows) > keep:
            out.append(loc)
    return out


def collapse(steward: Steward, keep: int, args: list[str]) -> CollapseReport:
    """Fold every stored series with more than `keep` live versions into one new version
    with the same rows, in one write transaction (none when nothing qualifies)."""
    if keep < 1:
        raise PondUsageError("--collapse-versions needs N >= 1")
    steward.data.refresh()
    found = candidates(steward.fs, keep)
    if not found:
        return CollapseReport(candidates=0)
    done: list[CollapsedSeries] = []
    with steward.transaction(args) as tx:
        # under the write lock now: look again, a writer may have changed them meanwhile
        for loc in candidates(tx.staged.fs, keep):
            done.append(_collapse_one(tx, loc))
            crash_point("collapse_staged_one")
    return CollapseReport(candidates=len(found), collapsed=done)


def _collapse_one(tx: WriteTxn, loc: Located) -> CollapsedSeries:
    import pyarrow.parquet as pq

    from ..query import relations

    fs = tx.staged.fs
    rows = fs.versions(loc.part_id, loc.node_id)
    shown = seriesview.view(rows)
    sources = [_source(fs, r) for r in shown.rows]
    tmp = fs.blobs.temp_path()
    try:
        with ExitStack() as stack:
            files = [stack.enter_context(pq.ParquetFile(_open(s))) for s in sources]
            schema = relations.unify_schemas([f.schema_arrow for f in files])
            total = _write_union(files, schema, tmp)
        _verify(tmp, sources, schema, loc.path)
        lows = [r.min_event_time for r in shown.rows if r.min_event_time is not None]
        highs = [r.max_event_time for r in shown.rows if r.max_event_time is not None]
        lo, hi = min(lows, default=None), max(highs, default=None)
        attrs = {
            "time_column": loc.row.extended_attributes.get("time_column"),
            seriesview.COLLAPSED_KEY: rows[-1].version,
        }
        if shown.bounded:  # the bounds outlive the versions folded here
            attrs[seriesview.BOUNDS_KEY] = {"min": shown.bounds[0], "max": shown.bounds[1]}
        size = tmp.stat().st_size
        if size < nodes.LARGE_CONTENT_THRESHOLD:
            row = tx.staged.write(
                loc.path,
                nodes.FILE_SERIES,
                tmp.read_bytes(),
                min_event_time=lo,
                max_event_time=hi,
                attrs=attrs,
            )
        else:
            blob = fs.blobs.adopt_file(tmp)
            row = tx.staged.write(
                loc.path,
                nodes.FILE_SERIES,
                blob=blob,
                min_event_time=lo,
                max_event_time=hi,
                attrs=attrs,
            )
    finally:
        tmp.unlink(missing_ok=True)
    return CollapsedSeries(loc.path, len(shown.rows), row.version, total)


def _open(source: str | bytes) -> str | pa.BufferReader:
    import pyarrow as pa

    return source if isinstance(source, str) else pa.BufferReader(source)


def _write_union(files: list[pq.ParquetFile], schema: pa.Schema, dest: Path) -> int:
    """Every version's rows, oldest first, one row group at a time, in `schema`."""
    import pyarrow.parquet as pq

    from ..query import ingest, relations

    total = 0
    with pq.ParquetWriter(dest, schema, compression=ingest.PARQUET_COMPRESSION) as w:
        for f in files:
            for i in range(f.num_row_groups):
                part = relations.conform(f.read_row_group(i), schema)
                w.write_table(part)
                total += part.num_rows
    return total


def _verify(written: Path, sources: list[str | bytes], schema: pa.Schema, path: str) -> None:
    """The new version must hold exactly the old versions' rows, in order: each old
    version is read again and compared with the same rows of the new one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..query import relations

    with pq.ParquetFile(written) as out:
        batches = out.iter_batches(batch_size=65_536)
        pending = pa.table([pa.array([], f.type) for f in schema], schema=schema)
        for s in sources:
            want = relations.conform(pq.read_table(_open(s)), schema)
            offset = 0
            while offset < want.num_rows:
                if pending.num_rows == 0:
                    batch = next(batches, None)
                    if batch is None:
                        raise PondError(f"collapse of {path}: the new version lost rows")
                    pending = pa.Table.from_batches([batch])
                n = min(pending.num_rows, want.num_rows - offset)
                if not pending.slice(0, n).equals(want.slice(offset, n)):
                    raise PondError(f"collapse of {path}: the new version differs; nothing written")
                pending = pending.slice(n)
                offset += n
        if pending.num_rows or next(batches, None) is not None:
            raise PondError(f"collapse of {path}: the new version has extra rows")
