"""The data table's schema (SPEC §2): one row per node version, partitioned by owning
directory; the columns a partition index reads; node rows as an Arrow table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..nodes import NodeRow
from .pqread import ParquetFile

APP_ID = "pond"
PARTITION = "part_id"

DATA_SCHEMA = pa.schema(
    [
        ("part_id", pa.string()),
        ("node_id", pa.string()),
        ("file_type", pa.string()),
        ("version", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("content", pa.binary()),
        ("content_hash", pa.string()),
        ("size", pa.int64()),
        ("min_event_time", pa.int64()),
        ("max_event_time", pa.int64()),
        ("extended_attributes", pa.string()),
        ("factory", pa.string()),
        ("txn_seq", pa.int64()),
    ]
)
# Delta keeps partition values in the path, not in the files.
FILE_SCHEMA = pa.schema([f for f in DATA_SCHEMA if f.name != PARTITION])

# Every column but `content`: what indexing a partition reads.
INDEX_COLUMNS = [f.name for f in FILE_SCHEMA if f.name != "content"]
INDEX_SCHEMA = pa.schema(
    [pa.field(f.name, pa.int64()) if f.name == "timestamp" else f for f in FILE_SCHEMA]
).remove(FILE_SCHEMA.get_field_index("content"))

# What finding a node's rows reads from a file (txn_seq: where node_tail may stop); the other
# columns are read when a row of the file is built (a fresh process writing into a
# 100,000-entry directory needs a few).
KEY_COLUMNS = ["node_id", "version", "extended_attributes", "txn_seq"]
KEY_SCHEMA = pa.schema([INDEX_SCHEMA.field(c) for c in KEY_COLUMNS])


def rows_to_table(rows: Iterable[NodeRow]) -> pa.Table:
    rows = list(rows)
    cols: dict[str, list[Any]] = {f.name: [] for f in FILE_SCHEMA}
    for r in rows:
        cols["node_id"].append(r.node_id)
        cols["file_type"].append(r.file_type)
        cols["version"].append(r.version)
        cols["timestamp"].append(r.timestamp)
        cols["content"].append(r.content)
        cols["content_hash"].append(r.content_hash)
        cols["size"].append(r.size)
        cols["min_event_time"].append(r.min_event_time)
        cols["max_event_time"].append(r.max_event_time)
        cols["extended_attributes"].append(
            json.dumps(r.extended_attributes, sort_keys=True) if r.extended_attributes else None
        )
        cols["factory"].append(r.factory)
        cols["txn_seq"].append(r.txn_seq)
    return pa.table(cols, schema=FILE_SCHEMA)


def index_table(table: pa.Table) -> pa.Table:
    """A file's rows without contents, timestamps as int64 µs (cheap to turn into rows).

    The pond's own files need no conversion but the timestamp's, done as a zero-copy view:
    `cast` would import pyarrow.compute (~50 ms of every `pond` process's start-up)."""
    table = table.select(INDEX_COLUMNS)
    i = table.schema.get_field_index("timestamp")
    ts = table.column(i)
    if ts.type == DATA_SCHEMA.field("timestamp").type:
        ts = pa.chunked_array([c.view(pa.int64()) for c in ts.chunks], pa.int64())
    else:
        ts = ts.cast(pa.int64())
    table = table.set_column(i, "timestamp", ts)
    return table if table.schema.equals(INDEX_SCHEMA) else table.cast(INDEX_SCHEMA)


def read_columns(pf: ParquetFile, columns: list[str], group: int | None = None) -> pa.Table:
    """`columns` of a data file (or of one row group); a column a later version added is
    null in older files."""
    have = [c for c in columns if c in pf.schema_arrow.names]
    table = pf.read(columns=have) if group is None else pf.read_row_group(group, columns=have)
    for f in FILE_SCHEMA:
        if f.name in columns and f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table
