"""The directory tree as fsck sees it: rebuilt from whatever rows are readable, so it
can name the pond paths damage affects and find entries left without a node."""

from __future__ import annotations

from pathlib import Path

from .. import nodes
from ..storage.blobs import BlobStore
from ..storage.datatable import DataTable
from ..storage.fs import decode_dir
from .control import ControlTable


def node_paths(rows: list[nodes.NodeRow]) -> dict[str, str]:
    """node id -> pond path, from the newest directory snapshots among `rows`."""
    latest: dict[str, nodes.NodeRow] = {}
    for r in rows:
        if nodes.is_dir(r.file_type) and r.content is not None:
            if r.node_id not in latest or r.version > latest[r.node_id].version:
                latest[r.node_id] = r
    out = {nodes.ROOT_ID: "/"}
    stack = [nodes.ROOT_ID]
    while stack:
        dir_id = stack.pop()
        row = latest.get(dir_id)
        if row is None:
            continue
        try:
            entries = decode_dir(row.content or b"")
        except ValueError:
            continue
        for name, e in entries.items():
            if e.node_id in out:
                continue
            out[e.node_id] = f"{out[dir_id].rstrip('/')}/{name}"
            if nodes.is_dir(e.file_type):
                stack.append(e.node_id)
    return out


def dangling_entries(
    rows: list[nodes.NodeRow], blobs: BlobStore
) -> list[tuple[str, str, str]] | None:
    """(directory id, name, path) of every reachable entry whose node has no row; None when
    the root itself has none."""
    latest: dict[tuple[str, str], nodes.NodeRow] = {}
    for r in rows:
        key = (r.part_id, r.node_id)
        if key not in latest or r.version > latest[key].version:
            latest[key] = r
    root = latest.get((nodes.ROOT_ID, nodes.ROOT_ID))
    if root is None:
        return None
    out: list[tuple[str, str, str]] = []
    stack = [("/", root)]
    while stack:
        path, row = stack.pop()
        if row.file_type != nodes.DIR_PHYSICAL:
            continue
        try:
            content = row.content if row.content is not None else blobs.read(row.content_hash or "")
            entries = decode_dir(content)
        except Exception:  # noqa: BLE001 - reported as a blob problem already
            continue
        for name, e in sorted(entries.items()):
            child = f"{path.rstrip('/')}/{name}"
            part = e.node_id if nodes.is_dir(e.file_type) else row.node_id
            found = latest.get((part, e.node_id))
            if found is None:
                out.append((row.node_id, name, child))
            elif nodes.is_dir(found.file_type):
                stack.append((child, found))
    return out


def unlink_entries(root: Path, blobs: BlobStore, dangling: list[tuple[str, str, str]]) -> None:
    """Drop the entries from their directories in one recorded write transaction."""
    from .steward import Steward

    data = DataTable.open(root / "data")
    control = ControlTable.open(root / "control")
    steward = Steward(root, data, control, blobs)
    with steward.transaction(["pond", "fsck", "--repair"], run_post_commit=False) as tx:
        # StagedTxn has no unlink yet: set the directory's next snapshot directly.
        staged = tx._staged
        for dir_id, name, _ in dangling:
            try:
                entries = dict(staged._entries(dir_id))
            except Exception:  # noqa: BLE001 - its own entry dangles: dropped with it
                continue
            entries.pop(name, None)
            staged._dirs[dir_id] = entries
