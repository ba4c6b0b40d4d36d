"""Reading a stored series through its read cache (duckpond/seriescache.py has the layout
and keys; docs/developer/query-engine.md the design).

A series of many small versions keeps each one as inline Parquet bytes in the data table;
reading it decoded every one of them on every read. The cache holds the live versions as a
chain of segment files; a read registers those by path (as a blob is read) plus the
versions appended since (the tail). A read that finds at least `MIN_PARTS` inline versions
in the tail writes the tail as a new segment, merged with the newest segments as a binary
counter merges (each segment kept more than twice the size of the next newer one): a
version is rewritten O(log N) times in all, and a read sees O(log N) files. The cache is an
optimisation only: a file that cannot be written or read is dropped and the versions are
read as they are.

Each segment also records the unified Arrow schema of the versions it holds (its Parquet
key-value metadata, `SCHEMA_KEY`): the file's own schema is DuckDB's, which may differ in
types and field metadata from what the versions' footers give. `series_schema` unifies
those records and the tail's footers: the schema a read of every footer gives, from a few.
Both `pond cat` and factories' stored inputs (dynamic/physical.py) read through here.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import seriescache
from ..crashpoints import crash_point
from ..errors import FormatError, NotFoundError
from .limits import DEFAULT_TIMEOUT
from .pondview import NodeStore, StoredPart
from .relations import Part, register_parts, unify_schemas
from .sql import SOURCE_NAMES, QueryContext, within_limits
from .sqltext import literal

if TYPE_CHECKING:
    import pyarrow as pa

# rows per Parquet row group of a cache file: DuckDB's own default, so a scan runs on every
# core and the row groups' statistics prune a time window
_ROW_GROUP = 122_880

# A file merged away or no longer in the chain is removed by a later write only once it has
# been out of the chain this long: a query that registered it before may run until its
# time limit.
SUPERSEDED_AGE_S = DEFAULT_TIMEOUT

# a segment's Parquet key-value metadata: the unified schema of the versions it holds
# (Arrow IPC, base64)
SCHEMA_KEY = "duckpond.series_schema"


def register_series(
    ctx: QueryContext,
    fs: NodeStore,
    part_id: str,
    node_id: str,
    *,
    time_column: str | None,
    time_start: int | None,
    time_end: int | None,
    names: Sequence[str] = SOURCE_NAMES,
) -> None:
    """Register the node's live versions in [time_start, time_end] under `names`
    (relations.register_parts), through the series read cache."""

    def register(found: Sequence[StoredPart | Part], as_names: Sequence[str] = names) -> None:
        register_parts(
            ctx,
            [Part(p.path, p.data, p.min_time, p.max_time) for p in found],
            names=as_names,
            time_column=time_column,
            time_start=time_start,
            time_end=time_end,
        )

    found = fs.series_parts(part_id, node_id, time_start, time_end, cached=True)
    try:
        register(found)
    except (FormatError, NotFoundError):
        segments = [p for p in found if p.cache_key is not None]
        if not segments:
            raise
        # a damaged or vanished segment: dropped, the versions read as they are; the next
        # read writes it again (not this one: its connection may hold the damaged file's
        # bytes under the name a new file would get)
        paths = [Path(p.path or "") for p in segments]
        damaged = _damaged(paths)
        for path in damaged:
            seriescache.remove(path)
        register(fs.series_parts(part_id, node_id, time_start, time_end))
        if not damaged:  # every footer reads, yet only the versions register: which one
            for path in paths:  # of the segments failed is unknown
                seriescache.remove(path)
        return
    if time_start is not None or time_end is not None:
        return  # a window's parts are not all the versions: nothing to cache
    directory = fs.series_cache_dir(part_id, node_id)
    plan = _plan(found)
    if directory is None or plan is None:
        return
    sources = found[plan.first :]
    if plan.first == 0:
        select = ctx.tables[names[0]]  # all of the read's rows
    else:  # the merged segments and the tail only, under a name of pond's own
        private = f"__pond_series_{uuid.uuid4().hex[:12]}"
        try:
            register(sources, [private])
        except (FormatError, NotFoundError):
            return  # the read registered them already: not expected, but no cache then
        select = ctx.tables[private]
    written = _write(ctx, select, directory, plan, _sources_schema(sources))
    if written is None:
        return
    kept = [Path(p.path or "") for p in found[: plan.first]]
    try:
        register([*found[: plan.first], _cache_part(written, sources)])
    except (FormatError, NotFoundError):  # the new file is unreadable: the parts it holds
        seriescache.remove(written)
        register(found)
        return
    merged = [Path(p.path or "") for p in sources if p.cache_key is not None]
    seriescache.sweep(directory, [*kept, written], merged, SUPERSEDED_AGE_S)


def _damaged(paths: list[Path]) -> list[Path]:
    """The segments whose Parquet footer cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = []
    for path in paths:
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException):
            bad.append(path)
    return bad


@dataclass(frozen=True)
class _Plan:
    """A segment to write: the parts from `first` on (the segments it merges and the tail)
    as live versions [start, start + count), `key` the prefix key at its end."""

    first: int
    start: int
    count: int
    key: str


def _plan(found: Sequence[StoredPart]) -> _Plan | None:
    """The segment a read of all of `found` writes, when enough of its tail are inline
    versions the cache does not hold yet; None otherwise."""
    n_segments = sum(1 for p in found if p.cache_key is not None)
    segments, tail = found[:n_segments], found[n_segments:]
    if sum(1 for p in tail if p.data is not None) < seriescache.MIN_PARTS:
        return None
    key = segments[-1].cache_key if segments and segments[-1].cache_key else seriescache.START
    for part in tail:
        if part.content_hash is None:
            return None
        key = seriescache.chain(key, part.version, part.content_hash)
    # a binary counter: the newest segments merged in while each holds at most twice the
    # versions merged so far, so the chain's sizes more than double from newest to oldest
    first, count = n_segments, len(tail)
    while first > 0 and segments[first - 1].covers <= 2 * count:
        first -= 1
        count += segments[first].covers
    start = sum(p.covers for p in segments[:first])
    return _Plan(first, start, count, key)


def _cache_part(path: Path, found: Sequence[StoredPart]) -> Part:
    lows = [p.min_time for p in found]
    highs = [p.max_time for p in found]
    return Part(
        path=str(path),
        min_time=None if None in lows else min(x for x in lows if x is not None),
        max_time=None if None in highs else max(x for x in highs if x is not None),
    )


def _write(
    ctx: QueryContext, select: str, directory: Path, plan: _Plan, schema: pa.Schema | None
) -> Path | None:
    """The rows `select` gives, written as the segment `plan` says, `schema` (the versions'
    unified schema, None: unknown) recorded in it; None when it cannot be written (a
    read-only or full disk): the read goes on without it."""
    import duckdb

    tmp = seriescache.temp_path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # bounded as the read is: stopped at its time limit or memory bound, the cache
        # then not written (the read goes on without it)
        if not within_limits(ctx, lambda: _copy(ctx, select, tmp, schema)):
            seriescache.remove(tmp)
            return None
        crash_point("series_cache_before_publish")
        return seriescache.publish(tmp, plan.start, plan.count, plan.key)
    except (OSError, duckdb.Error):
        seriescache.remove(tmp)
        return None


def _copy(ctx: QueryContext, select: str, tmp: Path, schema: pa.Schema | None) -> None:
    """DuckDB's own Parquet writer (parallel, its types as its reader gives them back);
    through Arrow when the connection is already locked against writing files."""
    recorded = {} if schema is None else {SCHEMA_KEY: _encode_schema(schema)}
    if not ctx.locked:
        kv = "".join(f", KV_METADATA {{{literal(k)}: {literal(v)}}}" for k, v in recorded.items())
        ctx.con.execute(
            f"COPY ({select}) TO {literal(str(tmp))} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP}, COMPRESSION snappy{kv})"
        )
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = ctx.con.sql(select).to_arrow_reader(_ROW_GROUP)
        with pq.ParquetWriter(tmp, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch, row_group_size=_ROW_GROUP)
            if recorded:
                writer.add_key_value_metadata(recorded)
    except pa.ArrowException as e:
        raise OSError(str(e)) from e


# ---------------------------------------------------------------------------------------------
# the schema of a series: the segments' recorded schemas and the tail's footers


def series_schema(fs: NodeStore, part_id: str, node_id: str, what: str) -> pa.Schema:
    """The unified schema of the node's live versions (relations.unify_schemas over every
    version's Parquet footer), from the read cache's recorded schemas and the footers of
    the versions after them; every footer when a segment has none (written before
    segments recorded it) or cannot be read. `what` names the node in errors."""
    found = fs.series_parts(part_id, node_id, cached=True)
    schema = _recorded_and_footers(found, what)
    if schema is None:
        found = fs.series_parts(part_id, node_id)
        return unify_schemas([_footer_schema(p, what) for p in found])
    return schema


def _recorded_and_footers(parts: Sequence[StoredPart], what: str) -> pa.Schema | None:
    """The unified schema of what `parts` hold: a segment's recorded schema, a version's
    footer; None when a segment has no readable record."""
    schemas = []
    for part in parts:
        if part.cache_key is None:
            schemas.append(_footer_schema(part, what))
            continue
        recorded = _recorded_schema(Path(part.path or ""))
        if recorded is None:
            return None
        schemas.append(recorded)
    return unify_schemas(schemas)


def _footer_schema(part: StoredPart, what: str) -> pa.Schema:
    from .ingest import read_parquet_schema

    return read_parquet_schema(part.path or part.data or b"", what)


def _sources_schema(sources: Sequence[StoredPart]) -> pa.Schema | None:
    """The unified schema of the versions `sources` (segments and versions) hold, for the
    segment they are written into; None when a segment's is unknown."""
    try:
        return _recorded_and_footers(sources, "a series version")
    except (FormatError, NotFoundError):
        return None


def _encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _recorded_schema(path: Path) -> pa.Schema | None:
    """The schema a segment recorded (SCHEMA_KEY); None when it has none or is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path).metadata or {}
        value = meta.get(SCHEMA_KEY.encode())
        if value is None:
            return None
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(value, validate=True)))
    except (OSError, ValueError, pa.ArrowException):
        return None
