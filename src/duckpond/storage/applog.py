"""Appended logs: a raw `file:data` whose versions each hold only the bytes added.

A plain `file:data` read gives its latest version (SPEC §3). An appended log is the same
entry type, marked in every version's extended attributes (`{"log": "append"}`), and
reading it gives its versions concatenated, oldest first: version N read alone is the
log as it was at version N. Each version also records the log's total size after it
(`log_size`), so the size shown and the next append never read earlier versions.
Writers (the `logfile-ingest` factory) add their own attributes beside these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import nodes
from ..errors import InvalidPathError

if TYPE_CHECKING:
    from ..nodes import NodeRow
    from .fs import PondFS, StagedTxn

MARK_KEY = "log"
MARK = "append"
SIZE_KEY = "log_size"


def is_log(row: NodeRow) -> bool:
    return row.extended_attributes.get(MARK_KEY) == MARK


def total_size(row: NodeRow) -> int:
    """The log's size as of this version (a plain row: its own size)."""
    if is_log(row):
        return int(row.extended_attributes.get(SIZE_KEY, row.size))
    return row.size


def concat(fs: PondFS, row: NodeRow) -> bytes:
    """The log as of `row`'s version: every version up to it, in order."""
    rows = [r for r in fs.versions(row.part_id, row.node_id) if r.version <= row.version]
    if not rows or rows[-1].version != row.version:
        rows.append(row)  # a version staged by the running transaction
    return b"".join(fs.row_bytes(r) for r in rows)


def append(staged: StagedTxn, path: str, data: bytes, attrs: dict[str, Any]) -> NodeRow:
    """Add `data` as a new version of the appended log at `path` (created, with its parent
    directories, when missing). `attrs` are stored with the version beside the log's own."""
    loc = staged.lookup(path, follow=True)
    before = 0
    if loc is not None:
        if loc.file_type != nodes.FILE_DATA or not is_log(loc.row):
            raise InvalidPathError(f"{loc.path} exists and is not an appended log")
        if staged.staged_row(loc.node_id) is not None:
            raise InvalidPathError(f"{loc.path} was already appended to in this transaction")
        before = total_size(loc.row)
    full = {**attrs, MARK_KEY: MARK, SIZE_KEY: before + len(data)}
    return staged.write(path, nodes.FILE_DATA, data, attrs=full, parents=True)
