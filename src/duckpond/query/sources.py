"""Reading a source URL: register what it names as the SQL tables `source`/`series`, run
read-only SQL over it, copy a host source into a write transaction.

Moved here from pond.py (issue 18): the query layer owns how a URL becomes a table. The pond
is seen through small protocols (what a read needs of it), so this module imports nothing
above the query layer; derived nodes are read through the `DerivedReads` hooks the caller
passes (duckpond.dynamic.reads).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidPathError, PondError, PondUsageError, QueryError
from .limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, import_outside_bound
from .urls import SourceURL, parse_source

if TYPE_CHECKING:
    import pyarrow as pa

    from .. import nodes
    from . import relations, rows, sql
    from .pondview import DerivedReads, NodeStore, SourcePond

# What only a pond file or a format needs (the pond's protocols and node types, the series
# view, the format registry) is imported where it is used: `pond cat host+table:///x.parquet
# --sql ...` loads none of it (~3 ms of its start, bench group `engine`).


TimeLike = int | str | dt.datetime | None


def no_pond() -> PondError:
    return PondError("no pond given: use --pond PATH or set $POND")


def to_us(value: TimeLike) -> int | None:
    """µs since the epoch from an int (µs), an ISO 8601 string (UTC unless an offset is
    given) or a datetime (naive = UTC)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PondUsageError(
                f"not a time: {value!r} (use ISO 8601 or µs since epoch)"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1_000_000)


def read_source(
    url: str,
    pond: SourcePond | None,
    derived: DerivedReads | None = None,
    sql: str | None = None,
    version: int | None = None,
    time_range: tuple[TimeLike, TimeLike] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> pa.Table:
    """`Pond.read`, also without a pond for host URLs (`pond cat host+csv:///x.csv`)."""
    from . import sql as sqlmod

    t0, t1 = _window(time_range)
    ctx = sqlmod.make_context(memory_limit, timeout)
    try:
        register_source(ctx, url, pond, derived, version, t0, t1)
        return sqlmod.run_sql(ctx, sql or SELECT_ALL, timeout)
    finally:
        ctx.close()  # its connection and spill directory go now, not with the garbage


SELECT_ALL = "SELECT * FROM source"


def _window(time_range: tuple[TimeLike, TimeLike] | None) -> tuple[int | None, int | None]:
    """A read's `time_range` as µs bounds (None: unbounded)."""
    return (to_us(time_range[0]), to_us(time_range[1])) if time_range else (None, None)


def stream_source(
    url: str,
    pond: SourcePond | None,
    derived: DerivedReads | None = None,
    sql: str | None = None,
    version: int | None = None,
    time_range: tuple[TimeLike, TimeLike] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> Iterator[pa.RecordBatch]:
    """`read_source` as record batches, computed as they are read: a result of any size
    goes to a file or pipe in bounded memory. The query ends when the iterator is read to
    the end or closed; QueryError for a timeout, like read_source."""
    from . import sql as sqlmod

    t0, t1 = _window(time_range)
    ctx = sqlmod.make_context(memory_limit, timeout)
    register_source(ctx, url, pond, derived, version, t0, t1)
    yield from stream_batches(ctx, sql or SELECT_ALL, timeout, timeout)


def stream_batches(
    ctx: sql.QueryContext, query: str, timeout: float | None, stated: float | None
) -> Iterator[pa.RecordBatch]:
    """The query's batches on `ctx` within `timeout` seconds (`stated`: the limit the user
    gave, for the message), closing the context at the end."""
    from . import sql as sqlmod

    stream = sqlmod.stream_sql(ctx, query, timeout)
    try:
        yield from stream
    except sqlmod.QueryTimeout:
        raise sqlmod.timeout_error(stated) from None
    finally:
        stream.close()
        ctx.close()


def read_for_output(
    url: str,
    pond: SourcePond | None,
    derived: DerivedReads | None = None,
    sql: str | None = None,
    version: int | None = None,
    time_range: tuple[TimeLike, TimeLike] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> rows.Rows | Iterator[pa.RecordBatch]:
    """`stream_source` for a writer of CSV, JSON or a table: a small result of plain types
    comes back whole as Python rows (rows.small_result), computed without loading pyarrow;
    any other is streamed as record batches, the query run again through Arrow on the same
    context (the registrations are not repeated) within what is left of `timeout`."""
    from . import rows as rowsmod
    from . import sql as sqlmod

    t0, t1 = _window(time_range)
    query = sql or SELECT_ALL
    started = time.monotonic()
    ctx = sqlmod.make_context(memory_limit, timeout)
    try:
        register_source(ctx, url, pond, derived, version, t0, t1)
        small = rowsmod.small_result(ctx, query, timeout)
    except sqlmod.QueryTimeout:
        ctx.close()
        raise sqlmod.timeout_error(timeout) from None
    except BaseException:
        ctx.close()
        raise
    if small is not None:
        ctx.close()
        return small
    left = None
    if timeout is not None:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            ctx.close()
            raise sqlmod.timeout_error(timeout)
    import_outside_bound("pyarrow")
    return stream_batches(ctx, query, left, timeout)


def part_of(fs: NodeStore, row: nodes.NodeRow) -> relations.Part:
    from . import relations

    path = fs.blob_path(row)
    return relations.Part(
        path=path,
        data=row.content if path is None else None,
        min_time=row.min_event_time,
        max_time=row.max_event_time,
    )


def register_source(
    ctx: sql.QueryContext,
    url: str,
    pond: SourcePond | None,
    derived: DerivedReads | None = None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
) -> None:
    """Register what `url` names as the SQL tables `source` and `series`."""
    from . import relations

    src = parse_source(url)
    if src.format is not None:
        from .. import formats
        from .formatread import format_table

        table = format_table(src, pond, derived, version)
        relations.register_table_arrow(ctx, table)
        column = formats.get(src.format).time_column
        if time_start is not None or time_end is not None:
            relations.window_source(ctx, column or _detected(table), time_start, time_end)
        return
    if src.scheme == "host":
        if src.fmt in ("table", "series"):
            # the engine reads the footer as it registers: a bad file is a FormatError then
            relations.register_parts(
                ctx, [relations.Part(path=src.path, data=None, min_time=None, max_time=None)]
            )
        else:
            from .. import formats

            raise QueryError(
                f"{url} is raw bytes; read it in a format (host+csv://, host+oteljson://, "
                f"...: {', '.join(formats.names())}) or as Parquet (host+table://)"
            )
        return
    if pond is None:
        raise no_pond()
    from .. import formats, nodes, seriesview
    from .pondview import no_version, row_at

    node = pond.derived(src.path)
    if node is not None:
        if derived is None:
            raise QueryError(f"{src.path} is derived and this reader cannot compute it")
        no_version(node.path, version)
        derived.register(ctx, node, src.scheme, src.compression, time_start, time_end)
        return
    loc = pond.require(src.path)
    fs = pond.fs
    if nodes.is_dir(loc.file_type):
        raise InvalidPathError(f"is a directory: {loc.path}")
    if nodes.is_dynamic(loc.file_type):
        raise QueryError(f"{loc.path} is a {loc.row.factory} factory node, not a table")
    if nodes.is_table(loc.file_type):
        relations.register_parts(ctx, [part_of(fs, row_at(fs, loc, version))])
    elif nodes.is_series(loc.file_type):
        column = loc.row.extended_attributes.get("time_column")
        if version is not None:
            parts = [part_of(fs, row_at(fs, loc, version))]
            relations.register_parts(
                ctx, parts, time_column=column, time_start=time_start, time_end=time_end
            )
            return
        # one batched lookup, versions outside the window not even read, through the
        # series read cache; the live versions (seriesview), the series' bounds narrowing
        # the window
        from .seriescache import register_series

        bounds = fs.series_bounds(loc.part_id, loc.node_id)
        time_start, time_end = seriesview.narrow(bounds, time_start, time_end)
        register_series(
            ctx,
            fs,
            loc.part_id,
            loc.node_id,
            time_column=column,
            time_start=time_start,
            time_end=time_end,
        )
    else:
        raise QueryError(
            f"{loc.path} is a raw file; query it in a format (csv://{loc.path}, "
            f"oteljson://{loc.path}, ...: {', '.join(formats.names())}) or store it as a table"
        )


def _detected(table: pa.Table) -> str:
    from .ingest import require_time_column

    return require_time_column(table.schema, None, "the source")


# ---------------------------------------------------------------------------------------------
# copying a host source in


class SourceWriter(Protocol):
    """What copying a host source needs of a write transaction (duckpond.txn.WriteTxn)."""

    def write_bytes(self, path: str, data: bytes, parents: bool = False) -> None: ...
    def write_table(
        self,
        path: str,
        data: Any,
        *,
        series: bool = False,
        time_column: str | None = None,
        parents: bool = False,
    ) -> None: ...
    def write_host_file(
        self,
        path: str,
        host_path: str | Path,
        parents: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> None: ...
    def write_csv_file(
        self,
        path: str,
        host_path: str | Path,
        *,
        series: bool = False,
        time_column: str | None = None,
        compression: str | None = None,
        parents: bool = False,
        time_format: str | None = None,
    ) -> None: ...
    def write_parquet_file(
        self,
        path: str,
        host_path: str | Path,
        *,
        series: bool = False,
        time_column: str | None = None,
        parents: bool = False,
        compression: str | None = None,
    ) -> None: ...


def parsed_on_the_way_in(s: SourceURL) -> bool:
    """A format URL stored as a table or series is parsed by its reader; a CSV without
    options keeps its streamed conversion (TxnWriter.write_csv_file)."""
    return s.format is not None and (s.format != "csv" or bool(s.options))


def format_source(
    s: SourceURL, series: bool, time_column: str | None
) -> tuple[pa.Table, str | None]:
    """The table a format URL stores, and its time column: the one asked for, else (for a
    series) the format's own when the table has it, else None (detected on write)."""
    s.check_storable()
    from .. import formats
    from .formatread import format_table

    table = format_table(s, None)
    if time_column is None and series:
        own = formats.get(s.format).time_column if s.format is not None else None
        if own is not None and own in table.schema.names:
            return table, own
    return table, time_column


def copy_one(
    tx: SourceWriter,
    s: SourceURL,
    target: str,
    time_column: str | None,
    tick: Callable[[int], None],
    time_format: str | None = None,
) -> None:
    """Store one host source at `target`: raw bytes, a table or a series version.
    `time_format`: how a CSV writes its times when not ISO 8601 (strptime syntax)."""
    series = s.entry == "series"
    if time_format is not None and (s.fmt != "csv" or parsed_on_the_way_in(s)):
        raise PondUsageError(
            "--time-format reads CSV sources without options (host+csv+series:///...), "
            f"not {s.scheme}+{s.fmt} {s.path}"
        )
    if s.fmt == "raw" and not s.compression:
        tx.write_host_file(target, s.path, progress=tick)
        return
    if parsed_on_the_way_in(s):
        table, preferred = format_source(s, series, time_column)
        tx.write_table(target, table, series=series, time_column=preferred)
    elif s.fmt == "csv":
        s.check_storable()
        tx.write_csv_file(
            target,
            s.path,
            series=series,
            time_column=time_column,
            compression=s.compression,
            time_format=time_format,
        )
    elif s.fmt in ("table", "series") or s.entry in ("table", "series"):
        from .ingest import ARROW_CODECS

        tx.write_parquet_file(
            target,
            s.path,
            series=series or s.fmt == "series",
            time_column=time_column,
            # the transaction streams it through pyarrow, which names bzip2 "bz2"
            compression=ARROW_CODECS.get(s.compression or "", s.compression),
        )
    else:
        from . import ingest

        tx.write_bytes(target, ingest.read_host_bytes(s.path, s.compression))
    tick(_host_size(s.path))


def _host_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
