"""Temporal partitions of a series: its rows by UTC year, month, day, hour (pyarrow).

Hive directory names as DuckPond (and delta-rs) write them: `year=2024/month=5/day=7`.
Unpadded on purpose: DuckDB infers `month=05` as VARCHAR but `month=5` as BIGINT, so only
plain numbers are integers in every engine. The partition columns live in the directory
names only (the Hive convention).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import PondUsageError

if TYPE_CHECKING:
    import pyarrow as pa

_SCALE = {"year": 1_000_000, "month": 10_000, "day": 100, "hour": 1}


def time_column(path: str, schema: pa.Schema, declared: str | None) -> str:
    """The series' time column: the one recorded with it, else its first timestamp."""
    import pyarrow as pa

    if declared and declared in schema.names:
        return declared
    for f in schema:
        if pa.types.is_timestamp(f.type):
            return str(f.name)
    raise PondUsageError(f"{path} has no timestamp column to partition by (use --temporal none)")


def check_names(path: str, schema: pa.Schema, parts: tuple[str, ...]) -> None:
    clash = [p for p in parts if p in schema.names]
    if clash:
        raise PondUsageError(
            f"{path} already has a column named {clash[0]!r}: it cannot also be a "
            "partition (choose other --temporal parts, or none)"
        )


def columns(
    path: str, table: pa.Table, tc: str, parts: tuple[str, ...]
) -> tuple[pa.Table, dict[str, pa.Array]]:
    """`table` sorted by time, and its partition values (int32) in that order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.sort_by(tc)
    ts = table.column(tc)
    if ts.null_count:
        raise PondUsageError(f"{path} has {ts.null_count} row(s) without a time in {tc!r}")
    unit = ts.type.unit
    # A naive time is UTC in the pond (SPEC): the cast only labels it; an aware one keeps
    # its instant and is split by its UTC calendar.
    utc = ts.cast(pa.timestamp(unit, "UTC"))
    funcs = {"year": pc.year, "month": pc.month, "day": pc.day, "hour": pc.hour}
    return table, {p: funcs[p](utc).cast(pa.int32()).combine_chunks() for p in parts}


def split(
    table: pa.Table, values: dict[str, pa.Array]
) -> Iterator[tuple[tuple[tuple[str, int], ...], pa.Table]]:
    """Runs of rows with equal partition values (the table is sorted by time, so each
    partition is one run): ((part, value), ...), rows."""
    import numpy as np

    if not values or table.num_rows == 0:
        if table.num_rows:
            yield (), table
        return
    key = np.zeros(table.num_rows, dtype=np.int64)
    for part, arr in values.items():
        key += arr.to_numpy().astype(np.int64) * _SCALE[part]
    starts = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist()]
    ends = [*starts[1:], table.num_rows]
    for a, b in zip(starts, ends, strict=True):
        labels = tuple((p, int(values[p][a].as_py())) for p in values)
        yield labels, table.slice(a, b - a)


def directory(labels: tuple[tuple[str, int], ...]) -> str:
    """`year=2024/month=5`."""
    return "/".join(f"{p}={v}" for p, v in labels)
