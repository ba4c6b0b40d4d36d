"""`jsonlogs`: any JSON lines (journalctl --output=json, structured application logs).

One row per object line, in file order; one column per top-level key seen in any line,
sorted. A column whose values are all booleans, all integers or all numbers gets that type;
any other column is text (strings unquoted, other values as compact JSON). A text column named
like a time (`timestamp`, `time`, `ts`, `@timestamp`, `event_time`) whose every value is an
ISO 8601 time becomes timestamp[us, UTC] (a time without an offset is UTC), so a log can be
stored as a series. A line that is not a JSON object is skipped and counted.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from .base import MAX_LINE_BYTES, Options, Parsed, Skipped, lines, no_good_lines, one_line

TIME_NAMES = ("timestamp", "time", "ts", "@timestamp", "event_time")


def read(data: bytes, options: Options, what: str) -> Parsed:
    skipped = Skipped()
    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    for number, line in lines(data):
        if len(line) > MAX_LINE_BYTES:
            skipped.add(number, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
            continue
        try:
            doc = json.loads(line)
        except RecursionError:
            skipped.add(number, "JSON nested too deeply")
            continue
        except UnicodeDecodeError:
            skipped.add(number, "not UTF-8 text")
            continue
        except json.JSONDecodeError as e:
            skipped.add(number, f"not JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(doc, dict):
            skipped.add(number, f"a JSON {type(doc).__name__}, not an object")
            continue
        rows.append(doc)
        keys.update(doc)
    if not rows and skipped.count:
        raise no_good_lines("jsonlogs", what, skipped)
    columns = {key: _column(key, [row.get(key) for row in rows]) for key in sorted(keys)}
    return Parsed(pa.table(columns) if columns else pa.table({}), skipped)


def _column(name: str, values: list[Any]) -> pa.Array:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(1 << 63) <= v < (1 << 63) for v in present):
            return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    text = pa.array([_text(v) for v in values], pa.string())
    if present and name.lower() in TIME_NAMES:
        return _as_time(text)
    return text


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError) as e:
        return one_line(e)


def _as_time(text: pa.Array) -> pa.Array:
    """ISO 8601 text as timestamp[us, UTC], or the text unchanged when any value is not one.
    Times with an offset are converted; times without one are taken as UTC."""
    for via in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
        try:
            return text.cast(via).cast(pa.timestamp("us", "UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return text
