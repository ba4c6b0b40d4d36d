"""SQL over pond files with DataFusion (SPEC §3 series reads, §7 read-only SQL).

A file is a list of Parquet *parts* (one per series version, or one for a table). They are
registered as the table ``source`` (alias ``series``).

Speed: DataFusion's own listing table over a directory is the fastest reader (parallel scans,
statistics, projection/predicate pushdown), but its Python API takes one path, not a file list.
So register_parts builds a private directory of symlinks to the kept parts (inline parts are
written there as small files, on tmpfs when available) and registers that directory. On 100
files x 10,000 rows, register + first query is within ~1.15x of ``register_parquet`` over a
directory holding the same files, and later queries are equal; a DataFrame union of per-file
reads was 1.1x-5x slower and a pyarrow dataset 1.5x-15x. The directory lives until the context
is garbage collected (or the process exits): keep the context while querying.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import (
    DataFrame,
    RuntimeEnvBuilder,
    SessionConfig,
    SessionContext,
    SQLOptions,
    col,
    lit,
)

from duckpond.errors import FormatError, NotFoundError, QueryError

from .ingest import read_parquet_schema
from .limits import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    QueryTimeout,
    clear_spill_dir,
    collect,
    format_size,
    new_spill_dir,
    remove_spill_dir,
)

SOURCE_NAMES: tuple[str, ...] = ("source", "series")

_MICROS_PER_DAY = 86_400_000_000
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
_MAX_MESSAGE = 400
# Creating ~100 symlinks costs ~15 ms on a journaled disk and ~0.3 ms on tmpfs, so the link
# directory goes to /dev/shm where there is one (it holds symlinks and small inline parts only).
_LINK_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


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


def make_context(memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> SessionContext:
    """A context whose queries may reserve at most `memory_limit` bytes (None: no limit),
    spilling to a directory of its own under $TMPDIR where an operator can (see limits.py)."""
    # information_schema lets users run SHOW TABLES / SHOW COLUMNS, which are reads
    config = SessionConfig().with_information_schema(True)
    spill = new_spill_dir()
    runtime = RuntimeEnvBuilder().with_disk_manager_specified(spill)
    if memory_limit:
        runtime = runtime.with_fair_spill_pool(memory_limit)
    ctx = SessionContext(config, runtime)
    weakref.finalize(ctx, remove_spill_dir, spill)
    _memory_limits[ctx] = memory_limit
    _spill_dirs[ctx] = spill
    return ctx


# what each context was built with, for the error message when a query exceeds it
_memory_limits: weakref.WeakKeyDictionary[SessionContext, int | None] = weakref.WeakKeyDictionary()
_spill_dirs: weakref.WeakKeyDictionary[SessionContext, str] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------------------
# registration


def overlaps(part: Part, start: int | None, end: int | None) -> bool:
    if start is not None and part.max_time is not None and part.max_time < start:
        return False
    if end is not None and part.min_time is not None and part.min_time > end:
        return False
    return True


def _part_schema(part: Part) -> pa.Schema:
    if part.data is not None:
        return read_parquet_schema(part.data, part.describe())
    return read_parquet_schema(part.path or "", part.describe())


def unify_schemas(schemas: Sequence[pa.Schema]) -> pa.Schema:
    # Series versions may add columns or widen types; metadata (pandas, ARROW:schema...) is
    # irrelevant to a query and can conflict between parts, so it is dropped.
    clean = [s.remove_metadata() for s in schemas]
    try:
        return pa.unify_schemas(clean, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise FormatError(f"the file's versions have incompatible schemas: {e}") from None


def _replace(ctx: SessionContext, name: str, df: DataFrame) -> None:
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    ctx.register_view(name, df)


def _link_dir(ctx: SessionContext, parts: Sequence[Part]) -> str | None:
    """A private directory of `<n>.parquet` entries, one per part; None if the platform cannot
    symlink (the caller then falls back to a union of per-file reads)."""
    try:
        tmp = tempfile.mkdtemp(prefix="pond-query-", dir=_LINK_ROOT)
    except OSError:  # /dev/shm full or restricted: the default temp dir works, just slower
        tmp = tempfile.mkdtemp(prefix="pond-query-")
    weakref.finalize(ctx, shutil.rmtree, tmp, ignore_errors=True)
    for i, part in enumerate(parts):
        entry = os.path.join(tmp, f"{i:06d}.parquet")
        if part.data is not None:
            with open(entry, "wb") as f:
                f.write(part.data)
            continue
        if not os.path.isfile(part.path or ""):
            # a listing skips a dangling link: a lost part would silently drop its rows
            shutil.rmtree(tmp, ignore_errors=True)
            raise NotFoundError(f"no such file: {part.path}")
        try:
            os.symlink(os.path.abspath(part.path or ""), entry)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
    return tmp


def _scan(ctx: SessionContext, parts: Sequence[Part]) -> DataFrame:
    internal = f"__pond_parts_{uuid.uuid4().hex[:12]}"
    directory = _link_dir(ctx, parts)
    if directory is not None:
        try:
            # DataFusion infers and merges the parts' schemas (added columns read as null)
            # while caching their footers: the cheapest path, tried first.
            ctx.register_parquet(internal, directory + os.sep)
            return ctx.table(internal)
        except Exception:
            # Types differ between versions (or a part is broken): pyarrow names the bad
            # part or widens the types, and DataFusion casts each part to that schema.
            schema = unify_schemas([_part_schema(p) for p in parts])
            ctx.register_parquet(internal, directory + os.sep, schema=schema)
            return ctx.table(internal)
    # No symlinks on this platform: one read per part, unioned. Slower to plan, same rows.
    schema = unify_schemas([_part_schema(p) for p in parts])
    frames: list[DataFrame] = []
    for part in parts:
        if part.data is not None:
            frames.append(ctx.from_arrow(conform(_read_inline(part), schema)))
        else:
            path = part.path or ""
            ext = os.path.splitext(path)[1]
            frames.append(ctx.read_parquet(path, schema=schema, file_extension=ext))
    df = frames[0]
    for other in frames[1:]:
        df = df.union(other)
    return df


def _read_inline(part: Part) -> pa.Table:
    return pq.ParquetFile(pa.BufferReader(part.data or b"")).read()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder/cast `table` to `schema`, with nulls for columns it lacks."""
    cols = []
    for field in schema:
        idx = table.schema.get_field_index(field.name)
        if idx < 0:
            cols.append(pa.nulls(table.num_rows, field.type))
        else:
            cols.append(table.column(idx).cast(field.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _time_literal(t: pa.DataType, micros: int, *, upper: bool) -> object:
    """`micros` as a literal of the column's own type, rounded so that comparing in the
    column's unit is exact (start rounds up, end rounds down) and pushdown still applies."""
    if pa.types.is_integer(t):
        return lit(micros)
    if pa.types.is_timestamp(t):
        if t.unit == "ns":
            value = micros * 1_000
        else:
            per = _MICROS_PER_UNIT[t.unit]
            value = micros // per if upper else _ceil_div(micros, per)
        return lit(pa.array([value], pa.int64()).cast(t)[0])
    if pa.types.is_date32(t):
        days = micros // _MICROS_PER_DAY if upper else _ceil_div(micros, _MICROS_PER_DAY)
        return lit(pa.array([days], pa.int32()).cast(t)[0])
    if pa.types.is_date64(t):
        ms = micros // 1_000 if upper else _ceil_div(micros, 1_000)
        return lit(pa.array([ms], pa.int64()).cast(t)[0])
    raise FormatError(f"time column has type {t}; it must be a timestamp, date or integer")


def _window(
    df: DataFrame, schema: pa.Schema, column: str, start: int | None, end: int | None
) -> DataFrame:
    idx = schema.get_field_index(column)
    if idx < 0:
        raise FormatError(f"time column '{column}' not found in the file's schema")
    t = schema.field(idx).type
    c = col(f'"{column}"')
    if start is not None:
        df = df.filter(c >= _time_literal(t, start, upper=False))
    if end is not None:
        df = df.filter(c <= _time_literal(t, end, upper=True))
    return df


def register_parts(
    ctx: SessionContext,
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
        df = _scan(ctx, kept)
    else:
        if schema is None:
            if not parts:
                raise NotFoundError("nothing to query: the file has no data")
            # every version lies outside the window: the newest one's footer gives the schema
            schema = _part_schema(parts[-1])
        empty = unify_schemas([schema])
        df = ctx.from_arrow(pa.table([pa.array([], f.type) for f in empty], schema=empty))
    if time_column is not None and (time_start is not None or time_end is not None):
        df = _window(df, df.schema(), time_column, time_start, time_end)
    for name in names:
        _replace(ctx, name, df)


def window_source(
    ctx: SessionContext,
    column: str,
    start: int | None,
    end: int | None,
    names: Sequence[str] = SOURCE_NAMES,
) -> None:
    """Limit the registered tables `names` to rows whose `column` is in [start, end]."""
    df = ctx.table(names[0])
    df = _window(df, df.schema(), column, start, end)
    for name in names:
        _replace(ctx, name, df)


def register_table_arrow(
    ctx: SessionContext, table: pa.Table, *, names: Sequence[str] = SOURCE_NAMES
) -> None:
    """Register an in-memory table under each of `names` (zero-copy)."""
    if not names:
        raise ValueError("register_table_arrow needs at least one table name")
    batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    first = names[0]
    if ctx.table_exist(first):
        ctx.deregister_table(first)
    ctx.register_record_batches(first, [batches])
    for name in names[1:]:
        _replace(ctx, name, ctx.table(first))


# ---------------------------------------------------------------------------------------------
# queries

_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
# SQLOptions' verifier messages; anchored so an error quoting user text cannot match
_REFUSED_RE = re.compile(r"^(?:Error during planning: )?(DDL|DML|Statement) not supported: (.+)$")
_PARSER_RE = re.compile(r'SQL error: ParserError\("(.*)"\)$')
_OPTIMIZER_RE = re.compile(r"^(DataFusion error: )?Optimizer rule '[^']*' failed caused by ")
_BUG_NOTE_RE = re.compile(
    r"This issue was likely caused by a bug in DataFusion's code\..*?/issues\. ?"
)
# category prefixes DataFusion stacks in front of the useful part of a message
_PREFIXES = (
    "DataFusion error: ",
    "Error during planning: ",
    "Execution error: ",
    "External error: ",
    "Arrow error: ",
    "Schema error: ",
    "Internal error: ",
)


def _clean_message(raw: str) -> str:
    msg = " ".join(raw.split())
    m = _PARSER_RE.search(msg)
    if m:
        return "SQL syntax error: " + m.group(1).replace('\\"', '"')
    # "Optimizer rule 'x' failed caused by <real error>": keep the real error
    msg = _OPTIMIZER_RE.sub("", msg)
    # a signature mismatch is the user's type error, not the "bug in DataFusion" it claims
    msg = _BUG_NOTE_RE.sub("", msg)
    no_match = msg.find("No function matches the given name")
    if no_match >= 0:
        msg = msg[no_match:]
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if msg.startswith(prefix):
                msg, changed = msg[len(prefix) :], True
    msg = msg.replace("This feature is not implemented: ", "not supported: ")
    return msg if len(msg) <= _MAX_MESSAGE else msg[: _MAX_MESSAGE - 3] + "..."


def _query_error(err: BaseException, memory_limit: int | None = None) -> QueryError:
    raw = " ".join(str(err).split())
    if "Resources exhausted" in raw:
        limit = f" of {format_size(memory_limit)}" if memory_limit else ""
        return QueryError(
            f"query exceeded the memory limit{limit} (raise it with --memory-limit SIZE): "
            f"{_clean_message(raw)}"
        )
    refused = _REFUSED_RE.search(raw)
    if refused:
        kind, what = refused.groups()
        kind = "statement" if kind == "Statement" else kind
        return QueryError(f"only read-only queries are allowed: {kind} ({what}) is refused")
    return QueryError(f"query failed: {_clean_message(raw)}")


def _plain_type(t: pa.DataType) -> pa.DataType:
    """`t` with string_view/binary_view (DataFusion's internal choice) replaced by plain types,
    which every downstream writer (CSV, JSON, Delta) handles."""
    if t == pa.string_view():
        return pa.string()
    if t == pa.binary_view():
        return pa.binary()
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)), t.list_size)
    if pa.types.is_list_view(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_large_list_view(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(
            t.key_field.with_type(_plain_type(t.key_type)),
            t.item_field.with_type(_plain_type(t.item_type)),
            t.keys_sorted,
        )
    return t


def plain_types(table: pa.Table) -> pa.Table:
    target = pa.schema(
        [f.with_type(_plain_type(f.type)) for f in table.schema], metadata=table.schema.metadata
    )
    return table if target == table.schema else table.cast(target)


def run_sql(ctx: SessionContext, query: str, timeout: float | None = DEFAULT_TIMEOUT) -> pa.Table:
    """Run one read-only query, stopped after `timeout` seconds (None: no limit; in any
    thread, see limits.py); DDL, DML, COPY and SET are refused. Errors are
    one-line QueryErrors."""
    try:
        table = collect(ctx.sql_with_options(query, _READ_ONLY), timeout)
    except QueryTimeout:
        raise QueryError(
            f"query exceeded the time limit of {timeout:g}s (raise it with --timeout SECONDS)"
        ) from None
    except (QueryError, FormatError, NotFoundError):
        raise
    except Exception as e:  # DataFusion raises plain Exception/ValueError subclasses
        raise _query_error(e, _memory_limits.get(ctx)) from None
    finally:
        spill = _spill_dirs.get(ctx)
        if spill is not None:
            clear_spill_dir(spill)
    return plain_types(table)
