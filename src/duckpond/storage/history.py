"""What transactions changed, read back from the rows they wrote (`pond revert`, `diff`,
`log`): every row carries its txn_seq, and a directory version records the entries it
changed, so the stored versions are the history; nothing else is kept for it."""

from __future__ import annotations

from dataclasses import dataclass

from .. import nodes
from ..nodes import NodeRow
from .direntries import DELTA_ATTRS, Entry, decode_delta, decode_dir
from .dirstate import dir_part
from .fs import Located, PondFS


@dataclass(frozen=True)
class EntryChange:
    """Directory `dir_id`'s entry `name` went from `before` to `after` (None: absent)."""

    txn_seq: int
    dir_id: str
    name: str
    before: Entry | None
    after: Entry | None


def rows_between(fs: PondFS, first: int, last: int | None = None) -> list[NodeRow]:
    """Every row written by txn_seq first..last (None: to the newest), each node version
    once (a moved file's versions are stored again in its new directory's partition)."""
    seen: set[tuple[str, int]] = set()
    out: list[NodeRow] = []
    for part in fs.table.partitions():
        for row in fs.table.partition_index(part).rows_of_txns(first, last):
            if (row.node_id, row.version) in seen:
                continue
            seen.add((row.node_id, row.version))
            out.append(row)
    out.sort(key=lambda r: (r.txn_seq, r.node_id, r.version))
    return out


def _entries_upto(fs: PondFS, versions: list[NodeRow], version: int) -> dict[str, Entry]:
    """A directory's entries at `version`: the latest snapshot up to it, deltas on top."""
    upto = [r for r in versions if r.version <= version]
    start = 0
    for i in range(len(upto) - 1, -1, -1):
        if upto[i].extended_attributes != DELTA_ATTRS:
            start = i
            break
    out: dict[str, Entry] = {}
    for k, r in enumerate(upto[start:]):
        content = fs.row_bytes(r)
        if k == 0 and r.extended_attributes != DELTA_ATTRS:
            out = dict(decode_dir(content))
            continue
        for name, e in decode_delta(content).items():
            if e is None:
                out.pop(name, None)
            else:
                out[name] = e
    return out


def entry_changes(fs: PondFS, dir_rows: list[NodeRow]) -> list[EntryChange]:
    """The entry changes the directory versions `dir_rows` made, in their order."""
    out: list[EntryChange] = []
    history: dict[str, list[NodeRow]] = {}
    for row in dir_rows:
        if not nodes.is_dir(row.file_type) or row.file_type == nodes.DIR_DYNAMIC:
            continue
        versions = history.get(row.node_id)
        if versions is None:
            versions = history[row.node_id] = fs.versions(dir_part(row.node_id), row.node_id)
        before = _entries_upto(fs, versions, row.version - 1) if row.version > 1 else {}
        after = _entries_upto(fs, versions, row.version)
        for name in sorted(before.keys() | after.keys()):
            if before.get(name) != after.get(name):
                out.append(
                    EntryChange(row.txn_seq, row.node_id, name, before.get(name), after.get(name))
                )
    return out


def tree(fs: PondFS) -> dict[str, Located]:
    """node id -> where it is now, for every node reachable from the root."""
    return {loc.node_id: loc for loc in fs.walk(fs.root())}
