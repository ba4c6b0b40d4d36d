"""A pond file's Parquet parts registered as the relations user SQL reads (`source`,
`series`), with the time window pruning parts and filtering rows; how the parts reach
DuckDB is described in query/sql.py's docstring. Split from sql.py, which keeps the
connection, the read-only guard and running queries."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from duckpond.errors import FormatError, NotFoundError

from .sql import SOURCE_NAMES, QueryContext, clean_message
from .sqltext import literal, quote

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Part:
    """One Parquet object: a file on disk (`path`) or inline bytes (`data`), with the event-time
    range of its rows (µs since epoch UTC; None = unknown, never pruned)."""

    path: str | None = None
    data: bytes | None = None
    min_time: int | None = None
    max_time: int | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("a Part has exactly one of path or data")

    def describe(self) -> str:
        return self.path if self.path is not None else f"<inline {len(self.data or b'')} bytes>"


def overlaps(part: Part, start: int | None, end: int | None) -> bool:
    if start is not None and part.max_time is not None and part.max_time < start:
        return False
    if end is not None and part.min_time is not None and part.min_time > end:
        return False
    return True


def unify_schemas(schemas: Sequence[pa.Schema]) -> pa.Schema:
    import pyarrow as pa

    # metadata (pandas, ARROW:schema...) is irrelevant to a query and can conflict
    clean = [s.remove_metadata() for s in schemas]
    try:
        return pa.unify_schemas(clean, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise FormatError(f"the file's versions have incompatible schemas: {e}") from None


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder/cast `table` to `schema`, with nulls for columns it lacks."""
    import pyarrow as pa

    cols = []
    for field in schema:
        idx = table.schema.get_field_index(field.name)
        if idx < 0:
            cols.append(pa.nulls(table.num_rows, field.type))
        else:
            cols.append(table.column(idx).cast(field.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _part_paths(ctx: QueryContext, parts: Sequence[Part]) -> list[str]:
    paths = []
    for part in parts:
        if part.data is not None:
            path = os.path.join(ctx.files_dir(), f"{uuid.uuid4().hex}.parquet")
            with open(path, "wb") as f:
                f.write(part.data)
        else:
            path = os.path.abspath(part.path or "")
            if not os.path.isfile(path):
                raise NotFoundError(f"no such file: {part.path}")
            ctx.allow(path)
        paths.append(path)
    return paths


# A run of at least this many inline parts is read as one Arrow dataset: below it, writing
# the parts out costs less than importing pyarrow.dataset (~80 ms).
_DATASET_MIN_PARTS = 16


def _runs(parts: Sequence[Part]) -> list[tuple[bool, list[Part]]]:
    """`parts` cut into consecutive runs, in order: (True, inline parts read as one dataset)
    or (False, parts read by path)."""
    runs: list[tuple[bool, list[Part]]] = []
    for part in parts:
        inline = part.data is not None
        if runs and runs[-1][0] == inline:
            runs[-1][1].append(part)
        else:
            runs.append((inline, [part]))
    out: list[tuple[bool, list[Part]]] = []
    for inline, run in runs:
        as_dataset = inline and len(run) >= _DATASET_MIN_PARTS
        if out and not as_dataset and not out[-1][0]:
            out[-1][1].extend(run)
        else:
            out.append((as_dataset, run))
    return out


def _as_parquet_reads(t: pa.DataType) -> pa.DataType:
    """The Arrow type DuckDB's Parquet reader would give a column stored as `t`, so that a
    series reads alike whichever way its parts go: seconds and milliseconds become µs (also
    exact for the time window, which DuckDB's filter pushed into an Arrow scan rounds to the
    column's unit), a duration its int64 count."""
    import pyarrow as pa

    if pa.types.is_timestamp(t) and t.unit in ("s", "ms"):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = t.value_field.with_type(_as_parquet_reads(t.value_type))
        if pa.types.is_fixed_size_list(t):
            return pa.list_(inner, t.list_size)
        return pa.large_list(inner) if pa.types.is_large_list(t) else pa.list_(inner)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_as_parquet_reads(f.type)) for f in t])
    return t


def _inline_dataset(parts: Sequence[Part]) -> Any:
    """One pyarrow dataset over the parts' Parquet bytes, under their unified schema: DuckDB
    scans it lazily (projection pushed down, fragments read on Arrow's threads, a bounded
    readahead), and a query may scan it again."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fmt = ds.ParquetFileFormat()
    fragments = []
    schemas = []
    for part in parts:
        fragment = fmt.make_fragment(pa.BufferReader(part.data))
        try:
            schemas.append(fragment.physical_schema)
        except (pa.ArrowException, OSError):
            raise FormatError(f"not a Parquet file: {part.describe()}") from None
        fragments.append(fragment)
    unified = unify_schemas(schemas)
    schema = pa.schema([f.with_type(_as_parquet_reads(f.type)) for f in unified])
    return ds.FileSystemDataset(fragments, schema, fmt)


def _run_select(
    ctx: QueryContext, as_dataset: bool, parts: Sequence[Part], opened: dict[str, Part]
) -> str:
    """The SELECT reading one run; parts read by path are added to `opened` (path: part)."""
    if as_dataset:
        name = f"__pond_{uuid.uuid4().hex[:12]}"
        ctx.run(("arrow", name, _inline_dataset(parts)))
        return f"SELECT * FROM {name}"
    paths = _part_paths(ctx, parts)
    opened.update(zip(paths, parts, strict=True))
    listing = ", ".join(literal(p) for p in paths)
    return f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"


def _read_error(e: duckdb.Error, parts: Sequence[Part], paths: Sequence[str]) -> Exception:
    msg = str(e)
    for part, path in zip(parts, paths, strict=True):
        if path in msg and ("Parquet" in msg or "parquet" in msg or "magic" in msg):
            return FormatError(f"not a Parquet file: {part.describe()}")
    if isinstance(e, duckdb.ConversionException | duckdb.BinderException):
        return FormatError(f"the file's versions have incompatible schemas: {clean_message(msg)}")
    return FormatError(f"cannot read the file's parts: {clean_message(msg)}")


def _new_base(ctx: QueryContext, body: str) -> str:
    name = f"__pond_{uuid.uuid4().hex[:12]}"
    ctx.run(("sql", f"CREATE VIEW {name} AS {body}", None))
    return name


def publish(ctx: QueryContext, names: Sequence[str], select: str) -> None:
    for name in names:
        ctx.run(("sql", f"CREATE OR REPLACE VIEW {quote(name)} AS {select}", None))
        ctx._tables[name] = select


def _column_type(ctx: QueryContext, relation: str, column: str) -> str:
    rel = ctx.con.sql(f"SELECT * FROM {relation} LIMIT 0")
    for name, kind in zip(rel.columns, rel.types, strict=True):
        if name == column:
            return str(kind)
    raise FormatError(f"time column '{column}' not found in the file's schema")


_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "HUGEINT",
    "UHUGEINT",
}


def _time_literal(kind: str, micros: int) -> str:
    """`micros` as a literal comparable with a column of DuckDB type `kind`, exactly: a
    timestamp of any unit or a date compares with the µs timestamp (DuckDB widens the column,
    so a start between two seconds or days rounds up and an end rounds down)."""
    if kind in _INTEGER_TYPES:
        return str(micros)
    if kind == "TIMESTAMP WITH TIME ZONE":
        return f"CAST(make_timestamp({micros}) AS TIMESTAMPTZ)"
    if kind == "TIMESTAMP_NS":
        return f"make_timestamp_ns({micros * 1_000})"
    if kind in ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "DATE"):
        return f"make_timestamp({micros})"
    raise FormatError(f"time column has type {kind}; it must be a timestamp, date or integer")


def _where(
    ctx: QueryContext, relation: str, column: str, start: int | None, end: int | None
) -> str:
    kind = _column_type(ctx, relation, column)
    conds = []
    if start is not None:
        conds.append(f"{quote(column)} >= {_time_literal(kind, start)}")
    if end is not None:
        conds.append(f"{quote(column)} <= {_time_literal(kind, end)}")
    if not conds:
        _time_literal(kind, 0)  # the type must still be a time
    return " AND ".join(conds)


def register_parts(
    ctx: QueryContext,
    parts: list[Part],
    *,
    names: Sequence[str] = SOURCE_NAMES,
    time_column: str | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
    schema: pa.Schema | None = None,
) -> None:
    """Register the union of `parts` under each of `names`.

    Parts entirely outside [time_start, time_end] (µs, inclusive) are skipped without being
    opened; with `time_column` the remaining rows are filtered to the window too. Schemas are
    unified (added columns read as null, types widened). `schema` is only used when no part is
    left to read, to register an empty table; with neither parts nor schema, NotFoundError.
    """
    if not names:
        raise ValueError("register_parts needs at least one table name")
    kept = [p for p in parts if overlaps(p, time_start, time_end)]
    if kept:
        opened: dict[str, Part] = {}
        selects = [_run_select(ctx, as_dataset, run, opened) for as_dataset, run in _runs(kept)]
        try:
            base = _new_base(ctx, " UNION ALL BY NAME ".join(selects))
        except duckdb.Error as e:
            raise _read_error(e, list(opened.values()), list(opened)) from None
    else:
        if schema is None:
            if not parts:
                raise NotFoundError("nothing to query: the file has no data")
            # every version lies outside the window: the newest one's footer gives the schema
            from .ingest import read_parquet_schema

            last = parts[-1]
            schema = read_parquet_schema(last.data or last.path or "", last.describe())
        empty = unify_schemas([schema])
        base = f"__pond_{uuid.uuid4().hex[:12]}"
        ctx.run(("arrow", base, empty.empty_table()))
    select = f"SELECT * FROM {base}"
    if time_column is not None and (time_start is not None or time_end is not None):
        select += f" WHERE {_where(ctx, base, time_column, time_start, time_end)}"
    publish(ctx, names, select)


def window_source(
    ctx: QueryContext,
    column: str,
    start: int | None,
    end: int | None,
    names: Sequence[str] = SOURCE_NAMES,
) -> None:
    """Limit the registered tables `names` to rows whose `column` is in [start, end]."""
    inner = ctx.tables.get(names[0])
    if inner is None:
        raise NotFoundError(f"no table {names[0]} to window")
    base = _new_base(ctx, inner)
    where = _where(ctx, base, column, start, end)
    publish(ctx, names, f"SELECT * FROM {base}" + (f" WHERE {where}" if where else ""))


def _timestamps_as_us(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    coarse = [
        i
        for i, f in enumerate(table.schema)
        if pa.types.is_timestamp(f.type) and f.type.unit in ("s", "ms")
    ]
    for i in coarse:
        field = table.schema.field(i)
        wide = pa.timestamp("us", tz=field.type.tz)
        table = table.set_column(i, field.with_type(wide), table.column(i).cast(wide))
    return table


def register_table_arrow(
    ctx: QueryContext, table: pa.Table, *, names: Sequence[str] = SOURCE_NAMES
) -> None:
    """Register an in-memory table under each of `names` (zero-copy, but for second and
    millisecond timestamps: read as µs, as from Parquet, because DuckDB rounds a time window
    pushed into an Arrow scan to the column's unit and would keep a row before the start)."""
    if not names:
        raise ValueError("register_table_arrow needs at least one table name")
    table = _timestamps_as_us(table)
    base = f"__pond_{uuid.uuid4().hex[:12]}"
    ctx.run(("arrow", base, table))
    publish(ctx, names, f"SELECT * FROM {base}")
