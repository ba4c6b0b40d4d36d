"""Directories whose entry set cannot be rebuilt, and node versions stored twice: the
structural checks of `pond fsck` over the rows that are left.

A directory's entries are its latest snapshot with the deltas after it folded on top
(storage/direntries.py). When the rows holding the snapshot are lost (a missing data file that
repair removed, a version whose blob is gone), or a delta after it, no reader or writer can
rebuild the directory: every write into it fails. Repair writes a new snapshot version
from what remains (the newest surviving snapshot, if any, and the deltas after it, without
entries naming nodes that have no rows left), in one recorded write transaction, and says
which versions were lost and which nodes no name reaches any more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .. import nodes
from ..storage.blobs import BlobStore
from ..storage.direntries import DELTA_ATTRS, Entry
from . import fsck_tree


@dataclass
class BrokenDir:
    dir_id: str
    path: str
    why: str  # what is missing, one phrase
    entries: dict[str, Entry]  # what can be rebuilt from the surviving versions
    dropped: list[str] = field(default_factory=list)  # entries naming nodes without rows
    unnamed: list[str] = field(default_factory=list)  # node ids in its partition, unnamed


def _tail_problem(versions: list[nodes.NodeRow]) -> str | None:
    """Why the latest snapshot and the deltas after it do not rebuild the directory."""
    start = None
    for i in range(len(versions) - 1, -1, -1):
        if versions[i].extended_attributes != DELTA_ATTRS:
            start = i
            break
    if start is None:
        first, last = versions[0].version, versions[-1].version
        span = f"versions {first}..{last} are" if first != last else f"version {first} is"
        return f"has no snapshot ({span} only changes to a lost one)"
    tail = sorted({r.version for r in versions[start:]})
    missing = [v for v in range(tail[0], tail[-1] + 1) if v not in set(tail)]
    if missing:
        return f"versions {', '.join(map(str, missing))} after its snapshot are missing"
    return None


def broken_dirs(
    rows: list[nodes.NodeRow], blobs: BlobStore, node_paths: dict[str, str]
) -> list[BrokenDir]:
    """Every reachable physical directory whose entries cannot be rebuilt."""
    dirs = fsck_tree._dir_rows(rows)
    having_rows = {(r.part_id, r.node_id) for r in rows}
    by_part: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.node_id != r.part_id:
            by_part[r.part_id].add(r.node_id)
    out = []
    for dir_id, versions in sorted(dirs.items()):
        if dir_id not in node_paths or versions[-1].file_type != nodes.DIR_PHYSICAL:
            continue
        why = _tail_problem(versions)
        if why is None:
            continue
        try:
            entries = fsck_tree._entries(versions, blobs)
        except Exception:  # noqa: BLE001 - a surviving version unreadable: start empty
            entries = {}
        broken = BrokenDir(dir_id, node_paths[dir_id], why, {})
        for name, e in sorted(entries.items()):
            part = e.node_id if nodes.is_dir(e.file_type) else dir_id
            if (part, e.node_id) in having_rows:
                broken.entries[name] = e
            else:
                broken.dropped.append(name)
        named = {e.node_id for e in broken.entries.values()}
        broken.unnamed = sorted(by_part.get(dir_id, set()) - named)
        out.append(broken)
    return out


def duplicate_versions(
    rows: list[tuple[str, nodes.NodeRow]],
) -> dict[tuple[str, str, int], list[str]]:
    """(part_id, node_id, version) stored by more than one row -> the files holding them
    (a file once per row)."""
    where: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for rel, r in rows:
        where[(r.part_id, r.node_id, r.version)].append(rel)
    return {k: v for k, v in where.items() if len(v) > 1}


def repair_tree(
    root: Path,
    blobs: BlobStore,
    dangling: list[tuple[str, str, str]],
    broken: list[BrokenDir],
) -> None:
    """One recorded write transaction: a new snapshot for each broken directory, and the
    dangling entries of the other directories unlinked."""
    from ..storage.datatable import DataTable
    from .control import ControlTable
    from .steward import Steward

    data = DataTable.open(root / "data")
    control = ControlTable.open(root / "control")
    steward = Steward(root, data, control, blobs)
    rebuilt = {b.dir_id for b in broken}
    with steward.transaction(["pond", "fsck", "--repair"], run_post_commit=False) as tx:
        staged = tx.staged
        for b in broken:
            staged.replace_dir(b.dir_id, list(b.entries.values()))
        # StagedTxn.remove() refuses directories and needs the node: unlink by name.
        for dir_id, name, _ in dangling:
            if dir_id not in rebuilt:
                staged.unlink_entry(dir_id, name)
