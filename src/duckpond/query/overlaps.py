"""`pond detect-overlaps`: which live versions of a series cover the same times.

Each version's min/max event time is stored with it, so the pairs whose ranges meet are
found from those alone (a sweep over versions sorted by start); only the versions of
such pairs are opened, and only their time column is read, to count exactly the rows
inside the shared range and the timestamps both versions hold (re-ingested data).
Temporal bounds are not applied: this looks at what is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .. import nodes, seriesview
from ..errors import NotFoundError, PondUsageError
from ..jsonvalues import JSON
from .pondview import LocatedNode

if TYPE_CHECKING:
    import pyarrow as pa


class SeriesStore(Protocol):
    """What finding overlaps needs of the pond (storage.fs.PondFS)."""

    def glob(self, pattern: str) -> Sequence[LocatedNode]: ...
    def versions(self, part_id: str, node_id: str) -> list[nodes.NodeRow]: ...
    def blob_path(self, row: nodes.NodeRow) -> str | None: ...


@dataclass(frozen=True)
class Overlap:
    """Versions `first` < `second` both holding times in [start, end] (µs UTC)."""

    first: int
    second: int
    start: int
    end: int
    first_rows: int  # rows of `first` in [start, end]
    second_rows: int
    same_times: int  # rows of `second` whose time `first` also holds

    def to_json(self) -> dict[str, JSON]:
        return {
            "versions": [self.first, self.second],
            "start": iso(self.start),
            "end": iso(self.end),
            "rows": [self.first_rows, self.second_rows],
            "same_times": self.same_times,
        }


@dataclass(frozen=True)
class SeriesOverlaps:
    path: str
    versions: int  # live versions holding rows
    overlapping_rows: int  # rows, over all versions, inside some shared range
    overlaps: list[Overlap] = field(default_factory=list)

    def to_json(self) -> dict[str, JSON]:
        return {
            "path": self.path,
            "versions": self.versions,
            "overlapping_rows": self.overlapping_rows,
            "overlaps": [o.to_json() for o in self.overlaps],
        }


@dataclass(frozen=True)
class OverlapReport:
    series: list[SeriesOverlaps]

    @property
    def overlaps(self) -> int:
        return sum(len(s.overlaps) for s in self.series)

    def to_json(self) -> dict[str, JSON]:
        return {"overlaps": self.overlaps, "series": [s.to_json() for s in self.series]}


def iso(us: int) -> str:
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return t.isoformat().replace("+00:00", "Z")


def detect(store: SeriesStore, patterns: Sequence[str]) -> OverlapReport:
    """The overlaps of every stored series matching `patterns` (each must match one)."""
    if not patterns:
        raise PondUsageError("give at least one path or glob")
    found: dict[str, LocatedNode] = {}
    for pattern in patterns:
        matched = [loc for loc in store.glob(pattern) if loc.file_type == nodes.FILE_SERIES]
        if not matched:
            raise NotFoundError(f"no stored series matches {pattern}")
        for loc in matched:
            found.setdefault(loc.path, loc)
    return OverlapReport([_series(store, found[p]) for p in sorted(found)])


def _series(store: SeriesStore, loc: LocatedNode) -> SeriesOverlaps:
    rows = seriesview.view(store.versions(loc.part_id, loc.node_id)).rows
    spans = sorted(
        (r for r in rows if r.min_event_time is not None and r.max_event_time is not None),
        key=lambda r: (r.min_event_time, r.version),
    )
    # sweep: a version meets every earlier one still open at its start
    pairs: list[tuple[nodes.NodeRow, nodes.NodeRow, int, int]] = []
    open_rows: list[nodes.NodeRow] = []
    for r in spans:
        lo, hi = _span(r)
        open_rows = [o for o in open_rows if _span(o)[1] >= lo]
        for o in open_rows:
            a, b = (o, r) if o.version < r.version else (r, o)
            pairs.append((a, b, lo, min(hi, _span(o)[1])))
        open_rows.append(r)
    if not pairs:
        return SeriesOverlaps(loc.path, len(rows), 0)
    column = str(loc.row.extended_attributes.get("time_column") or "")
    times: dict[int, pa.Array] = {}

    def times_of(r: nodes.NodeRow) -> pa.Array:
        if r.version not in times:
            times[r.version] = _read_times(store, r, column, loc.path)
        return times[r.version]

    import pyarrow.compute as pc

    overlaps = []
    inside: dict[int, pa.Array] = {}  # per version: rows inside any shared range
    for a, b, lo, hi in sorted(pairs, key=lambda p: (p[0].version, p[1].version)):
        ta, tb = times_of(a), times_of(b)
        ma, mb = _within(ta, lo, hi), _within(tb, lo, hi)
        for r, m in ((a, ma), (b, mb)):
            inside[r.version] = pc.or_(inside[r.version], m) if r.version in inside else m
        same = pc.is_in(tb.filter(mb), value_set=ta.filter(ma))
        overlaps.append(
            Overlap(
                a.version,
                b.version,
                lo,
                hi,
                _count(ma),
                _count(mb),
                _count(same),
            )
        )
    total = sum(_count(m) for m in inside.values())
    return SeriesOverlaps(loc.path, len(rows), total, overlaps)


def _span(r: nodes.NodeRow) -> tuple[int, int]:
    assert r.min_event_time is not None and r.max_event_time is not None
    return r.min_event_time, r.max_event_time


def _within(t: pa.Array, lo: int, hi: int) -> pa.Array:
    import pyarrow.compute as pc

    return pc.fill_null(pc.and_(pc.greater_equal(t, lo), pc.less_equal(t, hi)), False)


def _count(mask: pa.Array) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(mask.cast("int64")).as_py() or 0)


def _read_times(store: SeriesStore, row: nodes.NodeRow, column: str, path: str) -> pa.Array:
    """A version's time column as int64 µs UTC (nulls kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    blob = store.blob_path(row)
    source = blob if blob is not None else pa.BufferReader(row.content or b"")
    col = pq.read_table(source, columns=[column]).column(0).combine_chunks()
    t = col.type
    if pa.types.is_timestamp(t):
        raw = col.cast(pa.timestamp(t.unit)).cast(pa.int64())
        if t.unit == "ns":
            return _floordiv_1000(raw)  # as the stored min/max do (query.ingest)
        return pc.multiply(raw, {"s": 1_000_000, "ms": 1_000, "us": 1}[t.unit])
    if pa.types.is_date32(t):
        return pc.multiply(col.cast(pa.int32()).cast(pa.int64()), 86_400_000_000)
    if pa.types.is_date64(t):
        return pc.multiply(col.cast(pa.int64()), 1_000)
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    raise NotFoundError(f"{path} v{row.version}: time column '{column}' has type {t}")


def _floordiv_1000(a: pa.Array) -> pa.Array:
    """Floor division by 1,000 in integers (divide truncates toward zero)."""
    import pyarrow.compute as pc

    q = pc.divide(a, 1_000)
    neg = pc.and_(pc.less(a, 0), pc.not_equal(pc.multiply(q, 1_000), a))
    return pc.subtract(q, pc.cast(neg, "int64"))
