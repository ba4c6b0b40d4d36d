"""What a running job reads and writes beyond bytes (factories/base.py RunContext): the
pond as committed plus the job's own staged changes, through the transaction it runs in."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import nodes, paths
from ..errors import InvalidPathError, NotFoundError
from ..storage.fs import StagedTxn
from ..txn import WriteTxn

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("pond")


class JobIO:
    """Mixed into the steward's TaskContext, which sets `staged`, `label` and `redact`."""

    staged: StagedTxn
    label: str

    def redact(self, text: str) -> str:
        raise NotImplementedError

    def warn(self, message: str) -> None:
        log.warning("[%s] %s", self.label, self.redact(message))

    def list_dir(self, path: str) -> list[str] | None:
        loc = self.staged.lookup(path, follow=True)
        if loc is None or loc.file_type != nodes.DIR_PHYSICAL:
            return None
        return sorted(e.name for e in self.staged.entries_of(loc).entries())

    def series_max_time(self, path: str) -> int | None:
        from ..dynamic.resolver import StagedView

        loc = self.staged.lookup(path, follow=True)
        if loc is None or loc.file_type != nodes.FILE_SERIES:
            return None
        rows = StagedView(self.staged).versions(loc.part_id, loc.node_id)
        return max((r.max_event_time for r in rows if r.max_event_time is not None), default=None)

    def read_table(self, path: str) -> pa.Table:
        from ..dynamic.resolver import Resolver, StagedView
        from ..factories.live import LiveFile

        node = Resolver(StagedView(self.staged)).lookup(path)
        if node is None:
            raise NotFoundError(f"no such file: {paths.normalize(path)}")
        if not isinstance(node, LiveFile):
            raise InvalidPathError(f"not a table or series: {paths.normalize(path)}")
        return node.scan()

    def write_series(self, path: str, table: pa.Table, time_column: str) -> None:
        WriteTxn(self.staged, {}).write_series(path, table, time_column=time_column, parents=True)

    def remove(self, path: str) -> None:
        self.staged.remove(path)
