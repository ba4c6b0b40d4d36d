"""Reading host inputs (raw bytes, Parquet, CSV) and computing series event-time ranges.

Every failure is a one-line PondError subclass, so callers can surface it as `error: ...` without
re-wrapping. Event times are int64 microseconds since the Unix epoch, UTC (SPEC §2).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from duckpond.errors import FormatError, NotFoundError, PondError, clip
from duckpond.formats import compression as compression_codecs
from duckpond.formats.csv import check_column_names as check_column_names
from duckpond.formats.csv import check_csv_schema as _check_csv_schema
from duckpond.formats.csv import check_time_format, time_parsers
from duckpond.formats.csv import csv_error as _csv_error
from duckpond.formats.csv import parse_csv as _parse_csv
from duckpond.formats.csv import utf8_error as _utf8_error

PathLike = str | os.PathLike[str]
ParquetSource: TypeAlias = PathLike | bytes | pa.Buffer | IO[bytes]

TIME_COLUMN_NAMES = ("timestamp", "time", "ts", "event_time")
PARQUET_COMPRESSION = "zstd"

_PARQUET_MAGIC = b"PAR1"
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1}
_MICROS_PER_DAY = 86_400_000_000

# Streaming CSV infers column types from the first block: a large block makes that inference
# representative, while memory stays bounded by block size + the row-group buffer.
_CSV_STREAM_BLOCK = 4 << 20
_ROW_GROUP_BYTES = 32 << 20
# CSV files up to this size are read whole (fast, parallel); larger ones are streamed.
WHOLE_FILE_CSV_BYTES = 512 << 20
_ROW_GROUP_ROWS = 1 << 20
_MAX_MESSAGE = 300
# pond's compression names -> pyarrow's codec names (streamed decompression)
ARROW_CODECS = {"gzip": "gzip", "zstd": "zstd", "bzip2": "bz2"}
_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError)


def _one_line(text: object, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# host files


def _host_file(path: PathLike) -> Path:
    """Check `path` is a readable regular file; map the usual failures to pond errors."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise NotFoundError(f"no such host file: {path}") from None
    except OSError as e:
        raise PondError(f"cannot read host file {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"host path is a directory, not a file: {path}") from None
    return p


def _read_path(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise PondError(f"cannot read host file {p}: {e.strerror or e}") from None


def decompress_bytes(data: bytes, compression: str | None, what: str = "input") -> bytes:
    """Undo gzip/zstd/bzip2 compression of an in-memory object (no-op when compression is
    None; bounded, see formats.compression)."""
    if compression is None:
        return data
    return compression_codecs.decompress(data, compression, what)


def read_host_bytes(path: PathLike, compression: str | None = None) -> bytes:
    """The bytes of a host file, decompressed when `compression` is given."""
    p = _host_file(path)
    return decompress_bytes(_read_path(p), compression, str(path))


def _file_head(p: Path, n: int = 4) -> bytes:
    try:
        with p.open("rb") as f:
            return f.read(n)
    except OSError as e:
        raise PondError(f"cannot read host file {p}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------
# Parquet


def _not_parquet(what: str, reason: object | None = None) -> FormatError:
    suffix = f" ({_one_line(reason)})" if reason is not None else ""
    return FormatError(f"not a Parquet file: {what}{suffix}")


def read_parquet_bytes(data: bytes, what: str) -> pa.Table:
    """Parse in-memory Parquet; `what` names the object in error messages."""
    if len(data) < 12 or data[:4] != _PARQUET_MAGIC or data[-4:] != _PARQUET_MAGIC:
        raise _not_parquet(what)
    try:
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except _ARROW_ERRORS as e:
        raise _not_parquet(what, e) from None


def read_parquet_file(path: PathLike) -> pa.Table:
    p = _host_file(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(4)
            f.seek(max(size - 4, 0))
            tail = f.read(4)
    except OSError as e:
        raise PondError(f"cannot read host file {path}: {e.strerror or e}") from None
    if size < 12 or head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        raise _not_parquet(str(path))
    try:
        return pq.ParquetFile(str(p)).read()
    except _ARROW_ERRORS as e:
        raise _not_parquet(str(path), e) from None


def read_parquet_schema(source: ParquetSource, what: str = "input") -> pa.Schema:
    """The schema from a Parquet footer, without reading any data."""
    try:
        if isinstance(source, bytes | pa.Buffer):
            source = pa.BufferReader(source)
        elif isinstance(source, str | os.PathLike):
            source = str(source)
        return pq.read_schema(source)
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {what}") from None
    except _ARROW_ERRORS as e:
        raise _not_parquet(what, e) from None


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------------------------
# CSV


def _csv_opener(
    source: Path | bytes, compression: str | None, what: str
) -> Callable[[], pa.NativeFile]:
    head = _file_head(source) if isinstance(source, Path) else source[:4]
    compression_codecs.check(head, compression, what)

    def open_stream() -> pa.NativeFile:
        raw = pa.OSFile(str(source)) if isinstance(source, Path) else pa.BufferReader(source)
        if not compression:
            return raw
        return pa.CompressedInputStream(raw, ARROW_CODECS.get(compression, compression))

    return open_stream


def _read_csv(
    open_stream: Callable[[], pa.NativeFile], what: str, time_parsers: list[str] | None = None
) -> pa.Table:
    convert = None if time_parsers is None else pcsv.ConvertOptions(timestamp_parsers=time_parsers)
    table = _parse_csv(open_stream, what, convert_options=convert)
    _check_csv_schema(table.schema, open_stream, what)
    return table


def read_csv_file(path: PathLike, compression: str | None = None) -> pa.Table:
    """Read a whole host CSV file (header row, types inferred over the whole file)."""
    p = _host_file(path)
    return _read_csv(_csv_opener(p, compression, str(path)), str(path))


def read_csv_bytes(
    data: bytes, compression: str | None = None, what: str = "CSV input"
) -> pa.Table:
    return _read_csv(_csv_opener(data, compression, what), what)


_CONVERSION_RE = re.compile(r"^In CSV column #(\d+): .*CSV conversion error to (\w+)")


def _widen(current: pa.DataType) -> pa.DataType:
    # what a whole-file read would have inferred: ints widen to floats, anything else to text
    if pa.types.is_integer(current):
        return pa.float64()
    return pa.string()


def csv_to_parquet_file(
    src_path: PathLike,
    dest_path: PathLike,
    compression: str | None = None,
    *,
    time_format: str | None = None,
    time_column: str | None = None,
) -> pa.Schema:
    """Stream a host CSV into a zstd Parquet file with bounded memory; returns the schema of
    the written file.

    Types are inferred from the first block. When a later block does not fit a column's type,
    the conversion restarts with that column widened (int -> float64 -> string), which is what
    a whole-file read would have chosen. A failure removes the partial destination file.
    `time_format` (strptime syntax): times written that way are read as timestamps, and the
    time column (`time_column`, else the detected one) must hold them all.
    """
    p = _host_file(src_path)
    what = str(src_path)
    opener = _csv_opener(p, compression, what)
    forced: dict[str, pa.DataType] = {}
    parsers = time_parsers(time_format)
    try:
        if compression is None and p.stat().st_size <= WHOLE_FILE_CSV_BYTES:
            # Measured: a whole-file read parses on all cores and is ~1.7x faster than the
            # block stream; memory is a few times the file size, bounded by this limit.
            table = _read_csv(opener, what, parsers)
            # Parquet has no second unit: store (and report) such timestamps as ms, as the
            # streamed path does.
            table = table.cast(
                pa.schema(
                    [
                        f.with_type(pa.timestamp("ms", f.type.tz))
                        if pa.types.is_timestamp(f.type) and f.type.unit == "s"
                        else f
                        for f in table.schema
                    ]
                )
            )
            if time_format is not None:
                check_time_format(
                    table.schema, time_column, TIME_COLUMN_NAMES, time_format, opener, what
                )
            pq.write_table(
                table,
                str(dest_path),
                compression=PARQUET_COMPRESSION,
                row_group_size=_ROW_GROUP_ROWS,
            )
            return table.schema
        while True:
            try:
                schema = _stream_csv(opener, Path(dest_path), forced, what, parsers)
            except _Widen as w:
                if forced.get(w.column) == pa.string():
                    raise _csv_error(what, w.error) from None
                forced[w.column] = _widen(w.current)
                continue
            if time_format is not None:
                check_time_format(schema, time_column, TIME_COLUMN_NAMES, time_format, opener, what)
            return schema
    except BaseException:
        Path(dest_path).unlink(missing_ok=True)
        raise


class _Widen(Exception):
    def __init__(self, column: str, current: pa.DataType, error: BaseException):
        super().__init__(column)
        self.column, self.current, self.error = column, current, error


def _stream_csv(
    opener: Callable[[], pa.NativeFile],
    dest: Path,
    forced: dict[str, pa.DataType],
    what: str,
    time_parsers: list[str] | None = None,
) -> pa.Schema:
    read_opts = pcsv.ReadOptions(use_threads=False, block_size=_CSV_STREAM_BLOCK)
    conv_opts = pcsv.ConvertOptions(column_types=forced, timestamp_parsers=time_parsers)
    with opener() as stream:
        try:
            reader = pcsv.open_csv(stream, read_options=read_opts, convert_options=conv_opts)
        except _ARROW_ERRORS as e:
            raise _csv_error(what, e) from None
        schema = reader.schema
        _check_csv_schema(schema, opener, what)
        with pq.ParquetWriter(str(dest), schema, compression=PARQUET_COMPRESSION) as writer:
            pending: list[pa.RecordBatch] = []
            pending_bytes = pending_rows = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except _ARROW_ERRORS as e:
                    if "invalid UTF8" in str(e):
                        raise _utf8_error(opener, what) from None
                    m = _CONVERSION_RE.match(_one_line(e))
                    if m and int(m.group(1)) < len(schema):
                        field = schema.field(int(m.group(1)))
                        raise _Widen(field.name, field.type, e) from None
                    raise _csv_error(what, e) from None
                pending.append(batch)
                pending_bytes += batch.nbytes
                pending_rows += batch.num_rows
                if pending_bytes >= _ROW_GROUP_BYTES or pending_rows >= _ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, schema))
                    pending, pending_bytes, pending_rows = [], 0, 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema))
    # what readers will see: Parquet has no second-unit timestamps, they come back as ms
    return pq.read_schema(str(dest)).remove_metadata()


# ---------------------------------------------------------------------------------------------
# event time


def _is_time_type(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t)


def detect_time_column(schema: pa.Schema, preferred: str | None = None) -> str | None:
    """The series' event-time column: `preferred` when given (it must exist and be a timestamp,
    date or integer), else the first of TIME_COLUMN_NAMES with such a type, else the first
    timestamp-typed column, else None."""
    if preferred is not None:
        idx = schema.get_field_index(preferred)
        if idx < 0:
            raise FormatError(f"time column '{preferred}' not found in the schema")
        t = schema.field(idx).type
        if not _is_time_type(t):
            raise FormatError(
                f"time column '{preferred}' has type {t}; it must be a timestamp, date or integer"
            )
        return preferred
    by_name = {f.name: f for f in schema}
    for name in TIME_COLUMN_NAMES:
        f = by_name.get(name)
        if f is not None and _is_time_type(f.type):
            return name
    for f in schema:
        if pa.types.is_timestamp(f.type):
            return f.name
    return None


def require_time_column(schema: pa.Schema, preferred: str | None, what: str) -> str:
    """detect_time_column, or a FormatError saying which column was looked at and why it
    does not qualify."""
    found = detect_time_column(schema, preferred)
    if found is not None:
        return found
    by_name = {f.name: f for f in schema}
    hint = "write times as ISO 8601 (2024-01-01T00:00:00Z) or choose one with --time-column"
    for name in TIME_COLUMN_NAMES:
        f = by_name.get(name)
        if f is not None:
            kind = (
                "text" if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) else f.type
            )
            raise FormatError(
                f"a series needs a time column; none found in {what}: column '{clip(name)}' "
                f"holds {kind} values, not timestamps, dates or integers ({hint})"
            )
    names = ", ".join(clip(n, 40) for n in schema.names[:10])
    more = ", ..." if len(schema.names) > 10 else ""
    raise FormatError(
        f"a series needs a time column; none found in {what}: no column is named "
        f"{', '.join(TIME_COLUMN_NAMES)} or has a timestamp type (columns: {names}{more}; "
        f"{hint})"
    )


def _to_micros(value: int, t: pa.DataType) -> int:
    if pa.types.is_timestamp(t):
        # floor for ns keeps the [min, max] range conservative for window pruning
        return value // 1_000 if t.unit == "ns" else value * _MICROS_PER[t.unit]
    if pa.types.is_date32(t):
        return value * _MICROS_PER_DAY
    if pa.types.is_date64(t):
        return value * 1_000
    return value


def event_time_range(table: pa.Table, column: str) -> tuple[int | None, int | None]:
    """(min, max) of `column` as µs since epoch UTC; (None, None) when empty or all null."""
    idx = table.schema.get_field_index(column)
    if idx < 0:
        raise FormatError(f"time column '{column}' not found")
    arr = table.column(idx)
    t = arr.type
    if not _is_time_type(t):
        raise FormatError(f"time column '{column}' has type {t}, not a timestamp/date/integer")
    if len(arr) == 0 or arr.null_count == len(arr):
        return None, None
    mm = pc.min_max(arr)
    storage = pa.int32() if pa.types.is_date32(t) else pa.int64()
    lo = mm["min"].cast(storage).as_py() if not pa.types.is_integer(t) else mm["min"].as_py()
    hi = mm["max"].cast(storage).as_py() if not pa.types.is_integer(t) else mm["max"].as_py()
    return _to_micros(lo, t), _to_micros(hi, t)


def event_time_range_parquet(
    source: ParquetSource, column: str, what: str = "input"
) -> tuple[int | None, int | None]:
    """Like event_time_range, reading only `column` from a Parquet file or buffer."""
    if isinstance(source, bytes | pa.Buffer):
        source = pa.BufferReader(source)
    elif isinstance(source, str | os.PathLike):
        source = str(source)
    try:
        pf = pq.ParquetFile(source)
        if pf.schema_arrow.get_field_index(column) < 0:
            raise FormatError(f"time column '{column}' not found in {what}")
        table = pf.read(columns=[column])
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {what}") from None
    except _ARROW_ERRORS as e:
        raise _not_parquet(what, e) from None
    return event_time_range(table, column)
