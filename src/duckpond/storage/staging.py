"""The staging area of one write transaction: new node versions and directory changes
kept in memory until commit, seen through the same path walk as the committed pond."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .. import nodes, paths
from ..errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondError
from ..nodes import ROOT_ID, NodeRow
from .direntries import (
    DELTA_ATTRS,
    SNAPSHOT_SCHEMA,
    Changes,
    DirEntries,
    Entry,
    encode_delta,
    encode_snapshot,
)
from .dirstate import dir_part
from .fs import Located, PondFS, resolve
from .private import private_id

# A snapshot once the deltas since the last one reach max(MIN, entries // RATIO).
SNAPSHOT_MIN_DELTAS = 64
SNAPSHOT_RATIO = 64


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
        # earlier versions of files moved to another directory, copied into its partition
        # (a file's rows live in its directory's partition): node id -> rows
        self._carried: dict[str, list[NodeRow]] = {}

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
        carried = [r for rows in self._carried.values() for r in rows]
        return carried + self._node_rows()

    def _node_rows(self) -> list[NodeRow]:
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
        if staged is not None:
            return staged
        carried = self._carried.get(node_id)
        if carried and carried[-1].part_id == part_id:
            return carried[-1]
        return self.fs.latest(part_id, node_id)

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
        elif self._carried.get(node_id):
            version = self._carried[node_id][-1].version + 1
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
                self._refuse_dynamic_ancestor(parent)
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

    def _refuse_dynamic_ancestor(self, path: str) -> None:
        """A missing directory under a dynamic one is derived, not missing: say so."""
        while path != "/":
            path = paths.parent(path)
            found = self.lookup(path, follow=True)
            if found is not None:
                if found.file_type == nodes.DIR_DYNAMIC:
                    raise InvalidPathError(
                        f"cannot write inside a dynamic directory: {path}", path=path
                    )
                return

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

    def put_private(
        self, owner_id: str, key: str, content: bytes, attrs: dict[str, Any] | None = None
    ) -> NodeRow:
        """Stage a new version of the private content `key` of the dynamic directory
        `owner_id` (storage/private.py): a row in its partition that no directory lists."""
        node_id = private_id(owner_id, key)
        row = self._new_row(dir_part(owner_id), node_id, nodes.FILE_DATA, content, attrs=attrs)
        self._staged[node_id] = row
        return row

    def staged_row(self, node_id: str) -> NodeRow | None:
        """The new row this transaction stages for `node_id`, if any."""
        return self._staged.get(node_id)

    def create_root(self) -> None:
        """The first transaction of a pond: the root directory, with its fixed id."""
        self._stage_new_dir(ROOT_ID, ROOT_ID)

    def symlink(self, path: str, target: str) -> NodeRow:
        return self.write(path, nodes.SYMLINK, target.encode())

    # -- removing and moving (`pond rm`, `mv`, `revert`) ----------------------------------
    def remove_entry(self, path: str, recursive: bool = False) -> Entry:
        """Drop the entry at `path` (a file, symlink, factory node, or with `recursive` a
        directory and all below it). No row is deleted: the earlier versions of the
        directory still list it, and its own versions stay readable."""
        path = paths.normalize(path)
        if path == "/":
            raise InvalidPathError("cannot remove the root directory /")
        dir_id, name = self._parent_dir(path, create=False)
        existing = self._entries(dir_id).get(name)
        if existing is None:
            raise NotFoundError(f"no such file or directory: {path}", path=path)
        if existing.file_type == nodes.DIR_PHYSICAL and not recursive:
            raise InvalidPathError(f"is a directory: {path} (use -r)", path=path)
        self._dirs.setdefault(dir_id, {})[name] = None
        self._staged.pop(existing.node_id, None)
        return existing

    def move(self, src: str, dst: str) -> Entry:
        """Give the node at `src` the name `dst` (same node id and versions). A file that
        changes directory has its versions copied into the new directory's partition."""
        src, dst = paths.normalize(src), paths.normalize(dst)
        if src == "/":
            raise InvalidPathError("cannot move the root directory /")
        src_dir, src_name = self._parent_dir(src, create=False)
        entry = self._entries(src_dir).get(src_name)
        if entry is None:
            raise NotFoundError(f"no such file or directory: {src}", path=src)
        dst_dir, dst_name = self._parent_dir(dst, create=False)
        if nodes.is_dir(entry.file_type) and self._below(dst_dir, paths.parent(dst), entry):
            raise InvalidPathError(f"cannot move {src} into itself ({dst})", path=dst)
        if self._entries(dst_dir).get(dst_name) is not None:
            raise AlreadyExistsError(f"{dst} exists", path=dst)
        self._dirs.setdefault(src_dir, {})[src_name] = None
        self._link(dst_dir, Entry(dst_name, entry.node_id, entry.file_type))
        if not nodes.is_dir(entry.file_type) and src_dir != dst_dir:
            self._carry(entry.node_id, src_dir, dst_dir)
        return entry

    def _below(self, dir_id: str, dir_path: str, moved: Entry) -> bool:
        """Whether directory `dir_id` (at `dir_path`) is the moved directory or inside it."""
        if dir_id == moved.node_id:
            return True
        walked = "/"
        for part in paths.split(dir_path):
            walked = paths.join(walked, part)
            found = self.lookup(walked, follow=True)
            if found is not None and found.node_id == moved.node_id:
                return True
        return False

    def _carry(self, node_id: str, from_dir: str, to_dir: str) -> None:
        present = {r.version for r in self.fs.versions(to_dir, node_id)}
        rows = self._carried.pop(node_id, None) or self.fs.versions(from_dir, node_id)
        self._carried[node_id] = [
            r.with_changes(part_id=to_dir) for r in rows if r.version not in present
        ]
        staged = self._staged.get(node_id)
        if staged is not None:
            self._staged[node_id] = staged.with_changes(part_id=to_dir)

    def set_entry(self, dir_id: str, name: str, entry: Entry | None) -> None:
        """Make directory `dir_id` hold `entry` under `name` (None: no entry), whatever it
        holds now (`pond revert` puts back what a transaction changed)."""
        self._dirs.setdefault(dir_id, {})[name] = entry

    def stage_version(self, part_id: str, old: NodeRow, attrs: dict[str, Any]) -> NodeRow:
        """A new version of node `old.node_id` (in `part_id`) holding what `old` held, with
        `attrs` as its attributes: `pond revert` putting an earlier version back."""
        staged = self._staged.get(old.node_id)
        prev = self.latest(part_id, old.node_id)
        version = staged.version if staged else (prev.version if prev else old.version) + 1
        row = old.with_changes(
            part_id=part_id,
            version=version,
            timestamp=self.now,
            txn_seq=self.txn_seq,
            extended_attributes=attrs,
        )
        self._staged[old.node_id] = row
        return row
