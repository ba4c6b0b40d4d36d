"""The filesystem view over the data table: paths resolved to nodes (the one path walk,
symbolic links followed), directory listings, walks and globs over the latest committed
state. A write transaction's view (storage/staging.py) walks paths the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import nodes, paths, seriescache
from ..errors import InvalidPathError, NotFoundError, PondError
from ..nodes import ROOT_ID, NodeRow
from ..seriesview import Bounds
from . import applog
from .blobs import BlobStore
from .direntries import DirEntries, Entry
from .dirstate import DirState, dir_part, read_dir_state
from .seriesparts import (
    SeriesPart,
    VersionColumns,
    live_versions,
    series_bounds,
    series_parts,
    version_columns,
    version_parts,
)

if TYPE_CHECKING:
    from .datatable import DataTable

MAX_SYMLINK_DEPTH = 32
# the index columns of a version listing (VersionColumns), beside version and attributes
_TAIL_COLUMNS = ["txn_seq", "content_hash", "min_event_time", "max_event_time"]


@dataclass(frozen=True)
class Located:
    """A resolved path: the node, the partition holding its rows, and its latest row."""

    path: str
    node_id: str
    part_id: str
    file_type: str
    row: NodeRow


class _Tree(Protocol):
    """What the path walk needs: the committed pond (PondFS) or a transaction's view."""

    def root(self) -> Located: ...
    def entries_of(self, loc: Located) -> DirEntries: ...
    def latest(self, part_id: str, node_id: str) -> NodeRow | None: ...
    def content(self, row: NodeRow) -> bytes: ...


def resolve(tree: _Tree, path: str, follow: bool, depth: int = 0) -> Located | None:
    """The one path walk: None when the path (or a parent) does not exist.

    Symbolic links are followed in every part but the last, and in the last when `follow`;
    a relative target is resolved against the link's directory."""
    if depth > MAX_SYMLINK_DEPTH:
        raise InvalidPathError(f"too many levels of symbolic links: {path}")
    cur = tree.root()
    parts = paths.split(paths.normalize(path))
    walked = "/"
    for i, name in enumerate(parts):
        if not nodes.is_dir(cur.file_type):
            raise NotFoundError(f"not a directory: {walked}")
        entry = tree.entries_of(cur).get(name)
        if entry is None:
            return None
        walked = paths.join(walked, name)
        loc = locate(tree, cur, entry, walked)
        last = i == len(parts) - 1
        if loc.file_type == nodes.SYMLINK and (follow or not last):
            target = tree.content(loc.row).decode()
            if not target.startswith("/"):
                target = paths.join(paths.parent(walked), target)
            return resolve(tree, paths.join(target, *parts[i + 1 :]), follow, depth + 1)
        cur = loc
    return cur


def locate(tree: _Tree, parent: Located, entry: Entry, path: str) -> Located:
    part = dir_part(entry.node_id) if nodes.is_dir(entry.file_type) else parent.node_id
    row = tree.latest(part, entry.node_id)
    if row is None:
        raise PondError(f"entry {path} has no rows (damaged pond)")
    return Located(path, entry.node_id, part, row.file_type, row)


class PondFS:
    """Read-only view of the latest committed state."""

    def __init__(self, table: DataTable, blobs: BlobStore) -> None:
        self.table = table
        self.blobs = blobs

    # -- rows ------------------------------------------------------------------------------
    def versions(self, part_id: str, node_id: str) -> list[NodeRow]:
        return self.table.partition_index(part_id).versions(node_id)

    def latest(self, part_id: str, node_id: str) -> NodeRow | None:
        return self.table.partition_index(part_id).latest(node_id)

    def series_parts(
        self,
        part_id: str,
        node_id: str,
        start: int | None = None,
        end: int | None = None,
        cached: bool = False,
    ) -> list[SeriesPart]:
        """Where the node's versions with event times in [start, end] are, in one batched
        lookup (storage/seriesparts.py); `cached`: a read cache file may stand for the
        first ones (seriescache.py)."""
        cache = self.series_cache_dir(part_id, node_id) if cached else None
        return series_parts(self.table, self.blobs, part_id, node_id, start, end, cache)

    def series_cache_dir(self, part_id: str, node_id: str) -> Path | None:
        """Where the node's series read cache files go (seriescache.py), None when this
        view cannot have one."""
        return seriescache.node_dir(self.blobs.root.parent, part_id, node_id)

    def series_live_versions(self, part_id: str, node_id: str) -> list[tuple[int, str | None]]:
        """(version, content hash) of the node's live versions, oldest first."""
        return live_versions(self.table, part_id, node_id)

    def version_columns(self, part_id: str, node_id: str) -> VersionColumns:
        """Every stored version of the node, oldest first, from the index alone (no content
        read): storage/seriesparts.py."""
        return version_columns(self.table, part_id, node_id)

    def version_tail(self, part_id: str, node_id: str, first: int) -> tuple[int, VersionColumns]:
        """How many versions the node has, and those from the `first`th (0-based, oldest
        first) on: the work is in proportion to the tail, not the history (a sealed
        reduction checks the versions appended since its seal; issue 21 bench 26a)."""
        if first <= 0:
            listed = self.version_columns(part_id, node_id)
            return len(listed.version), listed
        index = self.table.partition_index(part_id)
        found = index.node_versions(node_id)
        tail = found[first:]
        txns, hashes, lows, highs = index.columns_at([pos for _, pos, _ in tail], _TAIL_COLUMNS)
        parsed: dict[str, dict[str, Any]] = {}  # appends mostly share one attribute text
        attrs: list[dict[str, Any]] = []
        for _, _, text in tail:
            if not text:
                attrs.append({})
                continue
            if text not in parsed:
                parsed[text] = json.loads(text)
            attrs.append(parsed[text])
        return len(found), VersionColumns([v for v, _, _ in tail], txns, hashes, lows, highs, attrs)

    def version_parts(self, part_id: str, node_id: str, versions: list[int]) -> list[SeriesPart]:
        """The parts of the node's versions numbered `versions` (seriesparts.version_parts)."""
        return version_parts(self.table, self.blobs, part_id, node_id, versions)

    def series_bounds(self, part_id: str, node_id: str) -> Bounds:
        """The series' temporal bounds (set-temporal-bounds), from the index alone."""
        return series_bounds(self.table, part_id, node_id)

    def content(self, row: NodeRow) -> bytes:
        # An appended log reads as its versions concatenated (storage/applog.py).
        if applog.is_log(row):
            return applog.concat(self, row)
        return self.row_bytes(row)

    def row_bytes(self, row: NodeRow) -> bytes:
        """The bytes stored in this one row."""
        if row.content is not None:
            return row.content
        if row.content_hash is None:
            return b""
        return self.blobs.read(row.content_hash)

    def blob_path(self, row: NodeRow) -> str | None:
        if row.in_blob:
            return str(self.blobs.path_for(row.content_hash or ""))
        return None

    def dir_state(self, dir_id: str) -> DirState:
        """The directory's entries at its latest version (dirstate.read_dir_state)."""
        return read_dir_state(self.table, self.blobs, dir_id)

    def dir_entries(self, dir_id: str) -> DirEntries:
        return self.dir_state(dir_id).entries

    def root(self) -> Located:
        row = self.latest(ROOT_ID, ROOT_ID)
        if row is None:
            raise PondError("the pond has no root directory (damaged pond)")
        return Located("/", ROOT_ID, ROOT_ID, row.file_type, row)

    # -- paths -----------------------------------------------------------------------------
    def lookup(self, path: str, follow: bool = True) -> Located | None:
        """Resolve an absolute path; None when it (or a parent) does not exist."""
        return resolve(self, path, follow)

    def entries_of(self, loc: Located) -> DirEntries:
        if loc.file_type == nodes.DIR_DYNAMIC:
            return DirEntries()  # dynamic directories are expanded by the factory layer
        return self.dir_entries(loc.node_id)

    def require(self, path: str, follow: bool = True) -> Located:
        loc = self.lookup(path, follow)
        if loc is None:
            raise NotFoundError(f"no such file or directory: {paths.normalize(path)}")
        return loc

    def children(self, loc: Located) -> Iterator[Located]:
        entries = list(self.entries_of(loc).columns())
        # Files live in this directory's partition: one pass gives all their latest rows.
        files = self.table.partition_index(loc.node_id).latest_rows() if len(entries) > 8 else {}
        # loc.path is normalized and stored names are single valid names: no paths.join
        prefix = "/" if loc.path == "/" else loc.path + "/"
        for name, node_id, file_type in entries:
            path = prefix + name
            row = files.get(node_id)
            if row is None:
                yield locate(self, loc, Entry(name, node_id, file_type), path)
            else:
                yield Located(path, node_id, loc.node_id, row.file_type, row)

    def walk(self, loc: Located) -> Iterator[Located]:
        """loc and everything below it, depth first, sorted by name."""
        yield loc
        if nodes.is_dir(loc.file_type):
            for child in self.children(loc):
                yield from self.walk(child)

    def glob(self, pattern: str) -> list[Located]:
        pat = paths.compile_glob(pattern)
        start = self.lookup(pat.literal_prefix, follow=True)
        if start is None:
            return []
        if not paths.has_glob(pattern):
            start_loc = self.lookup(paths.normalize(pattern), follow=False)
            if pattern.endswith("/") and start_loc and nodes.is_dir(start_loc.file_type):
                return list(self.children(start_loc))
            return [start_loc] if start_loc else []
        out: list[Located] = []
        self._glob_walk(pat, start, pat.states_of(start.path), out)
        return out

    def _glob_walk(
        self, pat: paths.GlobPattern, loc: Located, states: set[int], out: list[Located]
    ) -> None:
        """walk(), matching as it goes and not descending where nothing can match."""
        if pat.accepts(states):
            out.append(loc)
        if not nodes.is_dir(loc.file_type):
            return
        for child in self.children(loc):
            after = pat.step(states, paths.basename(child.path))
            if after:
                self._glob_walk(pat, child, after, out)
