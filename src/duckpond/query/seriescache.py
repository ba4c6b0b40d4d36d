"""Reading a stored series through its read cache (duckpond/seriescache.py has the layout
and keys; docs/developer/query-engine.md the design).

A series of many small versions keeps each one as inline Parquet bytes in the data table;
reading it decoded every one of them on every read. The first read that finds at least
`MIN_PARTS` inline versions not in the cache writes the rows it registered as one Parquet
file in the pond's cache directory; later reads register that file by path (as a blob is
read) plus only the versions appended since. The cache is an optimisation only: a file
that cannot be written or read is dropped and the versions are read as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import seriescache
from ..crashpoints import crash_point
from ..errors import FormatError, NotFoundError
from .pondview import NodeStore, StoredPart
from .relations import Part, register_parts
from .sql import SOURCE_NAMES, QueryContext, _literal, within_limits

# rows per Parquet row group of a cache file: DuckDB's own default, so a scan runs on every
# core and the row groups' statistics prune a time window
_ROW_GROUP = 122_880


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

    def register(found: Sequence[StoredPart | Part]) -> None:
        register_parts(
            ctx,
            [Part(p.path, p.data, p.min_time, p.max_time) for p in found],
            names=names,
            time_column=time_column,
            time_start=time_start,
            time_end=time_end,
        )

    found = fs.series_parts(part_id, node_id, time_start, time_end, cached=True)
    try:
        register(found)
    except (FormatError, NotFoundError):
        if not found or found[0].cache_key is None:
            raise
        # a damaged or vanished cache file: dropped, the versions read as they are; the
        # next read writes it again (not this one: its connection may hold the damaged
        # file's bytes under the name a new file would get)
        seriescache.remove(Path(found[0].path or ""))
        register(fs.series_parts(part_id, node_id, time_start, time_end))
        return
    if time_start is not None or time_end is not None:
        return  # a window's parts are not all the versions: nothing to cache
    directory = fs.series_cache_dir(part_id, node_id)
    target = _target(found)
    if directory is None or target is None:
        return
    written = _write(ctx, ctx.tables[names[0]], directory, *target)
    if written is None:
        return
    try:
        register([_cache_part(written, found)])
    except (FormatError, NotFoundError):  # the new file is unreadable: the parts it holds
        seriescache.remove(written)
        register(found)


def _target(found: Sequence[StoredPart]) -> tuple[int, str] | None:
    """(count, key) of a cache holding every part of `found`, when enough of them are
    inline versions the cache does not hold yet; None otherwise."""
    cached = found[0] if found and found[0].cache_key is not None else None
    tail = found[1:] if cached is not None else found
    if sum(1 for p in tail if p.data is not None) < seriescache.MIN_PARTS:
        return None
    key = cached.cache_key if cached is not None and cached.cache_key else seriescache.START
    count = cached.covers if cached is not None else 0
    for part in tail:
        if part.content_hash is None:
            return None
        key = seriescache.chain(key, part.version, part.content_hash)
        count += 1
    return count, key


def _cache_part(path: Path, found: Sequence[StoredPart]) -> Part:
    lows = [p.min_time for p in found]
    highs = [p.max_time for p in found]
    return Part(
        path=str(path),
        min_time=None if None in lows else min(x for x in lows if x is not None),
        max_time=None if None in highs else max(x for x in highs if x is not None),
    )


def _write(ctx: QueryContext, select: str, directory: Path, count: int, key: str) -> Path | None:
    """The rows `select` gives, written as the cache file of (count, key); None when it
    cannot be written (a read-only or full disk): the read goes on without it."""
    import duckdb

    tmp = seriescache.temp_path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # bounded as the read is: stopped at its time limit or memory bound, the cache
        # then not written (the read goes on without it)
        if not within_limits(ctx, lambda: _copy(ctx, select, tmp)):
            seriescache.remove(tmp)
            return None
        crash_point("series_cache_before_publish")
        return seriescache.publish(tmp, count, key)
    except (OSError, duckdb.Error):
        seriescache.remove(tmp)
        return None


def _copy(ctx: QueryContext, select: str, tmp: Path) -> None:
    """DuckDB's own Parquet writer (parallel, its types as its reader gives them back);
    through Arrow when the connection is already locked against writing files."""
    if not ctx.locked:
        ctx.con.execute(
            f"COPY ({select}) TO {_literal(str(tmp))} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP}, COMPRESSION snappy)"
        )
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = ctx.con.sql(select).to_arrow_reader(_ROW_GROUP)
        with pq.ParquetWriter(tmp, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch, row_group_size=_ROW_GROUP)
    except pa.ArrowException as e:
        raise OSError(str(e)) from e
