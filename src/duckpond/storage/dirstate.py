"""A directory's state: its entry set at its latest version, rebuilt from the partition
holding its rows (the latest snapshot with the later deltas folded on top) and cached per
data table handle, moved forward by the deltas a later version adds.

A directory's rows live in the partition named by its own id; a file's rows live in the
partition of the directory that owns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import PondError
from .direntries import DELTA_ATTRS_JSON, DELTA_PARTIAL, DeltaChanges, DirEntries, decode_snapshot

if TYPE_CHECKING:
    from .blobs import BlobStore
    from .datatable import DataTable

# Directory entry sets kept per DataTable (least recently used dropped first), and the
# entries they hold in all: a long-lived process that visits many big directories keeps the
# most recent one whatever its size, not all of them (a 100,000-entry set with its name
# dict is ~15 MB).
DIR_CACHE_MAX = 64
DIR_CACHE_ENTRIES = 250_000


def dir_part(node_id: str) -> str:
    """The partition holding a directory's own rows: the one named by its id."""
    return node_id


@dataclass
class DirState:
    """A directory's entry set as of its latest version `version`."""

    version: int
    entries: DirEntries
    deltas: int  # delta versions folded on top of the snapshot
    index: object = None  # the partition index it was read from (same index: still valid)


def _entry_count(state: DirState) -> int:
    """Entries a cached directory state holds (snapshot rows plus changes on top; stored
    deltas counted by their bound, which decodes nothing)."""
    return state.entries.base.num_rows + state.entries.changed_bound


def read_dir_state(table: DataTable, blobs: BlobStore, dir_id: str) -> DirState:
    """The directory's entries at its latest version: the cached state moved forward
    by the deltas since, or the latest snapshot with the deltas after it folded in."""
    index = table.partition_index(dir_part(dir_id))
    cache = table.derived
    cached = cache.get(dir_id)
    if isinstance(cached, DirState) and cached.index is index:
        cache.move_to_end(dir_id)  # in use: the size bound drops others first
        return cached  # the partition has not changed since
    # its rows from the latest snapshot on (a fresh process reads no older files)
    found = index.node_tail(dir_id, DELTA_PARTIAL)
    if not found:
        raise PondError(f"directory {dir_id} has no rows (damaged pond)")
    latest = found[-1][0]
    if isinstance(cached, DirState) and cached.version == latest:
        cached.index = index
        cache.move_to_end(dir_id)
        return cached
    if found[0][2] == DELTA_ATTRS_JSON:
        raise PondError(f"directory {dir_id} has no snapshot (damaged pond)")
    base_version = found[0][0]
    state: DirState
    if isinstance(cached, DirState) and cached.version >= base_version:
        state, start = cached, cached.version + 1
    else:
        state, start = DirState(0, DirEntries(), 0), base_version
    todo = [f for f in found if f[0] >= start]
    for (version, _, attrs), (content, blob) in zip(todo, index.contents(todo), strict=True):
        if content is None:
            content = blobs.read(blob) if blob is not None else b""
        if attrs == DELTA_ATTRS_JSON:
            entries = state.entries.with_layer(DeltaChanges(content))
            state = DirState(version, entries, state.deltas + 1)
        else:
            state = DirState(version, DirEntries(decode_snapshot(content)), 0)
    state.index = index
    cache[dir_id] = state
    cache.move_to_end(dir_id)
    held = sum(_entry_count(s) for s in cache.values() if isinstance(s, DirState))
    while len(cache) > DIR_CACHE_MAX or (len(cache) > 1 and held > DIR_CACHE_ENTRIES):
        _, old = cache.popitem(last=False)
        held -= _entry_count(old) if isinstance(old, DirState) else 0
    return state
