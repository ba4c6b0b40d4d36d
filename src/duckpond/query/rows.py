"""A small query result as Python rows, computed and written without pyarrow (issue 19).

`pond cat --sql` of a GROUP BY or a windowed aggregate answers in a few rows; loading
pyarrow (and numpy, which it brings) to write them costs more time and memory than DuckDB's
query (bench 22). `small_result` runs the query with DuckDB's own row fetch when every
column has a plain type (boolean, integer, double, text, date, µs timestamp) and the result
has at most `SMALL_ROWS` rows; otherwise it returns None having written nothing, and the
caller streams the query through Arrow (output.py) on the same context. The writers here
give the bytes output.py gives for the same result (tests/test_cat_small.py compares them):
pyarrow's CSV spelling of numbers, the JSON value mapping, the same rich table.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import duckdb

from .limits import apply_process_bound, clear_spill_dir

if TYPE_CHECKING:
    from rich.console import Console

    from .sql import QueryContext

DEFAULT_MAX_ROWS = 100  # rows a table for people shows (output.print_table)
# Past this many rows Python's per-value work costs more than loading pyarrow does.
SMALL_ROWS = 10_000

# DuckDB type -> how its values are held and written
_KINDS = {
    "BOOLEAN": "bool",
    **dict.fromkeys(
        (
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
        ),
        "int",
    ),
    # `sum` of integers: Arrow reads it back as int64 where every value fits, else as
    # decimal128(38, 0) (sql._as_int64)
    "HUGEINT": "wide",
    "UHUGEINT": "wide",
    "DOUBLE": "float",
    "VARCHAR": "str",
    "DATE": "date",
    "TIMESTAMP": "ts",
    "TIMESTAMP WITH TIME ZONE": "tsz",
}
_NUMERIC = {"int", "wide", "float"}
_INT64 = range(-(1 << 63), 1 << 63)
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class Rows:
    """A whole small result: column names, each column's kind (see _KINDS) and the rows
    as JSON-ready values (timestamps as ISO text, dates as dates, see output.py's mapping);
    `decimal` holds the HUGEINT columns Arrow would give as decimals (a value past int64)."""

    names: list[str]
    kinds: list[str]
    rows: list[list[Any]]
    decimal: set[int]


class _NotSmall(Exception):
    """A value Python's row fetch cannot give exactly as Arrow would: left to Arrow."""


def small_result(
    ctx: QueryContext, query: str, timeout: float | None, limit: int = SMALL_ROWS
) -> Rows | None:
    """The rows of one read-only query (the rules of sql.run_sql) when all its columns have
    plain types and it has at most `limit` rows; None otherwise (nothing written, the
    context ready for sql.stream_sql of the same query)."""
    from . import sql

    if sql.check_read_only(ctx, query) != "SELECT":
        return None
    ctx.lock()
    apply_process_bound()  # the CLI's cap on the whole process, once (limits.py)
    guard = sql._Guard(ctx, timeout)
    try:
        try:
            rel = ctx.con.sql(query)
            kinds = [_KINDS.get(str(t)) for t in rel.types]
            if any(k is None for k in kinds):
                return None
            names = list(rel.columns)
            fetched = _projected(rel, kinds).limit(limit + 1).fetchall()
        except duckdb.Error as e:
            raise sql.failure(ctx, guard, e) from None
        except RuntimeError as e:  # DuckDB's answer to a SIGINT (Ctrl-C) during a query
            raise sql.interrupted(ctx, guard, e) from None
        except MemoryError:  # the process bound (limits.apply_process_bound) was reached
            raise sql._memory_error(ctx, "the query outgrew it") from None
    finally:
        guard.stop()
        clear_spill_dir(ctx.spill)
    if len(fetched) > limit:
        return None
    try:
        return _rows(names, kinds, fetched)  # type: ignore[arg-type]  # no None left
    except _NotSmall:
        return None


def _projected(rel: duckdb.DuckDBPyRelation, kinds: list[str | None]) -> duckdb.DuckDBPyRelation:
    """Timestamps as µs integers (a zoned one cannot be fetched without pytz), and a last
    column saying whether every date and timestamp of the row is finite."""
    exprs = []
    finite = []
    for i, kind in enumerate(kinds, start=1):
        if kind in ("ts", "tsz"):
            exprs.append(f"epoch_us(#{i})")
        else:
            exprs.append(f"#{i}")
        if kind in ("ts", "tsz", "date"):
            finite.append(f"coalesce(isinf(#{i}), false)")
    exprs.append(f"NOT ({' OR '.join(finite)})" if finite else "true")
    return rel.project(", ".join(exprs))


def _timestamp_text(micros: int, zoned: bool) -> str:
    try:
        text = (_EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")
    except OverflowError:  # before year 1 or after 9999: Arrow's own spelling
        raise _NotSmall from None
    return text + "Z" if zoned else text


def _rows(names: list[str], kinds: list[str], fetched: list[tuple[Any, ...]]) -> Rows:
    rows = []
    for raw in fetched:
        if not raw[-1]:  # an infinite date or timestamp
            raise _NotSmall
        row = list(raw[:-1])
        for i, kind in enumerate(kinds):
            v = row[i]
            if v is None:
                continue
            if kind in ("ts", "tsz"):
                row[i] = _timestamp_text(v, kind == "tsz")
            elif kind == "date" and type(v) is not dt.date:  # a date BC comes as text
                raise _NotSmall
        rows.append(row)
    decimal = {
        i
        for i, kind in enumerate(kinds)
        if kind == "wide" and any(r[i] is not None and r[i] not in _INT64 for r in rows)
    }
    return Rows(names, kinds, rows, decimal)


# ---------------------------------------------------------------------------------------------
# writing: the bytes of output.py's writers


def arrow_float(v: float) -> str:
    """A double as pyarrow's CSV writer spells it: the shortest digits that read back
    exactly, plain from 1e-6 up to 1e10, else with an exponent (`1e-7`, `1.5e+10`);
    `100` without a point, `nan`, `inf`."""
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    text = repr(v)
    sign = "-" if text[0] == "-" else ""
    text = text.lstrip("-")
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # the decimal exponent of the first significant digit
    if whole.strip("0"):
        exponent = len(whole.lstrip("0")) - 1
    else:
        exponent = -(len(frac) - len(frac.lstrip("0")) + 1)
    exponent += int(exp_text or 0)
    digits = digits.rstrip("0") or "0"
    if -6 <= exponent < 10:
        if exponent < 0:
            return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
        if len(digits) <= exponent + 1:
            return sign + digits + "0" * (exponent + 1 - len(digits))
        return f"{sign}{digits[: exponent + 1]}.{digits[exponent + 1 :]}"
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_cell(kind: str, v: Any) -> str:
    if v is None:
        return ""
    if kind in ("str", "ts", "tsz"):
        return _quoted(v)
    if kind == "float":
        return arrow_float(v)
    if kind == "bool":
        return "true" if v else "false"
    if kind == "date":
        return str(v.isoformat())
    return str(v)


def write_csv(result: Rows, sink: IO[bytes]) -> None:
    """As output.write_csv_stream: a header of quoted names, strings and timestamps quoted,
    nulls empty."""
    lines = [",".join(_quoted(n) for n in result.names)]
    kinds = result.kinds
    for row in result.rows:
        lines.append(",".join(_csv_cell(k, v) for k, v in zip(kinds, row, strict=True)))
    sink.write(("\n".join(lines) + "\n").encode())


def values(result: Rows) -> list[list[Any]]:
    """The rows as output.column_values gives them: NaN and infinities null, dates ISO
    text, decimal (HUGEINT) columns as text."""
    out = []
    for row in result.rows:
        vals = list(row)
        for i, kind in enumerate(result.kinds):
            v = vals[i]
            if v is None:
                continue
            if kind == "float" and not math.isfinite(v):
                vals[i] = None
            elif kind == "date":
                vals[i] = v.isoformat()
            elif i in result.decimal:
                vals[i] = str(v)
        out.append(vals)
    return out


def write_json(result: Rows, sink: IO[str]) -> None:
    """As output.write_json_stream: one JSON array of records."""
    import json  # here, not at the top: a CSV or a table never needs it (~1.5 ms)

    names = result.names
    records = [
        json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) for row in values(result)
    ]
    sink.write("[" + ", ".join(records) + "]\n")


def numeric(result: Rows) -> list[bool]:
    return [k in _NUMERIC for k in result.kinds]


def print_rows(
    names: Sequence[str],
    numeric: Sequence[bool],
    rows: Sequence[Sequence[Any]],
    total: int,
    console: Console,
    title: str | None = None,
) -> None:
    """Print rows for people (output.print_table's body): numbers right-aligned, nulls
    dimmed, a last line saying how many of `total` rows are shown."""
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(show_lines=False, header_style="bold")
    for name, number in zip(names, numeric, strict=True):
        out.add_column(name, justify="right" if number else "left", overflow="fold")
    for row in rows:
        out.add_row(
            *(Text("NULL", style="dim") if v is None else Text(format_value(v)) for v in row)
        )
    if len(rows) < total:
        summary = f"{len(rows)} of {total} rows shown"
    else:
        summary = f"{total} row{'' if total == 1 else 's'}"
    # title and summary as their own lines: as table title/caption they wrap to a narrow table
    if title:
        console.print(Text(title, style="bold"))
    console.print(out)
    console.print(Text(summary, style="dim"))


def format_value(value: Any) -> str:
    """One JSON-ready value (from output.column_values) as display text; null is ``NULL``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
