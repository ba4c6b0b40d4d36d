"""`oteljson`: OpenTelemetry metrics as JSON lines, as a collector's file exporter writes them.

Each line is an OTLP ExportMetricsServiceRequest in proto3 JSON:
`resourceMetrics[].scopeMetrics[].metrics[]{name, gauge|sum{dataPoints[]{timeUnixNano,
asDouble|asInt}}}`. The table has one row per distinct timestamp (ascending) and one Float64
column per metric name (sorted), NULL where a metric has no point at that time; when a metric
has two points at the same time, the later one in the file wins. `timestamp` is
timestamp[ns, UTC] (OTLP times are UTC nanoseconds). Attributes, resource and scope are not
columns (two series of one metric name with different attributes share a column), and
histograms and summaries are ignored.

Fast path: pyarrow's JSON reader (C++, all cores) parses the whole file against the schema
above, ignoring every other field, and the points are pivoted with vectorised kernels. Any
line it cannot take (a malformed line, a number where proto3 JSON has a string) sends the
file down the line-by-line path, which counts and skips what it cannot read.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from .base import MAX_LINE_BYTES, Options, Parsed, Skipped, lines, no_good_lines, one_line

TIME_COLUMN = "timestamp"
TIME_TYPE = pa.timestamp("ns", tz="UTC")
_KINDS = ("gauge", "sum")
_POINT = pa.struct(
    [
        pa.field("timeUnixNano", pa.string()),
        pa.field("asDouble", pa.float64()),
        pa.field("asInt", pa.string()),
    ]
)
_POINTS = pa.struct([pa.field("dataPoints", pa.list_(_POINT))])
_METRIC = pa.struct([pa.field("name", pa.string()), *(pa.field(kind, _POINTS) for kind in _KINDS)])
_LINE_SCHEMA = pa.schema(
    [
        pa.field(
            "resourceMetrics",
            pa.list_(
                pa.struct(
                    [
                        pa.field(
                            "scopeMetrics",
                            pa.list_(pa.struct([pa.field("metrics", pa.list_(_METRIC))])),
                        )
                    ]
                )
            ),
        )
    ]
)
# pyarrow parses in blocks; a line longer than a block falls back to the line reader
_BLOCK = 8 << 20


def read(data: bytes, options: Options, what: str) -> Parsed:
    if not data.strip():
        return Parsed(_empty())
    fast = _read_fast(data)
    if fast is not None:
        return Parsed(fast)
    return _read_lines(data, what)


def _empty() -> pa.Table:
    return pa.table({TIME_COLUMN: pa.array([], TIME_TYPE)})


# ---------------------------------------------------------------------------------------------
# fast path


def _read_fast(data: bytes) -> pa.Table | None:
    import pyarrow.json as pj

    if b"\0" in data:
        return None  # NUL padding (a crashed writer): the line reader strips it
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=_BLOCK),
            parse_options=pj.ParseOptions(
                explicit_schema=_LINE_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        if table.column("resourceMetrics").null_count:
            return None  # a line that is not a metrics request: the line reader names it
        times, names, values = _points(table)
        if times.null_count or names.null_count:
            return None  # a point without a time or a metric without a name: counted there
        return _pivot_points((times, names, values))
    except (pa.ArrowException, ValueError, OverflowError):
        return None


def _points(table: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(time ns, metric name, value) of every data point, in file order."""
    import pyarrow.compute as pc

    rm = table.column("resourceMetrics").combine_chunks()
    sm = pc.struct_field(pc.list_flatten(rm), "scopeMetrics")
    metrics = pc.list_flatten(pc.struct_field(pc.list_flatten(sm), "metrics"))
    names = pc.struct_field(metrics, "name")
    times, labels, values = [], [], []
    for kind in _KINDS:
        points_of = pc.struct_field(pc.struct_field(metrics, kind), "dataPoints")
        if points_of.null_count == len(points_of):
            continue
        owner = pc.list_parent_indices(points_of)
        points = pc.list_flatten(points_of)
        times.append(pc.struct_field(points, "timeUnixNano"))
        labels.append(pc.take(names, owner))
        as_int = pc.struct_field(points, "asInt").cast(pa.int64()).cast(pa.float64())
        values.append(pc.coalesce(pc.struct_field(points, "asDouble"), as_int))
    if not times:
        empty = pa.array([], pa.string())
        return empty, empty, pa.array([], pa.float64())
    return (
        pa.concat_arrays(times),
        pa.concat_arrays(labels),
        pa.concat_arrays(values),
    )


def _pivot_points(points: tuple[pa.Array, pa.Array, pa.Array]) -> pa.Table:
    import numpy as np
    import pyarrow.compute as pc

    times_text, names, values = points
    keep = pc.and_(pc.is_valid(times_text), pc.is_valid(names))
    keep = pc.and_(keep, pc.is_valid(values))
    if keep.false_count:
        times_text, names, values = (pc.filter(a, keep) for a in (times_text, names, values))
    times = times_text.cast(pa.int64())
    if len(times) == 0:
        return _empty()
    # one row per distinct time, ascending; one column per name, sorted
    uniq_times = pc.unique(times).sort()
    row = pc.index_in(times, value_set=uniq_times).to_numpy()
    uniq_names = pc.unique(names).sort()
    col = pc.index_in(names, value_set=uniq_names).to_numpy()
    n_rows, n_cols = len(uniq_times), len(uniq_names)
    grid = np.full(n_rows * n_cols, np.nan)
    filled = np.zeros(n_rows * n_cols, dtype=bool)
    cell = row.astype(np.int64) * n_cols + col
    # numpy fancy assignment keeps the last write for a repeated index: later points win
    grid[cell] = values.to_numpy(zero_copy_only=False)
    filled[cell] = True
    grid2 = grid.reshape(n_rows, n_cols)
    filled2 = filled.reshape(n_rows, n_cols)
    columns: dict[str, Any] = {TIME_COLUMN: uniq_times.cast(TIME_TYPE)}
    for j, name in enumerate(uniq_names.to_pylist()):
        columns[name] = pa.array(np.ascontiguousarray(grid2[:, j]), mask=~filled2[:, j])
    return pa.table(columns)


# ---------------------------------------------------------------------------------------------
# line-by-line path


def _read_lines(data: bytes, what: str) -> Parsed:
    skipped = Skipped()
    times: list[int] = []
    names: list[str] = []
    values: list[float] = []
    good = 0
    for number, line in lines(data):
        if len(line) > MAX_LINE_BYTES:
            skipped.add(number, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
            continue
        try:
            points = _line_points(json.loads(line))
        except RecursionError:
            skipped.add(number, "JSON nested too deeply")
            continue
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            skipped.add(number, _reason(e))
            continue
        good += 1
        for t, name, value in points:
            times.append(t)
            names.append(name)
            values.append(value)
    if good == 0 and skipped.count:
        raise no_good_lines("oteljson", what, skipped)
    table = _pivot_points(
        (
            pa.array([str(t) for t in times], pa.string()),
            pa.array(names, pa.string()),
            pa.array(values, pa.float64()),
        )
    )
    return Parsed(table, skipped)


def _reason(e: BaseException) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(e, json.JSONDecodeError):
        return f"not JSON ({e.msg} at column {e.colno})"
    return one_line(e) or type(e).__name__


def _line_points(doc: Any) -> list[tuple[int, str, float]]:
    """Every gauge/sum point of one request; ValueError/TypeError when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceMetrics"), list):
        raise ValueError("not an OTLP metrics request (no resourceMetrics list)")
    out: list[tuple[int, str, float]] = []
    for rm in doc["resourceMetrics"]:
        for sm in rm.get("scopeMetrics") or ():
            for metric in sm.get("metrics") or ():
                name = metric.get("name")
                if not isinstance(name, str):
                    raise ValueError("a metric without a name")
                for kind in _KINDS:
                    body = metric.get(kind)
                    if body is None:
                        continue
                    for point in body.get("dataPoints") or ():
                        value = point.get("asDouble")
                        if value is None:
                            value = point.get("asInt")
                        if value is None:
                            continue  # a point with no value carries nothing
                        out.append((_int(point["timeUnixNano"]), name, float(value)))
    return out


def _int(value: Any) -> int:
    # proto3 JSON writes 64-bit integers as strings; numbers are accepted too
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"timeUnixNano is {type(value).__name__}, not an integer")
    return int(value)
