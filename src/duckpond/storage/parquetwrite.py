"""Parquet files of a Delta table, written by the pond itself (delta-rs does not sync
them): the file layout (codec, row groups, which columns get statistics), the Delta
statistics of an add action taken from the footer just written, and the add action of a
file already on disk (repairs)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .durability import fsync_dir, fsync_file
from .pqread import pq  # pyarrow.parquet, imported on first use
from .tableread import open_parquet

SMALL_ROWS = 64
ROW_GROUP_ROWS = 16_384
# A row group holds at most this much `content` (the data table's inline file bodies):
# reading one small file's body decodes its whole row group, and a compacted file's bodies
# in one group made each such read decode all of them (2 MB and more), which a long-lived
# pond then kept in its content cache (bench 12). A bigger body has a row group of its
# own. Not smaller: listing reads every other column of every group (a 10,000-row file in
# 256 KiB groups was 41 groups and `pond list` of it ~6 % slower).
ROW_GROUP_CONTENT_BYTES = 1024 * 1024
SMALL_BYTES = 16 * 1024
NO_STATS_COLUMNS = ("content",)
# Free text and hashes: null counts only, no min/max (neither in the Parquet footer nor in
# the add action). Their bounds prune nothing a reader asks for (a hash's 32-character
# prefix, a JSON or argument text) and cost bytes in every footer, log entry and
# checkpoint. Columns readers filter on (txn_seq, timestamps, versions, node and txn ids,
# types and states) keep their bounds.
NULLS_ONLY_COLUMNS = frozenset(
    {"content_hash", "extended_attributes", "cli_args", "vars", "error_message"}
)


@dataclass
class FileAction:
    """An add (or, for compaction, remove) of one Parquet file. `stats` is the add's Delta
    statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`); None: only the count.
    `data_change` False marks a rewrite of rows already in the table (compaction)."""

    path: str
    size: int
    partition_values: dict[str, str]
    num_records: int
    modification_time: int
    remove: bool = False
    stats: dict[str, Any] | None = None
    data_change: bool = True
    # The first row of each row group, as written (not part of the log entry).
    group_starts: list[int] | None = None
    # The file's sha256, recorded in the commit's `pond_sha256` (a restore checks it).
    sha256: str | None = None

    def to_json(self, now_ms: int) -> dict[str, Any]:
        if self.remove:
            return {
                "remove": {
                    "path": self.path,
                    "deletionTimestamp": now_ms,
                    "dataChange": self.data_change,
                    "extendedFileMetadata": True,
                    "partitionValues": self.partition_values,
                    "size": self.size,
                }
            }
        stats = self.stats if self.stats is not None else {"numRecords": self.num_records}
        return {
            "add": {
                "path": self.path,
                "partitionValues": self.partition_values,
                "size": self.size,
                "modificationTime": self.modification_time,
                "dataChange": self.data_change,
                "stats": json.dumps(stats, separators=(",", ":")),
            }
        }


# Delta's statistics: strings are cut to this many characters (as Spark does); a cut max
# gets the highest code point appended, so it stays an upper bound.
STATS_STRING_PREFIX = 32
_MAX_CHAR = "\U0010ffff"
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}
# Arrow type ids whose Parquet min/max Delta readers use (a type-id lookup: this runs for
# every column of every file written, ~3 per write).
_INT, _STR, _TS, _DATE = range(4)
_KINDS = {
    **{t.id: _INT for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())},
    **{t.id: _INT for t in (pa.uint8(), pa.uint16(), pa.uint32())},
    pa.string().id: _STR,
    pa.large_string().id: _STR,
    pa.timestamp("us").id: _TS,
    pa.date32().id: _DATE,
}


def file_stats(
    md: pq.FileMetaData,
    schema: pa.Schema,
    skip: tuple[str, ...] = (),
    nulls_only: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Delta statistics of a Parquet file from its footer (no data read): per column with
    statistics in every row group, its min, max (ints, strings, dates, timestamps) and
    null count. Columns in `skip` (partition columns: their value is in the path) and
    columns whose statistics Delta readers cannot use (binary, floats whose NaN Parquet
    leaves out, booleans) get no bounds. `nulls_only`: null counts of columns written
    without Parquet statistics (NULLS_ONLY_COLUMNS), counted by the caller."""
    out: dict[str, Any] = {"numRecords": md.num_rows}
    if md.num_columns != len(schema):
        return out  # nested columns: Parquet's leaves are not the schema's fields
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    groups = [md.row_group(i) for i in range(md.num_row_groups)]
    for idx, (name, typ) in enumerate(zip(schema.names, schema.types, strict=True)):
        if name in skip:
            continue
        if nulls_only is not None and name in nulls_only:
            nulls[name] = nulls_only[name]
            continue
        lo = hi = None
        count = 0
        for g in groups:
            st = g.column(idx).statistics
            if st is None or not st.has_null_count:
                break
            count += st.null_count
            if st.has_min_max:
                a, b = st.min_raw, st.max_raw
                lo = a if lo is None or a < lo else lo
                hi = b if hi is None or b > hi else hi
        else:
            nulls[name] = count
            kind = _KINDS.get(typ.id)
            if kind is not None and lo is not None:
                mins[name], maxs[name] = _bounds(kind, typ, lo, hi)
    if mins:
        out["minValues"] = mins
        out["maxValues"] = maxs
    if nulls:
        out["nullCount"] = nulls
    return out


def _bounds(kind: int, t: pa.DataType, lo: Any, hi: Any) -> tuple[Any, Any]:
    """Parquet's physical min/max as Delta's JSON statistics values."""
    if kind == _INT:
        return int(lo), int(hi)
    if kind == _STR:
        lo_s = lo.decode() if isinstance(lo, bytes) else str(lo)
        hi_s = hi.decode() if isinstance(hi, bytes) else str(hi)
        if len(hi_s) > STATS_STRING_PREFIX:
            hi_s = hi_s[:STATS_STRING_PREFIX] + _MAX_CHAR
        return lo_s[:STATS_STRING_PREFIX], hi_s
    if kind == _TS:
        unit = t.unit
        if unit == "ns":  # floor the min, ceil the max: bounds stay bounds at µs
            lo_us, hi_us = int(lo) // 1000, -(-int(hi) // 1000)
        else:
            lo_us, hi_us = int(lo) * _UNIT_US[unit], int(hi) * _UNIT_US[unit]
        zone = "Z" if t.tz is not None else ""
        return _iso(lo_us) + zone, _iso(hi_us) + zone
    return _iso_date(int(lo)), _iso_date(int(hi))


def _iso(us: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) of µs since the epoch."""
    sec, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:06d}"


def _iso_date(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


def write_file(
    table_dir: Path,
    table: pa.Table,
    partition_values: dict[str, str] | None = None,
    first_group: int = 0,
) -> FileAction:
    """Write one Parquet file into the table directory (synced); return its add action,
    with Delta statistics taken from the footer just written. `first_group` > 0: a file
    that is not small gets its first that many rows as a row group of their own (the
    data table's directory rows: readers find them by the row groups' statistics)."""
    sub = "/".join(f"{k}={v}" for k, v in (partition_values or {}).items())
    small = table.num_rows <= SMALL_ROWS and table.nbytes <= SMALL_BYTES
    # The name says the data columns' codec (Spark's `part-...<codec>.parquet` habit); a
    # reader never needs it (Parquet records each column's codec) but a person might.
    codec = "uncompressed" if small else "zstd"
    name = f"part-{time.time_ns()}-{os.urandom(6).hex()}.{codec}.parquet"
    rel = f"{sub}/{name}" if sub else name
    full = table_dir / rel
    if sub and not full.parent.exists():
        full.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(full.parent.parent)
    # Statistics for every column but raw contents (min/max of 1 KiB values would double a
    # small file and help no reader) and free text and hashes (null counts only, counted
    # here); no `ARROW:schema` footer entry (a base64 copy of the schema, ~40 % of a
    # one-row file): readers take the schema from the Delta log, and Parquet's own
    # logical types carry everything the pond's schemas need.
    names = table.column_names
    stats = [n for n in names if n not in NO_STATS_COLUMNS and n not in NULLS_ONLY_COLUMNS]
    nulls = {n: table.column(n).null_count for n in names if n in NULLS_ONLY_COLUMNS}
    collected: list[pq.FileMetaData] = []
    if small:
        # Per-commit appends are tiny and soon compacted: plain encoding is 3x cheaper,
        # except for contents (a directory snapshot shrinks ~3x for +0.06 ms).
        pq.write_table(
            table,
            full,
            compression={n: "zstd" if n == "content" else "none" for n in table.column_names},
            use_dictionary=False,
            write_statistics=stats,
            store_schema=False,
            metadata_collector=collected,
        )
    else:
        # Small row groups let readers skip old rows by their statistics (min_seq reads),
        # and read one body without decoding many (ROW_GROUP_CONTENT_BYTES).
        with pq.ParquetWriter(
            full,
            table.schema,
            compression="zstd",
            write_statistics=stats,
            store_schema=False,
            metadata_collector=collected,
        ) as writer:
            for start, rows in _row_groups(table, first_group):
                writer.write_table(table.slice(start, rows), row_group_size=rows)
    fsync_file(full)
    fsync_dir(full.parent)
    st = full.stat()
    pv = dict(partition_values or {})
    return FileAction(
        rel,
        st.st_size,
        pv,
        table.num_rows,
        int(st.st_mtime * 1000),
        stats=file_stats(collected[0], table.schema, tuple(pv), nulls) if collected else None,
        group_starts=row_group_starts(collected[0]) if collected else None,
        sha256=_sha256_file(full),
    )


def _sha256_file(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _row_groups(table: pa.Table, first_group: int = 0) -> list[tuple[int, int]]:
    """(first row, rows) of each row group of a file that is not small: `first_group` rows
    (when > 0) on their own, then at most ROW_GROUP_ROWS rows and, past the first row,
    ROW_GROUP_CONTENT_BYTES of `content` each."""
    n = table.num_rows
    groups: list[tuple[int, int]] = []
    start = 0
    if 0 < first_group < n:
        groups.append((0, first_group))
        start = first_group
    if "content" not in table.column_names:  # a row count is the only bound
        return groups + [
            (at, min(ROW_GROUP_ROWS, n - at)) for at in range(start, n, ROW_GROUP_ROWS)
        ]
    sizes = _value_sizes(table.column("content").slice(start))
    at, held = start, 0
    for row in range(start, n):
        size = sizes[row - start]
        if row > at and (row - at >= ROW_GROUP_ROWS or held + size > ROW_GROUP_CONTENT_BYTES):
            groups.append((at, row - at))
            at, held = row, 0
        held += size
    if n > at:
        groups.append((at, n - at))
    return groups


def _value_sizes(column: pa.ChunkedArray) -> list[int]:
    """Each binary value's length in bytes (0 for null), from the offsets buffers: no
    pyarrow.compute (~50 ms to import in a `pond` process)."""
    large = pa.types.is_large_binary(column.type)
    sizes: list[int] = []
    for chunk in column.chunks:
        offsets = chunk.buffers()[1]
        if offsets is None:  # an empty or all-null chunk without values
            sizes.extend([0] * len(chunk))
            continue
        raw = memoryview(offsets)
        raw = raw[: len(raw) - len(raw) % (8 if large else 4)]
        ints = raw.cast("q") if large else raw.cast("i")
        bounds = ints[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
        sizes.extend(b - a for a, b in zip(bounds, bounds[1:], strict=False))
    return sizes


def row_group_starts(md: pq.FileMetaData) -> list[int]:
    """The first row of each row group of a Parquet file, from its footer ([0]: none)."""
    starts, at = [], 0
    for g in range(md.num_row_groups):
        starts.append(at)
        at += md.row_group(g).num_rows
    return starts or [0]


def action_for_file(
    table_dir: Path, rel: str, partition_values: dict[str, str] | None = None
) -> FileAction:
    """The add action of a Parquet file already in the table directory (repairs)."""
    full = table_dir / rel
    pf = open_parquet(full)
    st = full.stat()
    pv = dict(partition_values or {})
    # The footer has no statistics for these: their null counts are read from the data.
    text = [n for n in pf.schema_arrow.names if n in NULLS_ONLY_COLUMNS]
    nulls = {n: c.null_count for n, c in zip(text, pf.read(columns=text).columns, strict=True)}
    return FileAction(
        rel,
        st.st_size,
        pv,
        pf.metadata.num_rows,
        int(st.st_mtime * 1000),
        stats=file_stats(pf.metadata, pf.schema_arrow, tuple(pv), nulls),
    )
