"""`csv`: comma- (or otherwise) separated values with pyarrow's CSV reader (all cores).

Options (URL query): `delimiter` (one character, default `,`; `tab` for a tab), `header`
(`true`/`false`, default true; without one columns are `column_1..n`), `quote` (default `"`,
`none` for no quoting), `escape` (default none), `infer_rows` (how many rows decide the column
types; default: the first block of ~1 MiB). DuckPond's names `has_header` and
`schema_infer_max_records` are accepted too. A row with the wrong number of fields is skipped
and counted; a value that does not fit its column's type beyond the inferred rows is an
error naming the row.

The parsing and error helpers are shared with the query layer's CSV copy (query/ingest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from ..errors import FormatError, PondUsageError, clip
from .base import Options, Parsed, Skipped, one_line

ARROW_ERRORS = (pa.ArrowException, OSError, ValueError)
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def read(data: bytes, options: Options, what: str) -> Parsed:
    parse, read_opts, infer_rows = _options(options)
    skipped = Skipped()

    def on_bad_row(row: Any) -> str:
        # the line number is known only when parsing single-threaded (else None or -1)
        skipped.add(row.number if (row.number or 0) > 0 else 0, _bad_row(row))
        return "skip"

    parse = pcsv.ParseOptions(
        delimiter=parse.delimiter,
        quote_char=parse.quote_char,
        escape_char=parse.escape_char,
        double_quote=parse.double_quote,
        invalid_row_handler=on_bad_row,
    )

    def open_stream() -> pa.NativeFile:
        return pa.BufferReader(data)

    convert = None
    if infer_rows is not None:
        convert = pcsv.ConvertOptions(column_types=_infer(data, parse, read_opts, infer_rows, what))
    table = parse_csv(open_stream, what, read_opts, parse, convert)
    check_csv_schema(table.schema, open_stream, what)
    if skipped.count and skipped.first_line == 0:
        # threaded parsing loses line numbers: find the first bad row again (error path only)
        skipped = _numbered(data, parse, read_opts, convert, skipped.count)
    if not read_opts.autogenerate_column_names:
        return Parsed(table, skipped)
    names = [f"column_{i}" for i in range(1, table.num_columns + 1)]
    return Parsed(table.rename_columns(names), skipped)


def _bad_row(row: Any) -> str:
    return (
        f"expected {row.expected_columns} fields, found {row.actual_columns}: "
        f"{one_line(str(row.text)[:60])}"
    )


def _options(options: Options) -> tuple[pcsv.ParseOptions, pcsv.ReadOptions, int | None]:
    delimiter = options.get("delimiter", ",")
    if delimiter == "tab":
        delimiter = "\t"
    quote = options.get("quote", '"')
    escape = options.get("escape")
    for name, value in (("delimiter", delimiter), ("quote", quote), ("escape", escape)):
        if value is not None and value != "none" and len(value) != 1:
            raise PondUsageError(f"csv option {name} must be one character, got {clip(value)!r}")
    header = _bool("header", options.get("header", options.get("has_header", "true")))
    rows = options.get("infer_rows", options.get("schema_infer_max_records"))
    infer_rows = None
    if rows is not None:
        if not rows.isdigit() or int(rows) < 1:
            raise PondUsageError(
                f"csv option infer_rows must be a positive integer, got {clip(rows)!r}"
            )
        infer_rows = int(rows)
    parse = pcsv.ParseOptions(
        delimiter=delimiter,
        quote_char=False if quote == "none" else quote,
        escape_char=False if escape in (None, "none") else escape,
        double_quote=escape in (None, "none"),
    )
    return parse, pcsv.ReadOptions(autogenerate_column_names=not header), infer_rows


def _bool(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise PondUsageError(f"csv option {name} must be true or false, got {clip(value)!r}")


def _infer(
    data: bytes, parse: pcsv.ParseOptions, read_opts: pcsv.ReadOptions, rows: int, what: str
) -> dict[str, pa.DataType]:
    """Column types from the first `rows` rows (plus the header)."""
    end = -1
    for _ in range(rows + (0 if read_opts.autogenerate_column_names else 1)):
        end = data.find(b"\n", end + 1)
        if end < 0:
            break
    head = data if end < 0 else data[: end + 1]
    table = parse_csv(lambda: pa.BufferReader(head), what, read_opts, parse, None)
    return dict(zip(table.schema.names, table.schema.types, strict=True))


def _numbered(
    data: bytes,
    parse: pcsv.ParseOptions,
    read_opts: pcsv.ReadOptions,
    convert: pcsv.ConvertOptions | None,
    count: int,
) -> Skipped:
    found = Skipped()

    def on_bad_row(row: Any) -> str:
        found.add(row.number or 0, _bad_row(row))
        return "skip"

    single = pcsv.ReadOptions(
        use_threads=False, autogenerate_column_names=read_opts.autogenerate_column_names
    )
    opts = pcsv.ParseOptions(
        delimiter=parse.delimiter,
        quote_char=parse.quote_char,
        escape_char=parse.escape_char,
        double_quote=parse.double_quote,
        invalid_row_handler=on_bad_row,
    )
    pcsv.read_csv(
        pa.BufferReader(data), read_options=single, parse_options=opts, convert_options=convert
    )
    found.count = count
    return found


# ---------------------------------------------------------------------------------------------
# shared with query/ingest.py


def csv_error(what: str, err: BaseException) -> FormatError:
    msg = one_line(err, 300)
    if msg == "Empty CSV file":
        return FormatError(f"empty CSV file: {what}")
    msg = msg.removeprefix("CSV parse error: ")
    return FormatError(f"malformed CSV in {what}: {msg}")


def utf8_error(open_stream: Callable[[], pa.NativeFile], what: str) -> FormatError:
    """Where the input stops being UTF-8 (error path only: one streamed pass)."""
    line, carry = 1, b""
    with open_stream() as s:
        while chunk := s.read(1 << 20):
            data = carry + chunk
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as e:
                if e.reason == "unexpected end of data" and len(data) - e.start < 4:
                    carry = data[e.start :]  # a character split between chunks
                    data = data[: e.start]
                else:
                    line += data.count(b"\n", 0, e.start)
                    return FormatError(
                        f"{what} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} "
                        "cannot be decoded; convert the file to UTF-8 first "
                        "(for example: iconv -f latin1 -t utf-8)"
                    )
            line += data.count(b"\n")
    if carry:
        return FormatError(f"{what} is not UTF-8 text: it ends in the middle of a character")
    return FormatError(f"{what} is not UTF-8 text")


def check_column_names(schema: pa.Schema, what: str) -> None:
    """Refuse duplicate column names: Parquet keeps both, but SQL, CSV and JSON output can
    only show one of them."""
    seen: dict[str, int] = {}
    for i, name in enumerate(schema.names, start=1):
        if name in seen:
            raise FormatError(
                f"{what} has two columns named {clip(name)!r} (columns {seen[name]} and {i}): "
                "column names must be unique"
            )
        seen[name] = i


def check_csv_schema(
    schema: pa.Schema, open_stream: Callable[[], pa.NativeFile], what: str
) -> None:
    """Only UTF-8 CSV is accepted: pyarrow keeps undecodable header names as raw bytes and
    infers undecodable values as a binary column (never inferred otherwise). Header names
    must be unique."""
    try:
        schema.names  # noqa: B018 - decoding the names is the check
    except UnicodeDecodeError:
        raise utf8_error(open_stream, what) from None
    if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in schema.types):
        raise utf8_error(open_stream, what)
    check_column_names(schema, what)


def parse_csv(
    open_stream: Callable[[], pa.NativeFile],
    what: str,
    read_options: pcsv.ReadOptions | None = None,
    parse_options: pcsv.ParseOptions | None = None,
    convert_options: pcsv.ConvertOptions | None = None,
) -> pa.Table:
    read_options = read_options or pcsv.ReadOptions()
    try:
        with open_stream() as s:
            return pcsv.read_csv(
                s,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
    except ARROW_ERRORS as e:
        first = e
    # Threaded parsing loses row numbers; re-parse single-threaded (error path only) so the
    # message can say where the problem is.
    single = pcsv.ReadOptions(
        use_threads=False, autogenerate_column_names=read_options.autogenerate_column_names
    )
    try:
        with open_stream() as s:
            pcsv.read_csv(
                s,
                read_options=single,
                parse_options=parse_options,
                convert_options=convert_options,
            )
    except ARROW_ERRORS as e:
        raise csv_error(what, e) from None
    raise csv_error(what, first) from None


# ---------------------------------------------------------------------------------------------
# times that are not ISO 8601: `--time-format` (strptime syntax, as DuckDB's timestampformat)


def time_parsers(time_format: str | None) -> list[str] | None:
    """pyarrow's `timestamp_parsers` for `time_format` (ISO 8601 still read elsewhere)."""
    if time_format is None:
        return None
    if not time_format.strip() or "%" not in time_format:
        raise PondUsageError(
            f"time format {clip(time_format)!r} has no % field (strptime syntax: %Y/%m/%d %H:%M)"
        )
    return [time_format, pcsv.ISO8601]


def check_time_format(
    schema: pa.Schema,
    column: str | None,
    candidates: tuple[str, ...],
    time_format: str,
    open_stream: Callable[[], pa.NativeFile],
    what: str,
) -> None:
    """After a read with time_parsers(time_format): the time column (`column`, else any
    timestamp one) holds times, or a FormatError names the first value that does not match
    in it (else in the first of `candidates`, or the first text column holding a matching
    value). Error path only: it reads the text columns once more."""
    if column is None and any(pa.types.is_timestamp(t) for t in schema.types):
        return
    idx = -1 if column is None else schema.get_field_index(column)
    if column is not None and (idx < 0 or pa.types.is_timestamp(schema.field(idx).type)):
        return  # a missing column is the time column check's to report
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    if column is not None:
        text = [column]
    else:  # a column named like a time column first
        text = sorted(text, key=lambda n: n not in candidates)
    import pyarrow.compute as pc

    convert = pcsv.ConvertOptions(
        include_columns=text, column_types=dict.fromkeys(text, pa.string())
    )
    with open_stream() as s:
        table = pcsv.read_csv(
            s, read_options=pcsv.ReadOptions(use_threads=False), convert_options=convert
        )
    for col in text:
        values = table.column(col)
        parsed = pc.strptime(values, format=time_format, unit="us", error_is_null=True)
        if column is None and col not in candidates and parsed.null_count == len(parsed):
            continue  # no value of it matches: not the time column
        for i, (raw, when) in enumerate(zip(values.to_pylist(), parsed.to_pylist(), strict=True)):
            if when is None and raw not in (None, ""):
                raise FormatError(
                    f"{what}: line {i + 2}: {clip(raw)!r} in column '{col}' does not match "
                    f"--time-format {time_format!r}"
                )
    raise FormatError(f"{what}: no column holds times matching --time-format {time_format!r}")
