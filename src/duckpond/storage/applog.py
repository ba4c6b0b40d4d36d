"""Appended logs: a raw `file:data` whose versions each hold only the bytes added.

A plain `file:data` read gives its latest version (SPEC §3). An appended log is the same
entry type, marked in every version's extended attributes (`{"log": "append"}`), and
reading it gives its versions concatenated, oldest first: version N read alone is the
log as it was at version N. Each version also records the log's total size after it
(`log_size`), so the size shown and the next append never read earlier versions.
Writers (the `logfile-ingest` factory) add their own attributes beside these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .. import nodes

if TYPE_CHECKING:
    from ..nodes import NodeRow


class VersionReader(Protocol):
    """What joining a log's versions needs (fs.PondFS; a protocol, as fs imports this)."""

    def versions(self, part_id: str, node_id: str) -> list[NodeRow]: ...
    def row_bytes(self, row: NodeRow) -> bytes: ...


MARK_KEY = nodes.APPEND_LOG_KEY
MARK = nodes.APPEND_LOG_MARK
SIZE_KEY = nodes.APPEND_LOG_SIZE_KEY


def is_log(row: NodeRow) -> bool:
    return row.extended_attributes.get(MARK_KEY) == MARK


def total_size(row: NodeRow) -> int:
    """The log's size as of this version (a plain row: its own size)."""
    return row.logical_size  # nodes.NodeRow knows it too, for layers that cannot see this one


def concat(fs: VersionReader, row: NodeRow) -> bytes:
    """The log as of `row`'s version: every version up to it, in order."""
    rows = [r for r in fs.versions(row.part_id, row.node_id) if r.version <= row.version]
    if not rows or rows[-1].version != row.version:
        rows.append(row)  # a version staged by the running transaction
    return b"".join(fs.row_bytes(r) for r in rows)
