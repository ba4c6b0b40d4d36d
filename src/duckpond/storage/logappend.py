"""Appending to an appended log (applog.py) inside a write transaction: apart from the
read side, which the directory code (fs.py) uses, so the two never import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import nodes
from ..errors import InvalidPathError
from .applog import MARK, MARK_KEY, SIZE_KEY, is_log, total_size

if TYPE_CHECKING:
    from ..nodes import NodeRow
    from .staging import StagedTxn


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
