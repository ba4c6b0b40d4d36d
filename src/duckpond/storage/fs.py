"""The filesystem view over the data table, and the staging area of one write transaction.

A directory's rows live in the partition named by its own id; a file's rows live in the
partition of the directory that owns it. Each directory version is a full snapshot of its
entries (JSON), so reading a directory is one partition read, never a scan of history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from .. import nodes, paths
from ..errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondError
from ..nodes import ROOT_ID, NodeRow
from .blobs import BlobStore
from .datatable import DataTable

MAX_SYMLINK_DEPTH = 32


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


def encode_dir(entries: dict[str, Entry]) -> bytes:
    items = [
        [e.name, e.node_id, e.file_type] for e in sorted(entries.values(), key=lambda e: e.name)
    ]
    return json.dumps({"entries": items}, separators=(",", ":")).encode()


def decode_dir(content: bytes) -> dict[str, Entry]:
    items = json.loads(content)["entries"]
    return {n: Entry(n, i, t) for n, i, t in items}


def dir_part(node_id: str) -> str:
    return node_id


class PondFS:
    """Read-only view of the latest committed state."""

    def __init__(self, table: DataTable, blobs: BlobStore) -> None:
        self.table = table
        self.blobs = blobs

    # -- rows ------------------------------------------------------------------------------
    def versions(self, part_id: str, node_id: str) -> list[NodeRow]:
        return self.table.partition_index(part_id).get(node_id, [])

    def latest(self, part_id: str, node_id: str) -> NodeRow | None:
        rows = self.versions(part_id, node_id)
        return rows[-1] if rows else None

    def content(self, row: NodeRow) -> bytes:
        if row.content is not None:
            return row.content
        if row.content_hash is None:
            return b""
        return self.blobs.read(row.content_hash)

    def blob_path(self, row: NodeRow) -> str | None:
        if row.in_blob:
            return str(self.blobs.path_for(row.content_hash or ""))
        return None

    def dir_entries(self, dir_id: str) -> dict[str, Entry]:
        row = self.latest(dir_part(dir_id), dir_id)
        if row is None:
            raise PondError(f"directory {dir_id} has no rows (damaged pond)")
        return decode_dir(self.content(row))

    def root(self) -> Located:
        row = self.latest(ROOT_ID, ROOT_ID)
        if row is None:
            raise PondError("the pond has no root directory (damaged pond)")
        return Located("/", ROOT_ID, ROOT_ID, row.file_type, row)

    # -- paths -----------------------------------------------------------------------------
    def lookup(self, path: str, follow: bool = True) -> Located | None:
        """Resolve an absolute path; None when it (or a parent) does not exist."""
        return self._lookup(paths.normalize(path), follow, 0)

    def _lookup(self, path: str, follow: bool, depth: int) -> Located | None:
        if depth > MAX_SYMLINK_DEPTH:
            raise InvalidPathError(f"too many levels of symbolic links: {path}")
        cur = self.root()
        parts = paths.split(path)
        walked = "/"
        for i, name in enumerate(parts):
            if not nodes.is_dir(cur.file_type):
                raise NotFoundError(f"not a directory: {walked}")
            entry = self.entries_of(cur).get(name)
            if entry is None:
                return None
            walked = paths.join(walked, name)
            loc = self._locate(cur, entry, walked)
            last = i == len(parts) - 1
            if loc.file_type == nodes.SYMLINK and (follow or not last):
                target = self.content(loc.row).decode()
                if not target.startswith("/"):
                    target = paths.join(paths.parent(walked), target)
                rest = parts[i + 1 :]
                return self._lookup(paths.join(target, *rest), follow, depth + 1)
            cur = loc
        return cur

    def _locate(self, parent: Located, entry: Entry, path: str) -> Located:
        part = dir_part(entry.node_id) if nodes.is_dir(entry.file_type) else parent.node_id
        row = self.latest(part, entry.node_id)
        if row is None:
            raise PondError(f"entry {path} has no rows (damaged pond)")
        return Located(path, entry.node_id, part, row.file_type, row)

    def entries_of(self, loc: Located) -> dict[str, Entry]:
        if loc.file_type == nodes.DIR_DYNAMIC:
            return {}  # dynamic directories are expanded by the factory layer, not storage
        return decode_dir(self.content(loc.row))

    def require(self, path: str, follow: bool = True) -> Located:
        loc = self.lookup(path, follow)
        if loc is None:
            raise NotFoundError(f"no such file or directory: {paths.normalize(path)}")
        return loc

    def children(self, loc: Located) -> Iterator[Located]:
        for name, entry in sorted(self.entries_of(loc).items()):
            yield self._locate(loc, entry, paths.join(loc.path, name))

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
        return [loc for loc in self.walk(start) if pat.match(loc.path)]


class StagedTxn:
    """The changes of one write transaction, staged in memory until commit.

    Each node gets at most one new version per transaction; directories touched get one new
    snapshot each. Large contents are written to the blob store (synced) as they are staged.
    """

    def __init__(self, fs: PondFS, txn_seq: int) -> None:
        self.fs = fs
        self.txn_seq = txn_seq
        self.now = nodes.now_us()
        self._staged: dict[str, NodeRow] = {}  # node_id -> new row
        self._dirs: dict[str, dict[str, Entry]] = {}  # dir id -> entries after this txn

    @property
    def changed(self) -> bool:
        return bool(self._staged)

    def rows(self) -> list[NodeRow]:
        out = dict(self._staged)
        for dir_id, entries in self._dirs.items():
            base = out.get(dir_id) or self._latest(dir_part(dir_id), dir_id)
            assert base is not None
            content = encode_dir(entries)
            if dir_id not in out and base.content == content:
                continue
            out[dir_id] = self._new_row(dir_part(dir_id), dir_id, base.file_type, content)
        return list(out.values())

    # -- overlay lookups -------------------------------------------------------------------
    def _latest(self, part_id: str, node_id: str) -> NodeRow | None:
        staged = self._staged.get(node_id)
        return staged if staged is not None else self.fs.latest(part_id, node_id)

    def _entries(self, dir_id: str) -> dict[str, Entry]:
        if dir_id in self._dirs:
            return self._dirs[dir_id]
        if dir_id in self._staged:
            return decode_dir(self.fs.content(self._staged[dir_id]))
        return self.fs.dir_entries(dir_id)

    def lookup(self, path: str) -> tuple[str, str, str] | None:
        """(node_id, part_id, file_type) of a path as this transaction sees it."""
        node_id, part, ftype = ROOT_ID, ROOT_ID, nodes.DIR_PHYSICAL
        walked = "/"
        for name in paths.split(paths.normalize(path)):
            if not nodes.is_dir(ftype):
                raise NotFoundError(f"not a directory: {walked}")
            if ftype == nodes.DIR_DYNAMIC:
                raise InvalidPathError(f"{walked} is a derived directory: nothing is written in it")
            entry = self._entries(node_id).get(name)
            if entry is None:
                return None
            walked = paths.join(walked, name)
            new_part = dir_part(entry.node_id) if nodes.is_dir(entry.file_type) else node_id
            node_id, part, ftype = entry.node_id, new_part, entry.file_type
        return node_id, part, ftype

    def exists(self, path: str) -> bool:
        return self.lookup(path) is not None

    def read_bytes(self, path: str) -> bytes:
        found = self.lookup(path)
        if found is None:
            raise NotFoundError(f"no such file: {paths.normalize(path)}")
        node_id, part, ftype = found
        if nodes.is_dir(ftype):
            raise InvalidPathError(f"is a directory: {paths.normalize(path)}")
        row = self._latest(part, node_id)
        assert row is not None
        return self.fs.content(row)

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
        attrs: dict | None = None,
        factory: str | None = None,
    ) -> NodeRow:
        if node_id in self._staged:
            version = self._staged[node_id].version
        else:
            prev = self.fs.latest(part_id, node_id)
            version = prev.version + 1 if prev else 1
        if content is not None:
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
        found = self.lookup(parent)
        if found is None:
            if not create:
                raise NotFoundError(f"no such directory: {parent}")
            self.mkdir(parent, parents=True)
            found = self.lookup(parent)
            assert found is not None
        if not nodes.is_dir(found[2]):
            raise InvalidPathError(f"not a directory: {parent}")
        if found[2] == nodes.DIR_DYNAMIC:
            raise InvalidPathError(f"cannot write inside a dynamic directory: {parent}")
        return found[0], paths.basename(path)

    def _link(self, dir_id: str, entry: Entry) -> None:
        entries = dict(self._entries(dir_id))
        if entry.name not in entries:  # every new name of every write passes here
            paths.check_new_name(entry.name)
        entries[entry.name] = entry
        self._dirs[dir_id] = entries

    def mkdir(self, path: str, parents: bool = False) -> str:
        path = paths.normalize(path)
        found = self.lookup(path)
        if found is not None:
            if parents and nodes.is_dir(found[2]):
                return found[0]
            if nodes.is_dir(found[2]):
                raise AlreadyExistsError(f"directory exists: {path}")
            raise AlreadyExistsError(f"a file exists at {path}")
        dir_parent, name = self._parent_dir(path, create=parents)
        node_id = nodes.uuid7()
        row = self._new_row(dir_part(node_id), node_id, nodes.DIR_PHYSICAL, encode_dir({}))
        self._staged[node_id] = row
        self._dirs[node_id] = {}
        self._link(dir_parent, Entry(name, node_id, nodes.DIR_PHYSICAL))
        return node_id

    def write(
        self,
        path: str,
        file_type: str,
        content: bytes | None = None,
        *,
        blob: tuple[str, int] | None = None,
        min_event_time: int | None = None,
        max_event_time: int | None = None,
        attrs: dict | None = None,
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
        part = dir_part(node_id) if nodes.is_dir(file_type) else dir_id
        row = self._new_row(
            part,
            node_id,
            file_type,
            content,
            content_hash=blob[0] if blob else None,
            size=blob[1] if blob else None,
            min_event_time=min_event_time,
            max_event_time=max_event_time,
            attrs=attrs,
            factory=factory,
        )
        self._staged[node_id] = row
        if existing is None or existing.file_type != file_type:
            self._link(dir_id, Entry(name, node_id, file_type))
        return row

    def create_root(self) -> None:
        """The first transaction of a pond: the root directory, with its fixed id."""
        row = self._new_row(ROOT_ID, ROOT_ID, nodes.DIR_PHYSICAL, encode_dir({}))
        self._staged[ROOT_ID] = row
        self._dirs[ROOT_ID] = {}

    def symlink(self, path: str, target: str) -> NodeRow:
        return self.write(path, nodes.SYMLINK, target.encode())
