"""Where a series' versions are, for a read: one batched lookup for all of them.

A read of a series hands the query engine one Parquet object per version: the blob store's
file, or the inline bytes kept in the data table's `content` column. Finding them one row
at a time built a NodeRow per version and read each one's content (its row group, through
the bounded cache) only to learn whether it was a blob, also for the versions a time window
then skipped unopened. Here the index columns the read needs are picked for all versions
at once, the window is applied on the recorded event-time ranges first, and only the kept
versions' contents are read, each row group once (issue 19: a 1,000-version series spent
more time finding its parts than reading them).
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import seriescache, seriesview

if TYPE_CHECKING:
    from pathlib import Path

    from ..nodes import NodeRow
    from .blobs import BlobStore
    from .datatable import DataTable
    from .partindex import PartIndex

# The index columns a part needs (contents are read apart, for the kept versions only).
_PART_COLUMNS = ["version", "content_hash", "min_event_time", "max_event_time"]


@dataclass(frozen=True)
class SeriesPart:
    """One version's Parquet object: a blob store file (`path`) or inline bytes (`data`),
    with the event-time range of its rows (µs UTC; None: unknown, never pruned). A series
    read cache segment (seriescache.py) stands for `covers` live versions, following the
    segments before it: its `cache_key` is the prefix key at its end, `version` its last
    version."""

    version: int
    path: str | None
    data: bytes | None
    min_time: int | None
    max_time: int | None
    content_hash: str | None = None
    covers: int = 1
    cache_key: str | None = None


@dataclass(frozen=True)
class _Mark:
    """A version as the index lists it: enough for seriesview's rules."""

    version: int
    extended_attributes: dict[str, Any]


# The marks of the last few series listed, with the index's list they were made from: one
# read asks for a series' bounds, parts and versions in turn (temporal-reduce: all three),
# each a pass over every version. The index replaces a node's list when the node changes
# (partindex.py), so the same list object means the same versions at the same positions.
_MARKS_MEMO: OrderedDict[tuple[str, str], tuple[object, list[tuple[_Mark, int]]]] = OrderedDict()
_MARKS_MEMO_MAX = 8


def _marks(table: DataTable, part_id: str, node_id: str) -> list[tuple[_Mark, int]]:
    """(version, attributes) and position of each of the node's versions, oldest first."""
    found = table.partition_index(part_id).node_versions(node_id)
    key = (part_id, node_id)
    memo = _MARKS_MEMO.get(key)
    if memo is not None and memo[0] is found:
        _MARKS_MEMO.move_to_end(key)
        return memo[1]
    out = []
    # a series' versions mostly carry the same attributes: each distinct text parsed once
    # (the dicts are shared between marks, and only read)
    parsed: dict[str, dict[str, Any]] = {}
    for version, pos, attrs in found:
        if isinstance(attrs, str) and attrs:
            value = parsed.get(attrs)
            if value is None:
                value = parsed[attrs] = json.loads(attrs)
        else:
            value = attrs or {}
        out.append((_Mark(version, value), pos))
    _MARKS_MEMO[key] = (found, out)
    while len(_MARKS_MEMO) > _MARKS_MEMO_MAX:
        _MARKS_MEMO.popitem(last=False)
    return out


@dataclass(frozen=True)
class VersionColumns:
    """Every stored version of a series as the index lists it, column by column, oldest
    first (no content read)."""

    version: list[int]
    txn_seq: list[int]
    content_hash: list[str | None]
    min_time: list[int | None]
    max_time: list[int | None]
    attributes: list[dict[str, Any]]


_VERSION_COLUMNS = ["txn_seq", "content_hash", "min_event_time", "max_event_time"]


def version_columns(table: DataTable, part_id: str, node_id: str) -> VersionColumns:
    """Every stored version of the node, live or not, from the index columns alone: what a
    reader checking "only appends since" needs (temporal-reduce's sealed buckets), without
    a NodeRow per version, which reads its content (issue 21: listing 1,000 versions that
    way cost more than the read it guarded)."""
    index = table.partition_index(part_id)
    marks = _marks(table, part_id, node_id)
    txns, hashes, lows, highs = index.columns_at([pos for _, pos in marks], _VERSION_COLUMNS)
    return VersionColumns(
        [m.version for m, _ in marks],
        txns,
        hashes,
        lows,
        highs,
        [m.extended_attributes for m, _ in marks],
    )


def series_bounds(table: DataTable, part_id: str, node_id: str) -> seriesview.Bounds:
    """The series' temporal bounds (seriesview), from the index alone."""
    return seriesview.bounds([m for m, _ in _marks(table, part_id, node_id)])


def overlaps(lo: int | None, hi: int | None, start: int | None, end: int | None) -> bool:
    """Whether rows in [lo, hi] can fall in [start, end] (None: unbounded or unknown)."""
    if start is not None and hi is not None and hi < start:
        return False
    return not (end is not None and lo is not None and lo > end)


def series_parts(
    table: DataTable,
    blobs: BlobStore,
    part_id: str,
    node_id: str,
    start: int | None = None,
    end: int | None = None,
    cache_dir: Path | None = None,
) -> list[SeriesPart]:
    """The parts of the node's live versions (seriesview) whose event times can fall in
    [start, end], oldest first. When none can, the newest version alone (a reader takes
    the schema of an empty result from it; its range still excludes it from any scan).

    With `cache_dir` (seriescache.node_dir), the read cache's segments holding the longest
    prefix of the live versions stand for them (each one when the window keeps every
    version up to its end): their contents are not read."""
    index = table.partition_index(part_id)
    marks = _marks(table, part_id, node_id)
    # the live versions only: collapsed, reverted and bounds-only versions are not read
    live = {m.version for m in seriesview.live_rows([m for m, _ in marks])}
    positions = [pos for m, pos in marks if m.version in live]
    versions, hashes, lows, highs = index.columns_at(positions, _PART_COLUMNS)
    keep = [i for i in range(len(positions)) if overlaps(lows[i], highs[i], start, end)]
    if not keep and positions:
        keep = [len(positions) - 1]
    segments: list[seriescache.Entry] = []
    if cache_dir is not None and len(keep) >= seriescache.MIN_PARTS:
        chain = seriescache.lookup(cache_dir, list(zip(versions, hashes, strict=True)))
        # a segment is exact only when the window would have kept every version it holds:
        # the chain up to the first one it does not (`keep` ascends without repeats, so
        # it holds 0 .. end - 1 when its entry end - 1 is end - 1)
        for seg in chain:
            if len(keep) < seg.end or keep[seg.end - 1] != seg.end - 1:
                break
            segments.append(seg)
    covered = segments[-1].end if segments else 0
    contents = _contents(table, index, {i: positions[i] for i in keep[covered:]})
    out = []
    for seg in segments:
        lo, hi = lows[seg.start : seg.end], highs[seg.start : seg.end]
        out.append(
            SeriesPart(
                versions[seg.end - 1],
                str(seg.path),
                None,
                None if None in lo else min(x for x in lo if x is not None),
                None if None in hi else max(x for x in hi if x is not None),
                None,
                seg.count,
                seg.key,
            )
        )
    for i in keep[covered:]:
        data, digest = contents[i], hashes[i]
        path = str(blobs.path_for(digest)) if data is None and digest is not None else None
        out.append(SeriesPart(versions[i], path, data, lows[i], highs[i], digest))
    return out


def _contents(
    table: DataTable, index: PartIndex, positions: dict[int, int]
) -> dict[int, bytes | None]:
    """The inline content (None: in the blob store) at each index position, keyed as
    given: file by file, each file's rows in one pass."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for key, pos in positions.items():
        rel, row = index.file_row(pos)
        by_file.setdefault(rel, []).append((key, row))
    contents: dict[int, bytes | None] = {}
    for rel, rows in by_file.items():
        values = table.contents_at(rel, [row for _, row in rows])
        contents.update(zip([key for key, _ in rows], values, strict=True))
    return contents


def version_parts(
    table: DataTable, blobs: BlobStore, part_id: str, node_id: str, versions: list[int]
) -> list[SeriesPart]:
    """The parts of the node's versions numbered `versions`, in that order (those not
    stored are left out), each found by bisection: in proportion to how many are asked
    for, not to the history (a sealed reduction's open buckets)."""
    index = table.partition_index(part_id)
    found = index.node_versions(node_id)
    positions = []
    for v in versions:
        i = bisect.bisect_left(found, (v,))
        if i < len(found) and found[i][0] == v:
            positions.append(found[i][1])
    numbers, hashes, lows, highs = index.columns_at(positions, _PART_COLUMNS)
    contents = _contents(table, index, dict(enumerate(positions)))
    out = []
    for i in range(len(positions)):
        data, digest = contents[i], hashes[i]
        path = str(blobs.path_for(digest)) if data is None and digest is not None else None
        out.append(SeriesPart(numbers[i], path, data, lows[i], highs[i], digest))
    return out


def live_versions(table: DataTable, part_id: str, node_id: str) -> list[tuple[int, str | None]]:
    """(version, content hash) of the node's live versions, oldest first, from the index
    alone: what a series read cache's key is made of (seriescache.py)."""
    index = table.partition_index(part_id)
    marks = _marks(table, part_id, node_id)
    live = {m.version for m in seriesview.live_rows([m for m, _ in marks])}
    positions = [pos for m, pos in marks if m.version in live]
    versions, hashes = index.columns_at(positions, ["version", "content_hash"])
    return list(zip(versions, hashes, strict=True))


def row_parts(
    blobs: BlobStore, rows: list[NodeRow], start: int | None = None, end: int | None = None
) -> list[SeriesPart]:
    """The same from rows in hand, oldest first (a write transaction's view, whose newest
    row is staged, not in the table yet)."""
    rows = seriesview.live_rows(rows)
    keep = [r for r in rows if overlaps(r.min_event_time, r.max_event_time, start, end)]
    out = []
    for r in keep or rows[-1:]:
        path = str(blobs.path_for(r.content_hash or "")) if r.in_blob else None
        data = r.content if path is None else None
        out.append(
            SeriesPart(r.version, path, data, r.min_event_time, r.max_event_time, r.content_hash)
        )
    return out
