"""The filesystem view over the data table, and the staging area of one write transaction.

A directory's rows live in the partition named by its own id; a file's rows live in the
partition of the directory that owns it.

A directory version records what changed: a *delta* (JSON `{"changes": [[name, node_id,
type], [name, null, null] (removed), ...]}`, marked by `extended_attributes`
`{"dir": "delta"}`) or, every so often, a full *snapshot* (an Arrow IPC stream of
name/node_id/file_type sorted by name; ponds written before deltas hold JSON
`{"entries": [...]}` snapshots, still read). The entry set is the latest snapshot with the
later deltas folded on top. A write stores only its changes, so its cost does not grow with
the directory; a snapshot is taken once the deltas since the last one reach 1/64 of the
directory (at least 64), which bounds both the fold and the snapshot bytes per write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from .. import nodes, paths
from ..errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondError
from ..nodes import ROOT_ID, NodeRow
from . import applog
from .blobs import BlobStore
from .datatable import DataTable, use_compute

MAX_SYMLINK_DEPTH = 32

# A snapshot once the deltas since the last one reach max(MIN, entries // RATIO).
SNAPSHOT_MIN_DELTAS = 64
SNAPSHOT_RATIO = 64
# Directory entry sets kept per DataTable (least recently used dropped first), and the
# entries they hold in all: a long-lived process that visits many big directories keeps the
# most recent one whatever its size, not all of them (a 100,000-entry set with its name
# dict is ~15 MB).
DIR_CACHE_MAX = 64
DIR_CACHE_ENTRIES = 250_000
# Up to this many entries a directory's entry set is merged in Python, not with
# pyarrow.compute (whose import costs ~50 ms of a `pond` process's start-up).
SMALL_DIR_ENTRIES = 2048

DELTA_ATTRS = {"dir": "delta"}
_DELTA_ATTRS_JSON = json.dumps(DELTA_ATTRS, sort_keys=True)  # as the data table stores it
_DELTA_PARTIAL: frozenset[str | None] = frozenset([_DELTA_ATTRS_JSON])  # not a snapshot

SNAPSHOT_SCHEMA = pa.schema(
    [("name", pa.string()), ("node_id", pa.string()), ("file_type", pa.string())]
)


@dataclass(frozen=True)
class Entry:
    name: str
    node_id: str
    file_type: str


@dataclass(frozen=True)
class Located:
    """A resolved path: the node, the partition holding its rows, and its latest row."""

    path: str
    node_id: str
    part_id: str
    file_type: str
    row: NodeRow


Changes = dict[str, Entry | None]  # name -> new entry, or None when removed


class DeltaChanges(Mapping[str, "Entry | None"]):
    """One stored delta's changes, decoded on first need: looking up a name its bytes do
    not hold (every new name a write adds) decodes nothing, so a fresh process writing
    into a big directory does not turn the deltas since its snapshot into objects. A
    long-lived reader decodes after a few lookups (each searches the whole text)."""

    __slots__ = ("raw", "_changes", "_escaped", "_probes")
    DECODE_AFTER = 8

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._changes: Changes | None = None
        self._escaped: bool | None = None  # whether the JSON text holds any escape
        self._probes = 0

    def decoded(self) -> Changes:
        if self._changes is None:
            self._changes = decode_delta(self.raw)
        return self._changes

    def __contains__(self, name: object) -> bool:
        if self._changes is None and isinstance(name, str):
            self._probes += 1
            if self._probes <= self.DECODE_AFTER and not self._may_hold(name):
                return False
        return name in self.decoded()

    def __getitem__(self, name: str) -> Entry | None:
        return self.decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def bound(self) -> int:
        """At least len(self), without decoding: items are separated by `],[` (a name
        holding those characters only makes it larger)."""
        if self._changes is not None:
            return len(self._changes)
        return self.raw.count(b"],[") + 1 if b"[[" in self.raw else 0

    def _may_hold(self, name: str) -> bool:
        """Whether the JSON may name `name`. encode_delta spells a plain ASCII name as
        itself in quotes, and JSON can spell it otherwise only with escapes (a backslash):
        without one in the text, a quoted occurrence is the only way it can be there."""
        if not name.isascii() or not name.isprintable() or '"' in name or "\\" in name:
            return True
        if self._escaped is None:
            self._escaped = b"\\" in self.raw
        return self._escaped or b'"' + name.encode() + b'"' in self.raw


class DirEntries:
    """A directory's entry set: a snapshot (Arrow, sorted by name) under layers of changes.

    Lookups never decode the whole directory: the layers are dicts (a stored delta decoded
    only when a name may be in it), the snapshot is binary-searched.
    """

    def __init__(
        self,
        base: pa.Table | None = None,
        layers: tuple[Mapping[str, Entry | None], ...] = (),
        _lookup: _BaseLookup | None = None,
    ) -> None:
        self.base = base if base is not None else SNAPSHOT_SCHEMA.empty_table()
        self._lookup = _lookup or _BaseLookup(self.base)
        self.layers = layers  # newest first

    def with_layer(self, changes: Mapping[str, Entry | None]) -> DirEntries:
        if not isinstance(changes, DeltaChanges) and not changes:  # (len() would decode)
            return self
        return DirEntries(self.base, (changes, *self.layers), self._lookup)

    def get(self, name: str) -> Entry | None:
        for layer in self.layers:
            if isinstance(layer, DeltaChanges) and layer._changes is not None:
                layer = layer._changes  # decoded: a dict lookup (a long-lived reader's layers)
            if name in layer:
                return layer[name]
        return self._lookup.get(name)

    def changes(self) -> Changes:
        """Every layer merged, oldest first."""
        merged: Changes = {}
        for layer in reversed(self.layers):
            merged.update(layer)
        return merged

    @property
    def changed_count(self) -> int:
        return sum(len(layer) for layer in self.layers)

    @property
    def changed_bound(self) -> int:
        """At least changed_count, without decoding stored deltas."""
        return sum(
            layer.bound() if isinstance(layer, DeltaChanges) else len(layer)
            for layer in self.layers
        )

    def snapshot(self) -> pa.Table:
        """The whole entry set as a snapshot table (vectorized: no object per entry)."""
        changes = self.changes()
        if not changes:
            return self.base
        if not use_compute(self.base.num_rows, SMALL_DIR_ENTRIES):
            return self._small_snapshot(changes)
        import pyarrow.compute as pc  # ~50 ms to import: only for big directories

        keep = self.base.filter(
            pc.invert(pc.is_in(self.base["name"], value_set=pa.array(list(changes), pa.string())))
        )
        added = [e for e in changes.values() if e is not None]
        extra = pa.table(
            {
                "name": [e.name for e in added],
                "node_id": [e.node_id for e in added],
                "file_type": [e.file_type for e in added],
            },
            schema=SNAPSHOT_SCHEMA,
        )
        return pa.concat_tables([keep, extra]).sort_by("name").combine_chunks()

    def _small_snapshot(self, changes: Changes) -> pa.Table:
        """snapshot() in Python: a process that lists or writes a small directory (or a
        big one before anything loaded pyarrow.compute) never imports pyarrow.compute."""
        rows = self._merged(changes)
        names, ids, types = zip(*rows, strict=True) if rows else ((), (), ())
        return pa.table(
            {"name": list(names), "node_id": list(ids), "file_type": list(types)},
            schema=SNAPSHOT_SCHEMA,
        )

    def _merged(self, changes: Changes) -> list[tuple[str, str, str]]:
        """The base's entries with the changes applied, sorted by name, in Python."""
        base = self.base
        rows = [
            row
            for row in zip(
                base["name"].to_pylist(),
                base["node_id"].to_pylist(),
                base["file_type"].to_pylist(),
                strict=True,
            )
            if row[0] not in changes
        ]
        rows += [(e.name, e.node_id, e.file_type) for e in changes.values() if e is not None]
        rows.sort()  # names are unique: by name; nearly sorted already, so nearly linear
        return rows

    def entries(self) -> list[Entry]:
        """Every entry, sorted by name."""
        return [Entry(n, i, f) for n, i, f in self.columns()]

    def columns(self) -> Iterator[tuple[str, str, str]]:
        """(name, node_id, file_type) of every entry, sorted by name, without an object
        per entry (listing a big directory)."""
        changes = self.changes()
        if changes and not use_compute(self.base.num_rows, SMALL_DIR_ENTRIES):
            return iter(self._merged(changes))
        t = self.snapshot()
        return zip(
            t["name"].to_pylist(),
            t["node_id"].to_pylist(),
            t["file_type"].to_pylist(),
            strict=True,
        )

    def __len__(self) -> int:
        return self.snapshot().num_rows


class _BaseLookup:
    """Names of a snapshot: binary search over the Arrow column for the first lookups (a
    process that writes one file never turns the snapshot into Python objects), a dict
    once a process looks up many."""

    DICT_AFTER = 32

    def __init__(self, base: pa.Table) -> None:
        self.base = base
        self.names = base.column("name").combine_chunks()
        self.lookups = 0
        self.by_name: dict[str, int] | None = None

    def get(self, name: str) -> Entry | None:
        self.lookups += 1
        if self.by_name is None and self.lookups > self.DICT_AFTER:
            self.by_name = {n: i for i, n in enumerate(self.names.to_pylist())}
        if self.by_name is not None:
            i = self.by_name.get(name, -1)
        else:
            lo, hi = 0, len(self.names)
            while lo < hi:
                mid = (lo + hi) // 2
                if self.names[mid].as_py() < name:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo if lo < len(self.names) and self.names[lo].as_py() == name else -1
        if i < 0:
            return None
        return Entry(name, self.base["node_id"][i].as_py(), self.base["file_type"][i].as_py())


def encode_snapshot(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SNAPSHOT_SCHEMA) as writer:
        same = table.schema.equals(SNAPSHOT_SCHEMA)  # cast imports pyarrow.compute
        writer.write_table(table if same else table.cast(SNAPSHOT_SCHEMA))
    return sink.getvalue().to_pybytes()


def encode_delta(changes: Changes) -> bytes:
    items = [
        [name, e.node_id, e.file_type] if e is not None else [name, None, None]
        for name, e in sorted(changes.items())
    ]
    return json.dumps({"changes": items}, separators=(",", ":")).encode()


def decode_snapshot(content: bytes) -> pa.Table:
    """A full snapshot, in either form (Arrow IPC, or the JSON of older ponds)."""
    if content[:1] == b"{":
        items = json.loads(content)["entries"]
        cols = list(zip(*items, strict=True)) if items else [(), (), ()]
        table = pa.table(
            {"name": list(cols[0]), "node_id": list(cols[1]), "file_type": list(cols[2])},
            schema=SNAPSHOT_SCHEMA,
        )
        return table.sort_by("name")
    return pa.ipc.open_stream(pa.py_buffer(content)).read_all().combine_chunks()


def decode_delta(content: bytes) -> Changes:
    return {
        n: Entry(n, i, t) if i is not None else None for n, i, t in json.loads(content)["changes"]
    }


def decode_dir(content: bytes) -> dict[str, Entry]:
    """A full snapshot as a dict (tools and tests; the pond itself never decodes whole)."""
    return {e.name: e for e in DirEntries(decode_snapshot(content)).entries()}


def dir_part(node_id: str) -> str:
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

    def content(self, row: NodeRow) -> bytes:
        # An appended log reads as its versions concatenated (storage/applog.py).
        if row.extended_attributes.get(applog.MARK_KEY) == applog.MARK:
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
        """The directory's entries at its latest version: the cached state moved forward
        by the deltas since, or the latest snapshot with the deltas after it folded in."""
        index = self.table.partition_index(dir_part(dir_id))
        cache = self.table.derived
        cached = cache.get(dir_id)
        if isinstance(cached, DirState) and cached.index is index:
            cache.move_to_end(dir_id)  # in use: the size bound drops others first
            return cached  # the partition has not changed since
        # its rows from the latest snapshot on (a fresh process reads no older files)
        found = index.node_tail(dir_id, _DELTA_PARTIAL)
        if not found:
            raise PondError(f"directory {dir_id} has no rows (damaged pond)")
        latest = found[-1][0]
        if isinstance(cached, DirState) and cached.version == latest:
            cached.index = index
            cache.move_to_end(dir_id)
            return cached
        if found[0][2] == _DELTA_ATTRS_JSON:
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
                content = self.blobs.read(blob) if blob is not None else b""
            if attrs == _DELTA_ATTRS_JSON:
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


class StagedTxn:
    """The changes of one write transaction, staged in memory until commit.

    Each node gets at most one new version per transaction; each directory whose entries
    change gets one new version recording those changes. Large contents are written to the
    blob store (synced) as they are staged. Paths resolve with the same walk as PondFS,
    over the committed state with this transaction's changes on top.
    """

    def __init__(self, fs: PondFS, txn_seq: int) -> None:
        self.fs = fs
        self.txn_seq = txn_seq
        self.now = nodes.now_us()
        self._staged: dict[str, NodeRow] = {}  # node_id -> new row
        self._dirs: dict[str, Changes] = {}  # dir id -> entry changes of this txn
        self._new_dirs: set[str] = set()  # directories this txn creates

    @property
    def changed(self) -> bool:
        return bool(self._staged) or any(self._real_changes(d) for d in self._dirs)

    def _real_changes(self, dir_id: str) -> Changes:
        changes = self._dirs.get(dir_id, {})
        if dir_id in self._new_dirs:
            return changes
        committed = self.fs.dir_entries(dir_id)
        return {n: e for n, e in changes.items() if committed.get(n) != e}

    def rows(self) -> list[NodeRow]:
        out = dict(self._staged)
        for dir_id in self._dirs:
            changes = self._real_changes(dir_id)
            if dir_id in self._new_dirs:
                snap = encode_snapshot(DirEntries(None, (changes,)).snapshot())
                row = out[dir_id]
                out[dir_id] = self._new_row(row.part_id, dir_id, row.file_type, snap)
                continue
            if not changes:
                continue
            state = self.fs.dir_state(dir_id)
            base = self.fs.latest(dir_part(dir_id), dir_id)
            assert base is not None
            entries = state.entries.with_layer(changes)
            due = max(SNAPSHOT_MIN_DELTAS, entries.base.num_rows // SNAPSHOT_RATIO)
            many = entries.changed_bound >= due * 16 and entries.changed_count >= due * 16
            if state.deltas + 1 >= due or many:
                content, attrs = encode_snapshot(entries.snapshot()), None
            else:
                content, attrs = encode_delta(changes), DELTA_ATTRS
            out[dir_id] = self._new_row(
                dir_part(dir_id), dir_id, base.file_type, content, attrs=attrs
            )
        return list(out.values())

    # -- the transaction's view (for the path walk) ---------------------------------------
    def root(self) -> Located:
        row = self.latest(ROOT_ID, ROOT_ID)
        if row is None:
            raise PondError("the pond has no root directory (damaged pond)")
        return Located("/", ROOT_ID, ROOT_ID, row.file_type, row)

    def latest(self, part_id: str, node_id: str) -> NodeRow | None:
        staged = self._staged.get(node_id)
        return staged if staged is not None else self.fs.latest(part_id, node_id)

    def content(self, row: NodeRow) -> bytes:
        return self.fs.content(row)

    def _entries(self, dir_id: str) -> DirEntries:
        changes = self._dirs.get(dir_id, {})
        if dir_id in self._new_dirs:
            return DirEntries(None, (changes,))
        return self.fs.dir_entries(dir_id).with_layer(changes)

    def entries_of(self, loc: Located) -> DirEntries:
        if loc.file_type == nodes.DIR_DYNAMIC:
            return DirEntries()
        return self._entries(loc.node_id)

    def lookup(self, path: str, follow: bool = False) -> Located | None:
        """A path as this transaction sees it. Links in the parents are always followed,
        a link in the last part only when `follow`."""
        return resolve(self, path, follow)

    def exists(self, path: str) -> bool:
        return self.lookup(path, follow=True) is not None

    def read_bytes(self, path: str) -> bytes:
        loc = self.lookup(path, follow=True)
        if loc is None:
            raise NotFoundError(f"no such file: {paths.normalize(path)}")
        if nodes.is_dir(loc.file_type):
            raise InvalidPathError(f"is a directory: {paths.normalize(path)}")
        return self.fs.content(loc.row)

    # -- changes ---------------------------------------------------------------------------
    def _new_row(
        self,
        part_id: str,
        node_id: str,
        file_type: str,
        content: bytes | None,
        *,
        content_hash: str | None = None,
        size: int | None = None,
        min_event_time: int | None = None,
        max_event_time: int | None = None,
        attrs: dict[str, Any] | None = None,
        factory: str | None = None,
        new: bool = False,
    ) -> NodeRow:
        if node_id in self._staged:
            version = self._staged[node_id].version
        elif new:  # an id just made: no earlier version to look up
            version = 1
        else:
            prev = self.fs.latest(part_id, node_id)
            version = prev.version + 1 if prev else 1
        if content is not None:
            import hashlib  # ~1-2 ms to load: not for reads

            content_hash = hashlib.sha256(content).hexdigest()
            size = len(content)
            if size >= nodes.LARGE_CONTENT_THRESHOLD:
                self.fs.blobs.put_bytes(content)
                content = None
        return NodeRow(
            part_id=part_id,
            node_id=node_id,
            file_type=file_type,
            version=version,
            timestamp=self.now,
            content=content,
            content_hash=content_hash,
            size=size or 0,
            txn_seq=self.txn_seq,
            min_event_time=min_event_time,
            max_event_time=max_event_time,
            extended_attributes=attrs or {},
            factory=factory,
        )

    def _parent_dir(self, path: str, create: bool) -> tuple[str, str]:
        """(parent dir id, basename) for a path whose parent must be a directory."""
        path = paths.normalize(path)
        if path == "/":
            raise AlreadyExistsError("/ already exists")
        parent = paths.parent(path)
        found = self.lookup(parent, follow=True)
        if found is None:
            if not create:
                raise NotFoundError(f"no such directory: {parent}", path=parent)
            self.mkdir(parent, parents=True)
            found = self.lookup(parent, follow=True)
            assert found is not None
        if not nodes.is_dir(found.file_type):
            raise InvalidPathError(f"not a directory: {parent}", path=parent)
        if found.file_type == nodes.DIR_DYNAMIC:
            raise InvalidPathError(
                f"cannot write inside a dynamic directory: {parent}", path=parent
            )
        return found.node_id, paths.basename(path)

    def _link(self, dir_id: str, entry: Entry) -> None:
        changes = self._dirs.setdefault(dir_id, {})
        if self._entries(dir_id).get(entry.name) is None:  # every new name passes here
            paths.check_new_name(entry.name)
        changes[entry.name] = entry

    def mkdir(self, path: str, parents: bool = False) -> str:
        path = paths.normalize(path)
        found = self.lookup(path, follow=True)
        if found is not None:
            if parents and nodes.is_dir(found.file_type):
                return found.node_id
            if nodes.is_dir(found.file_type):
                raise AlreadyExistsError(f"directory exists: {path}")
            raise AlreadyExistsError(f"a file exists at {path}")
        dir_parent, name = self._parent_dir(path, create=parents)
        node_id = nodes.uuid7()
        self._stage_new_dir(dir_part(node_id), node_id)
        self._link(dir_parent, Entry(name, node_id, nodes.DIR_PHYSICAL))
        return node_id

    def _stage_new_dir(self, part_id: str, node_id: str) -> None:
        empty = encode_snapshot(SNAPSHOT_SCHEMA.empty_table())
        self._staged[node_id] = self._new_row(
            part_id, node_id, nodes.DIR_PHYSICAL, empty, new=node_id != ROOT_ID
        )
        self._dirs[node_id] = {}
        self._new_dirs.add(node_id)

    def write(
        self,
        path: str,
        file_type: str,
        content: bytes | None = None,
        *,
        blob: tuple[str, int] | None = None,
        min_event_time: int | None = None,
        max_event_time: int | None = None,
        attrs: dict[str, Any] | None = None,
        factory: str | None = None,
        parents: bool = False,
        overwrite_type: bool = False,
    ) -> NodeRow:
        """Create a node or add a version to it. `blob` = (sha256, size) already stored."""
        path = paths.normalize(path)
        dir_id, name = self._parent_dir(path, create=parents)
        existing = self._entries(dir_id).get(name)
        if existing is not None:
            if nodes.is_dir(existing.file_type):
                raise InvalidPathError(f"cannot write over a directory: {path}")
            if existing.file_type != file_type and not overwrite_type:
                if nodes.is_dynamic(existing.file_type):
                    kind = existing.file_type
                    raise InvalidPathError(f"{path} is derived ({kind}): not writable")
                raise InvalidPathError(
                    f"{path} is a {existing.file_type}; cannot write a {file_type} there"
                )
            node_id = existing.node_id
        else:
            node_id = nodes.uuid7()
        # a dynamic directory's row lives in its own partition, like every directory's
        row = self._new_row(
            dir_part(node_id) if nodes.is_dir(file_type) else dir_id,
            node_id,
            file_type,
            content,
            content_hash=blob[0] if blob else None,
            size=blob[1] if blob else None,
            min_event_time=min_event_time,
            max_event_time=max_event_time,
            attrs=attrs,
            factory=factory,
            new=existing is None,
        )
        self._staged[node_id] = row
        if existing is None or existing.file_type != file_type:
            self._link(dir_id, Entry(name, node_id, file_type))
        return row

    def remove(self, path: str) -> None:
        """Remove a file or symlink entry (its rows stay: earlier versions of the
        directory still list it)."""
        path = paths.normalize(path)
        dir_id, name = self._parent_dir(path, create=False)
        existing = self._entries(dir_id).get(name)
        if existing is None:
            raise NotFoundError(f"no such file: {path}")
        if nodes.is_dir(existing.file_type):
            raise InvalidPathError(f"is a directory: {path}")
        self._dirs.setdefault(dir_id, {})[name] = None
        self._staged.pop(existing.node_id, None)

    def unlink_entry(self, dir_id: str, name: str) -> None:
        """Drop the entry `name` from directory `dir_id`, whatever it names, without looking
        it up (`pond fsck --repair`: the entry may point at a node with no rows left)."""
        self._dirs.setdefault(dir_id, {})[name] = None

    def replace_dir(self, dir_id: str, entries: list[Entry]) -> None:
        """Give directory `dir_id` a new version that is a snapshot of `entries`, without
        reading its current state (`pond fsck --repair`: that state cannot be rebuilt)."""
        names = sorted(entries, key=lambda e: e.name)
        table = pa.table(
            [[e.name for e in names], [e.node_id for e in names], [e.file_type for e in names]],
            schema=SNAPSHOT_SCHEMA,
        )
        content = encode_snapshot(table)
        self._staged[dir_id] = self._new_row(dir_part(dir_id), dir_id, nodes.DIR_PHYSICAL, content)

    def staged_row(self, node_id: str) -> NodeRow | None:
        """The new row this transaction stages for `node_id`, if any."""
        return self._staged.get(node_id)

    def create_root(self) -> None:
        """The first transaction of a pond: the root directory, with its fixed id."""
        self._stage_new_dir(ROOT_ID, ROOT_ID)

    def symlink(self, path: str, target: str) -> NodeRow:
        return self.write(path, nodes.SYMLINK, target.encode())
