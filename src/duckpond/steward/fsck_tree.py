"""The directory tree as fsck sees it: rebuilt from whatever rows are readable, so it
can name the pond paths damage affects and find entries left without a node."""

from __future__ import annotations

from .. import nodes
from ..storage.blobs import BlobStore
from ..storage.direntries import DELTA_ATTRS, Entry, decode_delta, decode_dir


def _dir_rows(rows: list[nodes.NodeRow]) -> dict[str, list[nodes.NodeRow]]:
    out: dict[str, list[nodes.NodeRow]] = {}
    for r in rows:
        if nodes.is_dir(r.file_type) and r.part_id == r.node_id:
            out.setdefault(r.node_id, []).append(r)
    for versions in out.values():
        versions.sort(key=lambda r: r.version)
    return out


def _entries(versions: list[nodes.NodeRow], blobs: BlobStore) -> dict[str, Entry]:
    """A directory's entries: its latest snapshot with the later deltas folded on top."""
    start = 0
    for i in range(len(versions) - 1, -1, -1):
        if versions[i].extended_attributes != DELTA_ATTRS:
            start = i
            break
    out: dict[str, Entry] = {}
    for k, r in enumerate(versions[start:]):
        content = r.content if r.content is not None else blobs.read(r.content_hash or "")
        if k == 0 and r.extended_attributes != DELTA_ATTRS:
            out = dict(decode_dir(content))
            continue
        for name, e in decode_delta(content).items():
            if e is None:
                out.pop(name, None)
            else:
                out[name] = e
    return out


def node_paths(rows: list[nodes.NodeRow], blobs: BlobStore) -> dict[str, str]:
    """node id -> pond path, from the newest directory versions among `rows`."""
    dirs = _dir_rows(rows)
    out = {nodes.ROOT_ID: "/"}
    stack = [nodes.ROOT_ID]
    while stack:
        dir_id = stack.pop()
        if dir_id not in dirs:
            continue
        try:
            entries = _entries(dirs[dir_id], blobs)
        except Exception:  # noqa: BLE001 - reported as damage elsewhere
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
    dirs = _dir_rows(rows)
    out: list[tuple[str, str, str]] = []
    stack = [("/", root)]
    while stack:
        path, row = stack.pop()
        if row.file_type != nodes.DIR_PHYSICAL:
            continue
        try:
            entries = _entries(dirs.get(row.node_id, [row]), blobs)
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
