"""What the site charts: the pond's series, each with its tiers (resolutions) read as columns.

A series is a `file:series` node (stored or derived). A temporal-reduce output
(`.../res=<dur>.series`) is not a series of its own: it is a tier of its input, charted on the
input's page. A series without enough tiers gets coarser ones computed here (time buckets), so
that the coarsest tier always shows the whole span within the target number of points.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import nodes, paths
from ..errors import PondError
from .config import SiteConfig

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from ..factories.live import LiveFile
    from .source import SiteSource

log = logging.getLogger("pond")

# A series with at most this many rows is also charted as it is (its finest tier), and a
# tier with more rows is left out (site size: a phone downloads what it shows).
RAW_LIMIT = MAX_TIER_ROWS = 50_000
# Resolutions the site computes itself when a series lacks coarse enough tiers.
LADDER = ("1m", "5m", "15m", "1h", "6h", "1d", "7d", "30d", "365d")
_RES = re.compile(r"^res=(.+)\.series$")
_AGG = ("avg", "min", "max", "sum", "count")


@dataclass
class Tier:
    name: str  # "raw", or a resolution such as "1h"
    res_us: int  # bucket width (raw: the mean interval between rows)
    path: str | None  # the pond path read (None: computed from the series here)
    node: Any = None  # the live (derived) node at `path`, as discover found it
    time_ms: np.ndarray[Any, Any] | None = None  # int64 ms since the epoch, sorted
    columns: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)  # name -> float64
    lines: dict[str, dict[str, str]] = field(default_factory=dict)  # base -> mid/lo/hi names

    @property
    def rows(self) -> int:
        return 0 if self.time_ms is None else len(self.time_ms)


@dataclass
class Series:
    path: str
    node: LiveFile
    time_column: str
    # res -> (bucket µs, path, live node)
    tier_nodes: dict[str, tuple[int, str, Any]] = field(default_factory=dict)
    tiers: list[Tier] = field(default_factory=list)
    rows: int = 0
    first_us: int | None = None
    last_us: int | None = None
    last_values: dict[str, Any] = field(default_factory=dict)
    updated_us: int | None = None

    @property
    def bases(self) -> list[str]:
        out: list[str] = []
        for t in self.tiers:
            out.extend(b for b in t.lines if b not in out)
        return out


def discover(pond: SiteSource, cfg: SiteConfig) -> list[Series]:
    """Every series the config selects, sorted by path, with its temporal-reduce tiers."""
    from ..dynamic import Resolver

    resolver = Resolver.for_pond(pond)
    globs = [paths.compile_glob(g) for g in cfg.series]
    found: dict[str, Series] = {}
    tiers: dict[str, dict[str, tuple[int, str, Any]]] = {}
    selected: set[str] = set()
    for node in resolver.glob("/**/*", strict=False):
        if not nodes.is_series(node.file_type):
            continue
        chosen = any(g.match(node.path) for g in globs)
        m = _RES.match(paths.basename(node.path))
        source = getattr(node, "input", None)
        if node.factory == "temporal-reduce" and m and source is not None:
            res = m.group(1)
            entry = (int(node.bucket), node.path, node)  # type: ignore[attr-defined]
            tiers.setdefault(source.path, {}).setdefault(res, entry)
            if chosen:
                selected.add(source.path)
            if source.path not in found and nodes.is_series(source.file_type):
                _add(found, source)
            continue
        if node.path not in found:
            _add(found, node)
        if chosen:
            selected.add(node.path)
    out = []
    for path in sorted(selected):
        if path not in found:
            continue
        s = found[path]
        s.tier_nodes = tiers.get(path, {})
        out.append(s)
    return out


def _add(found: dict[str, Series], node: Any) -> None:
    try:
        found[node.path] = _series(node)
    except NoTimeColumn:
        log.warning("site: %s has no timestamp column to chart it by: left out", node.path)


class NoTimeColumn(PondError):
    pass


def _series(node: Any) -> Series:
    tc = node.time_column or _detect_time(node.schema())
    return Series(path=node.path, node=node, time_column=tc)


def _detect_time(schema: pa.Schema) -> str:
    import pyarrow as pa

    for f in schema:
        if pa.types.is_timestamp(f.type):
            return str(f.name)
    raise NoTimeColumn("no timestamp column")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _numeric(schema: pa.Schema, tc: str) -> list[str]:
    import pyarrow as pa

    return [
        f.name
        for f in schema
        if f.name != tc and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def load(pond: SiteSource, s: Series, target: int, known: dict[str, Any] | None = None) -> None:
    """Read `s`'s facts and tiers (the pond's own data: no clock, no randomness)."""
    loc = pond.lookup(s.path)
    s.updated_us = loc.row.timestamp if loc is not None else None
    if not _stored_facts(s, known if known is not None else {}):
        tc = _q(s.time_column)
        stats = pond.sql(
            f"SELECT count(*) AS n, min({tc}) AS lo, max({tc}) AS hi FROM source", path=s.path
        )
        s.rows = int(stats.column("n")[0].as_py() or 0)
        lo, hi = stats.column("lo")[0], stats.column("hi")[0]
        s.first_us = _us(lo.as_py()) if lo.is_valid else None
        s.last_us = _us(hi.as_py()) if hi.is_valid else None
        if s.last_us is not None:
            last = pond.sql(
                f"SELECT * FROM source ORDER BY {tc} DESC LIMIT 1",
                path=s.path,
                time_start=s.last_us,
            )
            if last.num_rows:
                row = last.to_pylist()[0]
                s.last_values = {c: row[c] for c in _numeric(last.schema, s.time_column)}
    if s.rows == 0 or s.first_us is None or s.last_us is None:
        return
    span = max(s.last_us - s.first_us, 1)
    candidates: list[Tier] = []
    for name, (res_us, path, node) in sorted(s.tier_nodes.items(), key=lambda kv: kv[1][0]):
        candidates.append(Tier(name=name, res_us=res_us, path=path, node=node))
    if s.rows <= RAW_LIMIT:
        raw = Tier(name="raw", res_us=max(span // max(s.rows - 1, 1), 1), path=s.path)
        candidates = [raw, *[t for t in candidates if t.res_us > raw.res_us]]
    # coarser tiers of the site's own until one shows the whole span within `target`
    if not any(span / t.res_us <= target for t in candidates):
        from ..factories.live import parse_duration

        coarsest = max((t.res_us for t in candidates), default=0)
        for name in LADDER:
            res = parse_duration(name)
            if res <= coarsest or span / res > MAX_TIER_ROWS:
                continue
            candidates.append(Tier(name=name, res_us=res, path=None))
            if span / res <= target:
                break
    kept: list[Tier] = []
    for t in sorted(candidates, key=lambda t: t.res_us):
        if span / t.res_us > MAX_TIER_ROWS:
            log.info("site: %s: tier %s left out (over %d rows)", s.path, t.name, MAX_TIER_ROWS)
            continue
        kept.append(t)
        if span / t.res_us <= target:
            break  # anything coarser would never be chosen
    allowed: list[str] | None = None
    for t in kept:
        _read_tier(pond, s, t, allowed)
        if t.path is not None and t.name != "raw":
            allowed = list(t.lines)
    s.tiers = [t for t in kept if t.rows]


def _stored_facts(s: Series, known: dict[str, Any]) -> bool:
    """Rows, time span and last row of a stored series from its versions' Parquet footers
    and event-time bounds, reading only the newest version's rows (a year of minutes in
    one version: a SQL scan of it costs more than charting it).

    `known` maps a stored node's version key (node id @ version: its content never
    changes) to these facts as the previous build found them; it is updated in place."""
    import io

    import pyarrow.parquet as pq

    parts = s.node.parts()
    if not parts or any(p.min_time is None or p.max_time is None for p in parts):
        return False
    key = s.node.key()
    facts = known.get(key)
    if isinstance(facts, dict) and set(facts) == {"rows", "first", "last", "values"}:
        s.rows, s.first_us, s.last_us = facts["rows"], facts["first"], facts["last"]
        s.last_values = dict(facts["values"])
        return True
    s.rows = 0
    for p in parts:
        with pq.ParquetFile(p.path if p.path is not None else io.BytesIO(p.data)) as f:
            s.rows += f.metadata.num_rows
    s.first_us = min(p.min_time for p in parts)
    s.last_us = max(p.max_time for p in parts)
    newest = max(parts, key=lambda p: p.max_time)
    table = pq.read_table(newest.path if newest.path is not None else io.BytesIO(newest.data))
    times = _times_ms(table.column(s.time_column)) if table.num_rows else None
    if times is not None:
        i = int(times.argmax())
        row = table.slice(i, 1).to_pylist()[0]
        s.last_values = {c: row[c] for c in _numeric(table.schema, s.time_column)}
    known[key] = {"rows": s.rows, "first": s.first_us, "last": s.last_us, "values": s.last_values}
    return True


def _read_tier(pond: SiteSource, s: Series, t: Tier, bases: list[str] | None) -> None:

    tc = s.time_column
    if t.path is None:
        schema = s.node.schema()
        cols = [c for c in _numeric(schema, tc) if bases is None or c in bases]
        if not cols:
            return
        from ..query.sql import time_bucket_sql

        bucket = time_bucket_sql(t.res_us, tc, schema.field(tc).type)
        aggs = ", ".join(
            f"{k}({_q(c)}) AS {_q(c + '.' + k)}" for c in cols for k in ("avg", "min", "max")
        )
        table = pond.sql(
            f"SELECT {bucket} AS {_q(tc)}, {aggs} FROM source GROUP BY 1 ORDER BY 1",
            path=s.path,
        )
    elif t.node is not None:
        table = _sql_node(t.node, f"SELECT * FROM source ORDER BY {_q(tc)}")
    else:
        table = pond.sql(f"SELECT * FROM source ORDER BY {_q(tc)}", path=t.path)
    t.time_ms = _times_ms(table.column(tc))
    names = _numeric(table.schema, tc)
    t.columns = {n: _floats(table.column(n)) for n in names}
    t.lines = _lines(names, raw=t.name == "raw")


def _sql_node(node: LiveFile, query: str) -> pa.Table:
    """`query` over a derived node as `source`: what `Pond.sql(query, path=node.path)` does
    (same limits, same registration), without resolving the path again (~1 ms a tier:
    discover's resolver already built the node, from the same pond state)."""
    from ..dynamic import reads
    from ..query import sql

    ctx = sql.make_context()
    reads.register(ctx, node, "series", None, None, None)
    return sql.run_sql(ctx, query)


def _lines(names: list[str], raw: bool) -> dict[str, dict[str, str]]:
    """base column -> {mid, lo?, hi?}: the line and its min/max envelope."""
    if raw:
        return {n: {"mid": n} for n in names}
    groups: dict[str, dict[str, str]] = {}
    for n in names:
        base, _, agg = n.rpartition(".")
        if agg in _AGG and base:
            groups.setdefault(base, {})[agg] = n
        else:
            groups.setdefault(n, {})["avg"] = n
    out: dict[str, dict[str, str]] = {}
    for base, aggs in groups.items():
        mid = aggs.get("avg") or aggs.get("max") or aggs.get("min") or aggs.get("sum")
        mid = mid or aggs["count"]
        line = {"mid": mid}
        if "min" in aggs and "max" in aggs:
            line["lo"], line["hi"] = aggs["min"], aggs["max"]
        out[base] = line
    return out


def _times_ms(col: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    import numpy as np
    import pyarrow as pa

    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
    else:
        col = col.cast(pa.int64())  # an integer time column holds µs
    return np.asarray(col.to_numpy(), dtype=np.int64) // 1000


def _floats(col: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """float64 values, NaN where null (what the chart and the data files hold)."""
    import numpy as np
    import pyarrow as pa

    col = col.cast(pa.float64()).fill_null(float("nan"))
    return np.ascontiguousarray(col.to_numpy(), dtype="<f8")


def _us(value: Any) -> int:
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta: dt.timedelta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(str(value))
