"""`weblog`: web server access logs in Combined Log Format (nginx, Apache), or Common Log
Format (no referer and user agent).

`10.1.2.3 - bob [02/Feb/2025:08:30:00 +0100] "GET /a?x=1 HTTP/1.1" 200 512 "-" "curl/8"`

Ten columns: timestamp (timestamp[us, UTC], the request time converted from its offset),
remote_addr, remote_user, method, path, protocol, status (uint16), body_bytes_sent (uint64),
http_referer, http_user_agent. `-` becomes NULL (0 for the byte count). A line that does not
match is skipped and counted.
"""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa

from .base import MAX_LINE_BYTES, Options, Parsed, Skipped, lines, no_good_lines

TIME_COLUMN = "timestamp"
SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", "UTC"), nullable=False),
        pa.field("remote_addr", pa.string(), nullable=False),
        pa.field("remote_user", pa.string()),
        pa.field("method", pa.string()),
        pa.field("path", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("status", pa.uint16(), nullable=False),
        pa.field("body_bytes_sent", pa.uint64(), nullable=False),
        pa.field("http_referer", pa.string()),
        pa.field("http_user_agent", pa.string()),
    ]
)
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(
    r"(\S+) (\S+) (\S+) \[([^\]]+)\] " + _QUOTED + r" (\d{3}) (\d+|-)"
    r"(?:\s+" + _QUOTED + r"\s+" + _QUOTED + r")?"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def read(data: bytes, options: Options, what: str) -> Parsed:
    skipped = Skipped()
    cols: list[list[object]] = [[] for _ in SCHEMA]
    for number, raw in lines(data, strip_nul=False):
        if len(raw) > MAX_LINE_BYTES:
            skipped.add(number, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped.add(number, "not UTF-8 text")
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            skipped.add(number, "not a Common or Combined Log Format line")
            continue
        addr, _ident, user, when, request, status, size, referer, agent = m.groups()
        try:
            t = dt.datetime.strptime(when, "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            skipped.add(number, f"bad time [{when[:40]}]")
            continue
        delta = t - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        method, path, protocol = _request(request)
        row = (
            micros,
            addr,
            _dash(user),
            method,
            path,
            protocol,
            int(status),
            0 if size == "-" else int(size),
            _dash(referer),
            _dash(agent),
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    if not cols[0] and skipped.count:
        raise no_good_lines("weblog", what, skipped)
    arrays = [pa.array(col, f.type) for col, f in zip(cols, SCHEMA, strict=True)]
    return Parsed(pa.Table.from_arrays(arrays, schema=SCHEMA), skipped)


def _dash(value: str | None) -> str | None:
    return None if value is None or value == "-" else value


def _request(request: str) -> tuple[str | None, str | None, str | None]:
    parts = request.split(" ", 2)
    if not request:
        return None, None, None
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) == 2:
        return parts[0], parts[1], None
    return parts[0], parts[1], parts[2]
