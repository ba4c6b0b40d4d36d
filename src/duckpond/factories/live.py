"""What a data factory makes: live nodes, computed on read from the pond's current inputs.

A data factory's `build(config, ctx)` returns a LiveFile (a table or series with a schema and a
scan over an optional time range), a LiveData (raw bytes) or a LiveDir (children that are
themselves live nodes). Physical pond files are LiveFiles too (the resolver wraps them), so a
factory reads its inputs the same way whether they are stored or derived: composition.

This module knows nothing of storage: the resolver (duckpond.dynamic) implements BuildContext.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import paths
from ..errors import FactoryError

if TYPE_CHECKING:
    import pyarrow as pa


def __getattr__(name: str) -> Any:
    # pyarrow loads on first use, so listing a pond without derived files stays fast
    if name == "TIME_TYPE":
        import pyarrow as pa

        return pa.timestamp("us", tz="UTC")
    raise AttributeError(name)


# part of every cached result's key: bump it when a factory's output changes meaning, so
# results cached by an older pond are never read back
RESULT_FORMAT = "derived-1"


class LiveNode:
    path: str = ""
    file_type: str = ""
    factory: str | None = None

    def key(self) -> str:
        """Changes whenever this node's content may change (input versions, config)."""
        raise NotImplementedError


@dataclass(frozen=True)
class VersionSpan:
    """One live version of a stored series: `ident` changes with its content or attributes."""

    ident: str
    version: int
    txn_seq: int  # the transaction that wrote it
    min_time: int | None  # its rows' event-time range, µs UTC (None: no rows)
    max_time: int | None
    attributes: dict[str, Any]

    @property
    def extended_attributes(self) -> dict[str, Any]:
        """The attributes under a NodeRow's name (seriesview's rules read either)."""
        return self.attributes


@dataclass(frozen=True)
class VersionTail:
    """A stored series' versions from the `first`th (0-based, oldest first) on, every one
    stored (live or not: a collapse, a revert's selection and a bounds record show as
    versions that are not plain appends), and how many it has in all."""

    total: int
    first: int
    spans: list[VersionSpan]


class LiveFile(LiveNode):
    """A table or series: `schema()` and `scan(start, end)` (µs UTC, inclusive, optional)."""

    time_column: str | None = None

    def schema(self) -> pa.Schema:
        raise NotImplementedError

    def scan(self, start: int | None = None, end: int | None = None) -> pa.Table:
        raise NotImplementedError

    def parts(self, start: int | None = None, end: int | None = None) -> list[Any] | None:
        """The Parquet parts of a stored file (query.relations.Part), without versions wholly
        outside [start, end] (all pruned: the newest); None for a derived one."""
        return None

    def scan_versions(
        self,
        versions: list[int],
        bounds: tuple[int | None, int | None],
        start: int | None = None,
        end: int | None = None,
    ) -> pa.Table:
        """A stored series' rows of the versions numbered `versions` (oldest first; the
        last gives the schema when none reaches the window) in [start, end] narrowed to
        `bounds`: for a reader that knows which versions are live and the series' bounds
        (temporal-reduce's open buckets), at a cost in proportion to those versions."""
        raise NotImplementedError(f"{self.path} is not a stored series")

    def version_tail(self, first: int = 0) -> VersionTail | None:
        """A stored series' versions from the `first`th on (None for anything else): what
        lets a reader tell an append from any other change (temporal-reduce's sealed
        buckets) at a cost in proportion to the versions it asks for."""
        return None

    def register(
        self, ctx: Any, names: Sequence[str], start: int | None = None, end: int | None = None
    ) -> None:
        """Make this file the SQL tables `names` in a query context."""
        from ..query import relations

        relations.register_table_arrow(ctx, self.scan(start, end), names=names)


class LiveData(LiveNode):
    def read_bytes(self) -> bytes:
        raise NotImplementedError


class LiveDir(LiveNode):
    """A directory whose children are built on demand, one at a time (so siblings may refer
    to each other without building the whole directory first)."""

    def names(self) -> list[str]:
        raise NotImplementedError

    def child(self, name: str) -> LiveNode | None:
        raise NotImplementedError

    def children(self) -> list[LiveNode]:
        out = []
        for name in sorted(self.names()):
            node = self.child(name)
            if node is not None:
                out.append(node)
        return out


class BuildContext(Protocol):
    """What a factory may do while building its node (the resolver implements it)."""

    path: str  # the node's own pond path

    @property
    def pond_root(self) -> Path:
        """The pond's directory (an import mount reads the copy kept under it)."""
        ...

    def glob(self, pattern: str) -> list[LiveNode]: ...

    def private_bytes(self, key: str) -> bytes | None:
        """The node's own private content `key` (storage/private.py; a job writes it with
        `RunContext.write_private`); None when never written or the node is not stored."""
        ...

    def lookup(self, path: str) -> LiveNode | None: ...

    def build(self, path: str, factory: str, config: dict[str, Any]) -> LiveNode: ...

    def cached(self, key: str, compute: Callable[[], pa.Table]) -> pa.Table: ...


class DerivedFile(LiveFile):
    """A file computed by a factory; scans go through the resolver's result cache."""

    def __init__(self, ctx: BuildContext, path: str, file_type: str, factory: str) -> None:
        self.ctx = ctx
        self.path = path
        self.file_type = file_type
        self.factory = factory

    def compute(self, start: int | None, end: int | None) -> pa.Table:
        raise NotImplementedError

    def scan(self, start: int | None = None, end: int | None = None) -> pa.Table:
        key = digest(RESULT_FORMAT, self.key(), start, end)
        return self.ctx.cached(key, lambda: self.compute(start, end))


def digest(*parts: Any) -> str:
    import hashlib  # ~1-2 ms to load: not for plain reads (bench group `startup`)

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# helpers shared by the data factories


_SCHEMES = ("series://", "table://", "file://", "pond://")


def pattern_path(pattern: str) -> str:
    """`series:///a/*` (or a bare `/a/*`, or a format URL `oteljson:///a/*`) -> `/a/*`."""
    if _is_format_url(pattern):
        path: str = _format_url(pattern).path
        return path
    for scheme in _SCHEMES:
        if pattern.startswith(scheme):
            rest = pattern[len(scheme) :]
            if not rest.startswith("/"):
                raise FactoryError(f"pattern {pattern!r} needs an absolute path after {scheme}")
            return rest
    if not pattern.startswith("/"):
        raise FactoryError(f"pattern {pattern!r} must be an absolute pond path or series:///...")
    return pattern


def _is_format_url(pattern: str) -> bool:
    return "://" in pattern and not pattern.startswith(_SCHEMES)


def _format_url(pattern: str) -> Any:
    from ..errors import PondError
    from ..query.urls import parse_source

    try:
        src = parse_source(pattern)
    except PondError as e:
        raise FactoryError(f"pattern {pattern!r}: {e}") from None
    if src.format is None or src.is_host:
        raise FactoryError(
            f"pattern {pattern!r} must be a pond path, series:///... or FORMAT:///pond/path"
        )
    return src


def input_pattern(pattern: str) -> str:
    """What to glob for an input pattern: the pond path, or the whole format URL (the
    context parses each raw file it matches in that format)."""
    return pattern if _is_format_url(pattern) else pattern_path(pattern)


def files_of(nodes: list[LiveNode]) -> list[LiveFile]:
    return [n for n in nodes if isinstance(n, LiveFile)]


def capture_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a glob whose `*` and `**` become numbered captures ($0, $1, ...)."""
    out: list[str] = []
    i = 0
    norm = paths.compile_glob(pattern).pattern
    while i < len(norm):
        if norm.startswith("/**/", i):
            out.append("(?:/(.*))?/")
            i += 4
        elif norm.startswith("/**", i) and i + 3 == len(norm):
            out.append("(?:/(.*))?")
            i += 3
        elif norm[i] == "*":
            while i < len(norm) and norm[i] == "*":
                i += 1
            out.append("([^/]*)")
            continue
        elif norm[i] == "?":
            out.append("[^/]")
            i += 1
        elif norm[i] == "[":
            end = norm.find("]", i + 2)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                body = norm[i + 1 : end]
                if body[:1] in "!^":
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(norm[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def captures(pattern: str, path: str) -> list[str]:
    m = capture_regex(pattern).match(path)
    return [g or "" for g in m.groups()] if m else []


def substitute(template: str, caps: list[str]) -> str:
    """Replace $0, $1, ... in an out_pattern with the captures."""

    def sub(m: re.Match[str]) -> str:
        i = int(m.group(1))
        if i >= len(caps):
            raise FactoryError(f"out_pattern uses ${i} but the pattern has {len(caps)} capture(s)")
        return caps[i]

    return re.sub(r"\$(\d+)", sub, template)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$")
_UNIT_US = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "min": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}


def parse_duration(text: Any, what: str = "duration") -> int:
    """`15m`, `1h`, `90s`, `1d`, `7d`, `1w`, `500ms` -> microseconds (> 0)."""
    m = _DURATION.match(str(text)) if isinstance(text, str) else None
    if m is None:
        raise FactoryError(
            f"{what} {text!r} is not a duration (use a number and ms, s, m, h, d or w: 15m, 1h)"
        )
    us = int(float(m.group(1)) * _UNIT_US[m.group(2)])
    if us <= 0:
        raise FactoryError(f"{what} {text!r} must be positive")
    return us


def parse_time(value: Any, what: str) -> int:
    """An ISO 8601 time (or a YAML timestamp) -> µs since the epoch, UTC unless it says."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, dt.date):
        t = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FactoryError(f"{what} {value!r} is not an ISO 8601 time") from None
    else:
        raise FactoryError(f"{what} must be an ISO 8601 time, got {value!r}")
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_to_us(table: pa.Table, column: str) -> pa.Table:
    """`table` with its time column as timestamp[us, UTC] (derived series agree on it)."""
    import pyarrow as pa

    idx = table.schema.get_field_index(column)
    if idx < 0:
        raise FactoryError(f"time column '{column}' not found")
    t = table.schema.field(idx).type
    if t == pa.timestamp("us", tz="UTC"):
        return table
    arr = table.column(idx)
    if pa.types.is_timestamp(t):
        arr = arr.cast(pa.timestamp(t.unit, tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    elif pa.types.is_integer(t):
        arr = arr.cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    elif pa.types.is_date(t):
        arr = arr.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    else:
        raise FactoryError(f"time column '{column}' has type {t}, not a time")
    return table.set_column(idx, pa.field(column, arr.type), arr)


def schema_fields(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def union_schema(files: list[LiveFile]) -> pa.Schema:
    """The superset schema of several files (columns missing in one read as NULL)."""
    from ..query import relations

    return relations.unify_schemas([f.schema() for f in files])


def register_union(
    ctx: Any, name: str, files: list[LiveFile], start: int | None, end: int | None
) -> None:
    """Register the union of `files` (superset schema) as the SQL table `name`.

    Stored files go in as one list of Parquet parts, so versions outside [start, end] are
    skipped unopened and DuckDB scans them in parallel; derived ones as Arrow."""
    import pyarrow as pa

    from ..query import relations

    if len(files) == 1:
        files[0].register(ctx, [name], start, end)
        return
    stored = [f.parts(start, end) for f in files]
    columns = {f.time_column for f in files}
    if all(p is not None for p in stored) and (len(columns) == 1 or start is end is None):
        parts = [p for ps in stored for p in (ps or [])]
        # the superset schema costs a footer read per part: only needed when the window
        # leaves no part to scan (DuckDB merges the scanned parts' schemas itself)
        kept = [p for p in parts if relations.overlaps(p, start, end)]
        relations.register_parts(
            ctx,
            parts,
            names=[name],
            time_column=next(iter(columns)),
            time_start=start,
            time_end=end,
            schema=None if kept else union_schema(files),
        )
        return
    schema = union_schema(files)
    tables = [relations.conform(f.scan(start, end), schema) for f in files]
    relations.register_table_arrow(ctx, pa.concat_tables(tables), names=[name])


def empty_like(schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    return pa.table([pa.array([], f.type) for f in schema], schema=schema)


def sort_by_time(table: pa.Table, column: str) -> pa.Table:
    return table.sort_by([(column, "ascending")]) if table.num_rows else table


def window(table: pa.Table, column: str, start: int | None, end: int | None) -> pa.Table:
    """Rows of `table` whose time is in [start, end] (µs UTC, inclusive, either optional)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if (start is None and end is None) or table.schema.get_field_index(column) < 0:
        return table
    times = time_to_us(table.select([column]), column).column(0).cast(pa.int64())
    mask = None
    if start is not None:
        mask = pc.greater_equal(times, start)
    if end is not None:
        upper = pc.less_equal(times, end)
        mask = upper if mask is None else pc.and_(mask, upper)
    return table.filter(mask)
