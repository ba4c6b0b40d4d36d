"""temporal-reduce over a stored series with sealed buckets (`allowed_lateness`).

A bucket is sealed once the newest data is at least `allowed_lateness` past its end: its
output row is saved (factories/seal_store.py) and never recomputed. A read then costs in
proportion to the data that can still change: it lists only the input's versions from the
last one the seal has seen on, checks that this one is still the same row at the same
place, reads only the versions reaching the open buckets and recomputes those buckets with
pyarrow.compute. Which versions those are needs no pass over the history either: appends
leave the live versions before them live and the series' bounds as they were (seriesview),
so the seal records the live versions reaching its open buckets and the bounds, and a read
opens those and the new versions, each looked up by number.

Checking the last seen version suffices: a series' versions are only ever added after its
newest (with a new version number and transaction), never rewritten in place or inserted
before it, so when the series still has that version at the same position (the same node,
version number, content hash and transaction), the versions before it are the ones sealed.
A version removed (the position moves), the series removed and written again (another
node) or its history rewritten (another row there) fails the check.

Anything but an append (a version removed or reverted, versions collapsed into one, a
version whose attributes change how the others read, like temporal bounds, a different
time column) fails the check, and the whole series is recomputed and sealed again: numbers
are never stale. An appended version holding data for a sealed bucket is an error naming
the bucket; `pond run NODE rebuild` (or any config change) drops the seals.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .. import paths, seriesview
from ..errors import FactoryError
from .live import LiveFile, VersionSpan, VersionTail, time_to_us
from .seal_store import EMPTY, SealState, SealStore, version_key

if TYPE_CHECKING:
    import pyarrow as pa

    from .reduce_calendar import Resolution

# the attributes an ordinary appended series version carries (txn.py); any other one may
# change how the series reads (temporal bounds, collapse), so it is never taken as an append
PLAIN_ATTRIBUTES = frozenset({"time_column"})

# pyarrow's hash aggregation for each of temporal-reduce's
_PYARROW_AGG = {"avg": "mean", "min": "min", "max": "max", "sum": "sum", "count": "count"}


class SealedReduction:
    """One reduced series (input x resolution) read through its seals."""

    def __init__(
        self,
        *,
        path: str,
        source: LiveFile,
        resolution: Resolution,
        lateness: int,
        time_column: str,
        aggregations: list[dict[str, Any]],
        store: SealStore,
    ) -> None:
        self.path = path
        self.source = source
        self.res = resolution
        self.lateness = lateness
        self.tc = time_column
        self.aggregations = aggregations
        self.store = store

    def compute(self) -> pa.Table | None:
        """Every bucket of the series: the sealed ones as saved, the open ones recomputed;
        seals what has become old enough. None when the input is not a stored series with
        versions (no sealing: the caller reduces all its rows)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from ..query import relations

        saved = self.store.load()
        # the versions from the last one the seal has seen on (all of them with no seal)
        tail = self.source.version_tail(max(saved.count - 1, 0))
        if tail is None or tail.total == 0:
            return None
        appended = self._still_valid(saved, tail)
        state = saved if appended else EMPTY
        if not appended and tail.first > 0:  # a full recompute: every version
            tail = self.source.version_tail(0)
            if tail is None or tail.total == 0:
                return None
        new_spans = tail.spans[state.count - tail.first :]
        self._refuse_late(state, new_spans)
        if appended:
            # appends only: the live versions are the seal's and the new ones, the bounds
            # the seal's (seriesview), so only the versions reaching the open buckets are
            # looked up, not the whole history
            bounds = saved.bounds
            live = dict(saved.hot) | {s.version: s.max_time for s in new_spans}
            hi = state.sealed_hi
            reopen = {v for v, top in live.items() if hi is None or top is None or top >= hi}
            reopen.add(tail.spans[-1].version)  # the newest: the schema when none reaches
            hot_in = self.source.scan_versions(sorted(reopen), bounds, hi, None)
        else:
            bounds = seriesview.bounds(tail.spans)
            live = {s.version: s.max_time for s in seriesview.live_rows(tail.spans)}
            hot_in = self.source.scan(None, None)
        schema = relations.unify_schemas([hot_in.schema])
        if state.input_schema is not None:
            schema = relations.unify_schemas([state.input_schema, schema])
        hot = self._aggregate(relations.conform(hot_in, schema))
        newest = max(
            (t for t in (_max_time(hot_in, self.tc), state.newest) if t is not None),
            default=None,
        )
        sealed = state.sealed
        # the saved runs stay valid while the output's columns do; else all are rewritten
        incremental = appended and (sealed is None or sealed.schema == hot.schema)
        if sealed is not None:
            sealed = relations.conform(sealed, hot.schema)
        added = None
        sealed_hi = state.sealed_hi
        if newest is not None:
            # a bucket is sealed once its end is at least `lateness` before the newest data
            watermark = self.res.floor(newest - self.lateness)
            if sealed_hi is None or watermark > sealed_hi:
                closing = pc.less(hot.column(self.tc).cast(pa.int64()), watermark)
                added = hot.filter(closing)
                hot = hot.filter(pc.invert(closing))
                sealed = added if sealed is None else pa.concat_tables([sealed, added])
                sealed_hi = watermark
        last = tail.spans[-1]
        new = SealState(
            generation=saved.generation + 1,
            count=tail.total,
            last=version_key(last.ident, last.txn_seq),
            sealed_hi=sealed_hi,
            newest=newest,
            seen_txn=max([state.seen_txn, *(s.txn_seq for s in new_spans)]),
            input_schema=schema,
            sealed=sealed,
            files=(),
            hot=tuple(
                (v, top)
                for v, top in sorted(live.items())
                if sealed_hi is None or top is None or top >= sealed_hi
            ),
            bounds=bounds,
        )
        if _changed(saved, new):
            if incremental and added is None:
                added = hot.slice(0, 0)  # no run to add
            self.store.save(saved, new, added if incremental else None)
        return hot if sealed is None else pa.concat_tables([sealed, hot])

    def _still_valid(self, state: SealState, tail: VersionTail) -> bool:
        """The seal's versions are the input's first ones, unchanged (its last one is still
        the same row at the same position: the module's docstring says why that suffices),
        and every later one is an ordinary append in the same time column."""
        if state.count == 0 or state.count > tail.total or tail.first != state.count - 1:
            return False
        seen = tail.spans[0]
        if version_key(seen.ident, seen.txn_seq) != state.last:
            return False
        return all(
            set(s.attributes) <= PLAIN_ATTRIBUTES
            and s.attributes.get("time_column", self.tc) == self.tc
            for s in tail.spans[1:]
        )

    def _refuse_late(self, state: SealState, new: list[VersionSpan]) -> None:
        hi = state.sealed_hi
        if hi is None:
            return
        late = [s for s in new if s.min_time is not None and s.min_time < hi]
        if not late:
            return
        first = min(late, key=lambda s: s.min_time or 0)
        start = self.res.floor(first.min_time or 0)
        raise FactoryError(
            f"{self.path}: version {first.version} of {self.source.path} holds data for the sealed "
            f"bucket starting {_iso(start)} (resolution {self.res.text}): buckets before "
            f"{_iso(hi)} are sealed (allowed_lateness {_duration(self.lateness)}). To take it "
            f"in, run `pond run {_node_of(self.path)} rebuild` (or raise allowed_lateness)"
        )

    def _aggregate(self, table: pa.Table) -> pa.Table:
        return aggregate(table, self.tc, self.res, self.aggregations, self.path, self.source.path)


def aggregate(
    table: pa.Table,
    tc: str,
    res: Resolution,
    aggregations: list[dict[str, Any]],
    path: str,
    source: str,
) -> pa.Table:
    """The output rows of `table`: one per bucket of `res`, `<column>.<agg>` columns in the
    order reduce.py's query gives them."""
    import pyarrow as pa

    schema = table.schema
    numeric = numeric_columns(schema, tc, path, source)
    wanted: list[tuple[str, str]] = []
    for agg in aggregations:
        for c in agg["columns"] or numeric:
            if schema.get_field_index(c) >= 0:  # a listed column reduces where it exists
                wanted.append((c, agg["type"]))
    if not wanted:
        raise FactoryError(f"{path}: {source} has no numeric column to reduce")
    times = time_to_us(table.select([tc]), tc).column(0).cast(pa.int64())
    table = table.filter(times.is_valid())
    raw = times.filter(times.is_valid()).to_numpy()
    try:
        buckets = pa.array(res.starts(raw), pa.int64())
    except FactoryError as e:
        raise FactoryError(f"{path}: {source}: {e}") from None
    columns = sorted({c for c, _ in wanted})
    grouped = pa.table(
        {"__bucket": buckets, **{f"c{i}": table.column(c) for i, c in enumerate(columns)}}
    )
    index = {c: f"c{i}" for i, c in enumerate(columns)}
    specs = sorted({(index[c], _PYARROW_AGG[kind]) for c, kind in wanted})
    try:
        out = grouped.group_by("__bucket").aggregate(specs)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid) as e:
        raise FactoryError(f"{path}: cannot reduce {source}: {e}") from None
    out = out.sort_by("__bucket")
    arrays = [out.column("__bucket").cast(pa.timestamp("us", tz="UTC"))]
    names = [tc]
    for c, kind in wanted:
        arrays.append(out.column(f"{index[c]}_{_PYARROW_AGG[kind]}"))
        names.append(f"{c}.{kind}")
    return pa.table(arrays, names=names)


def numeric_columns(schema: pa.Schema, tc: str, path: str, source: str) -> list[str]:
    """The columns a reduction aggregates by default, once the time column `tc` is known to
    be there and to hold times (else a FactoryError naming `path` and its `source`)."""
    import pyarrow as pa

    idx = schema.get_field_index(tc)
    if idx < 0:
        raise FactoryError(f"{path}: time column '{tc}' not in {source}")
    t = schema.field(idx).type
    if not (pa.types.is_timestamp(t) or pa.types.is_integer(t)):
        raise FactoryError(f"{path}: time column '{tc}' has type {t}, not a time")
    return [
        f.name
        for f in schema
        if f.name != tc and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def _max_time(table: pa.Table, tc: str) -> int | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return None
    value = pc.max(time_to_us(table.select([tc]), tc).column(0).cast(pa.int64())).as_py()
    return None if value is None else int(value)


def _changed(old: SealState, new: SealState) -> bool:
    return (
        old.count != new.count
        or old.last != new.last
        or old.sealed_hi != new.sealed_hi
        or old.newest != new.newest
        or old.input_schema != new.input_schema
    )


def _iso(us: int) -> str:
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return t.isoformat().replace("+00:00", "Z")


def _duration(us: int) -> str:
    for unit, size in (("w", 604_800_000_000), ("d", 86_400_000_000), ("h", 3_600_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    return f"{us / 1_000_000:g}s"


def _node_of(path: str) -> str:
    """The reduce node of one of its files (`/reduced/site/res=1h.series` -> `/reduced`)."""
    return paths.parent(paths.parent(path))
