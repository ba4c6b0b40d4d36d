"""Rendering query results: CSV, JSON records, Parquet and a rich table for people.

JSON value mapping (SPEC §7 "timestamps as ISO 8601 strings"), shared by CSV cells and the rich
table so that all outputs agree:

- timestamp with a UTC zone -> ``2024-01-02T03:04:05.123456Z`` (fraction digits follow the
  column unit: none for s, 3 ms, 6 µs, 9 ns); with another zone -> local time plus its offset
  (``+05:30``); without a zone -> no suffix (the column does not say which zone it is).
- date -> ``2024-01-02``; time of day -> ``03:04:05.123456``; duration -> ISO 8601
  ``PT90.5S`` (``-PT...`` when negative).
- binary -> the text when it is valid UTF-8, else base64 (standard alphabet, padded).
- decimal -> string (exact); NaN/±inf -> null (JSON has no such numbers).
- lists, structs -> JSON arrays/objects; maps -> objects when keys are strings, else
  ``[[key, value], ...]``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from .rows import DEFAULT_MAX_ROWS, format_value, print_rows

if TYPE_CHECKING:  # rich is only for people (print_table): CSV, JSON, Parquet skip it
    from rich.console import Console

PARQUET_COMPRESSION = "zstd"

_EPOCH = dt.datetime(1970, 1, 1)
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_UTC_NAMES = {"utc", "z", "+00:00", "-00:00", "etc/utc", "gmt", "etc/gmt", "zulu", "universal"}


# ---------------------------------------------------------------------------------------------
# scalar conversion


def _split(value: int, unit: str) -> tuple[int, int]:
    """(whole seconds, sub-second count in `unit`), flooring so negatives stay correct."""
    return divmod(value, _UNIT_PER_SECOND[unit])


def _fraction(sub: int, unit: str) -> str:
    digits = _UNIT_DIGITS[unit]
    return f".{sub:0{digits}d}" if digits else ""


def _tzinfo(tz: str) -> dt.tzinfo | None:
    """The zone of a timestamp column; None means UTC ('Z')."""
    if tz.lower() in _UTC_NAMES:
        return None
    if tz[:1] in "+-" and len(tz) == 6 and tz[3] == ":":
        sign = 1 if tz[0] == "+" else -1
        offset = dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        return dt.timezone(sign * offset)
    try:
        return ZoneInfo(tz)
    except Exception:  # unknown zone name: fall back to plain UTC rather than failing output
        return None


def _timestamp_formatter(t: pa.TimestampType) -> Callable[[int], str]:
    unit = t.unit
    zone = _tzinfo(t.tz) if t.tz else None

    def fmt(value: int) -> str:
        secs, sub = _split(value, unit)
        try:
            naive = _EPOCH + dt.timedelta(seconds=secs)
        except OverflowError:  # beyond year 9999: show the raw count rather than fail
            return f"{value} {unit} since epoch"
        frac = _fraction(sub, unit)
        if not t.tz:
            return naive.strftime("%Y-%m-%dT%H:%M:%S") + frac
        if zone is None:
            return naive.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
        local = naive.replace(tzinfo=dt.UTC).astimezone(zone)
        offset = local.isoformat()[19:]  # "+05:30" after "YYYY-MM-DDTHH:MM:SS"
        return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + offset

    return fmt


def _time_formatter(t: pa.DataType) -> Callable[[int], str]:
    unit = t.unit

    def fmt(value: int) -> str:
        secs, sub = _split(value, unit)
        h, rem = divmod(secs, 3600)
        m, s = divmod(rem, 60)
        return f"{h:02d}:{m:02d}:{s:02d}{_fraction(sub, unit)}"

    return fmt


def _duration_formatter(t: pa.DataType) -> Callable[[int], str]:
    unit = t.unit

    def fmt(value: int) -> str:
        sign = "-" if value < 0 else ""
        secs, sub = _split(abs(value), unit)
        frac = _fraction(sub, unit).rstrip("0").rstrip(".")
        return f"{sign}PT{secs}{frac}S"

    return fmt


def _bytes_value(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(b).decode("ascii")


def _jsonable(v: Any) -> Any:
    """Convert a Python value from Arrow's as_py() (used inside nested types)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, bytes):
        return _bytes_value(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None and v.utcoffset() == dt.timedelta(0):
            return v.replace(tzinfo=None).isoformat() + "Z"
        return v.isoformat()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        total = v.total_seconds()
        return f"{'-' if total < 0 else ''}PT{abs(total):g}S"
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        # map values come back as [(key, value), ...]
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            if all(isinstance(k, str) for k, _ in v):
                return {k: _jsonable(x) for k, x in v}
            return [[_jsonable(k), _jsonable(x)] for k, x in v]
        return [_jsonable(x) for x in v]
    if hasattr(v, "isoformat"):  # pandas.Timestamp for ns values, when pandas is installed
        return v.isoformat()
    return str(v)


def _timestamp_text(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | None:
    """Vectorised ISO text for naive and UTC timestamps (the common, large case); None when
    the column needs the per-value path (another zone, or Arrow cannot format it)."""
    t = arr.type
    if t.tz and t.tz.lower() not in _UTC_NAMES:
        return None
    try:
        # Arrow's cast of a zone-less timestamp to text is ~20x faster than strftime (or than
        # the cast with a zone) and gives "YYYY-MM-DD HH:MM:SS[.fraction]" with the unit's
        # fraction digits, matching _timestamp_formatter once the space becomes a 'T'.
        import pyarrow.compute as pc

        text = arr.cast(pa.timestamp(t.unit)).cast(pa.string())
        text = pc.replace_substring(text, " ", "T", max_replacements=1)
        return pc.binary_join_element_wise(text, "Z", "") if t.tz else text
    except (pa.ArrowException, ValueError):
        return None


def _int_values(arr: pa.ChunkedArray | pa.Array) -> list[int | None]:
    storage = pa.int32() if arr.type.bit_width == 32 else pa.int64()
    return arr.cast(storage).to_pylist()


def column_values(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A column as JSON-ready Python values (see the module docstring for the mapping)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        return column_values(arr.cast(t.value_type))
    if isinstance(t, pa.ExtensionType):
        storage = (
            pa.chunked_array([c.storage for c in arr.chunks], t.storage_type)
            if isinstance(arr, pa.ChunkedArray)
            else arr.storage
        )
        return column_values(storage)
    fmt: Callable[[int], str] | None = None
    if pa.types.is_timestamp(t):
        text = _timestamp_text(arr)
        if text is not None:
            return text.to_pylist()
        fmt = _timestamp_formatter(t)
    elif pa.types.is_time(t):
        fmt = _time_formatter(t)
    elif pa.types.is_duration(t):
        fmt = _duration_formatter(t)
    if fmt is not None:
        # from the raw integers: exact for every unit, and ns needs no pandas
        return [None if v is None else fmt(v) for v in _int_values(arr)]
    if pa.types.is_date(t):
        return [None if v is None else v.isoformat() for v in arr.to_pylist()]
    if pa.types.is_floating(t):
        return [v if v is None or math.isfinite(v) else None for v in arr.to_pylist()]
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return [None if v is None else _bytes_value(v) for v in arr.to_pylist()]
    if pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in arr.to_pylist()]
    if pa.types.is_nested(t):
        return [_jsonable(v) for v in arr.to_pylist()]
    return arr.to_pylist()


# ---------------------------------------------------------------------------------------------
# whole tables


def to_json_records(table: pa.Table) -> list[dict[str, Any]]:
    cols = [column_values(c) for c in table.columns]
    names = table.column_names
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


def to_json_text(table: pa.Table, indent: int | None = None) -> str:
    """The records as a JSON array (UTF-8 text, newline-terminated)."""
    return json.dumps(to_json_records(table), ensure_ascii=False, indent=indent) + "\n"


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns the CSV writer cannot take, or would spell differently from JSON (temporal,
    binary, nested), become strings formatted like the JSON output."""
    cols = []
    for c in table.columns:
        t = c.type
        text = _timestamp_text(c) if pa.types.is_timestamp(t) else None
        if text is not None:
            cols.append(text)
        elif (
            pa.types.is_timestamp(t)
            or pa.types.is_time(t)
            or pa.types.is_duration(t)
            or pa.types.is_nested(t)
            or pa.types.is_dictionary(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)
            or isinstance(t, pa.ExtensionType)
        ):
            values = column_values(c)
            texts = [
                None if v is None else (v if isinstance(v, str) else format_value(v))
                for v in values
            ]
            cols.append(pa.array(texts, pa.string()))
        elif t == pa.string_view():
            cols.append(c.cast(pa.string()))
        else:
            cols.append(c)
    return pa.Table.from_arrays(cols, names=table.column_names)


def to_csv_bytes(table: pa.Table) -> bytes:
    """CSV with a header row; nulls are empty fields."""
    import pyarrow.csv as pcsv

    buf = io.BytesIO()
    pcsv.write_csv(_csv_ready(table), buf)
    return buf.getvalue()


def to_parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------------------------
# streams: a result written batch by batch as the query produces it, never held whole; the
# bytes are those of the whole-table functions above (Parquet: the same rows, one row group
# per batch)


def write_csv_stream(batches: Iterable[pa.RecordBatch], sink: IO[bytes]) -> None:
    import pyarrow.csv as pcsv

    writer = None
    for batch in batches:
        ready = _csv_ready(pa.Table.from_batches([batch]))
        if writer is None:
            writer = pcsv.CSVWriter(sink, ready.schema)
        writer.write_table(ready)
    if writer is not None:
        writer.close()


def write_json_stream(batches: Iterable[pa.RecordBatch], sink: IO[str]) -> None:
    """The records as one JSON array, as to_json_text writes it, one batch at a time."""
    opened = first = False  # "[" waits for the first batch: an error before it prints none
    for batch in batches:
        if not opened:
            sink.write("[")
            opened = first = True
        for record in to_json_records(pa.Table.from_batches([batch])):
            sink.write(("" if first else ", ") + json.dumps(record, ensure_ascii=False))
            first = False
    sink.write("]\n" if opened else "[]\n")


def write_parquet_stream(batches: Iterable[pa.RecordBatch], sink: IO[bytes]) -> None:
    import pyarrow.parquet as pq

    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(sink, batch.schema, compression=PARQUET_COMPRESSION)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def print_table(
    table: pa.Table,
    console: Console,
    title: str | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
) -> None:
    """Print `table` for people: numbers right-aligned, nulls dimmed, at most `max_rows` rows
    (None = all) with a caption saying how many were left out."""
    total = table.num_rows
    shown = table if max_rows is None or total <= max_rows else table.slice(0, max_rows)
    cols = [column_values(c) for c in shown.columns]
    rows = [list(row) for row in zip(*cols, strict=True)]
    numeric = [_is_numeric(f.type) for f in shown.schema]
    print_rows(shown.schema.names, numeric, rows, total, console, title)
