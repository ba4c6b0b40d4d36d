"""The job context the steward hands a running factory: factories.base.RunContext plus
the reads that need the dynamic layer (derived nodes), which factories cannot import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import nodes, paths
from ..errors import InvalidPathError, NotFoundError
from ..factories.base import RunContext

if TYPE_CHECKING:
    import pyarrow as pa


class JobContext(RunContext):
    def series_max_time(self, path: str) -> int | None:
        from ..dynamic.resolver import StagedView

        staged = self.txn.staged
        loc = staged.lookup(path, follow=True)
        if loc is None or loc.file_type != nodes.FILE_SERIES:
            return None
        rows = StagedView(staged).versions(loc.part_id, loc.node_id)
        return max((r.max_event_time for r in rows if r.max_event_time is not None), default=None)

    def read_table(self, path: str) -> pa.Table:
        from ..dynamic.resolver import Resolver, StagedView
        from ..factories.live import LiveFile

        node = Resolver(StagedView(self.txn.staged)).lookup(path)
        if node is None:
            raise NotFoundError(f"no such file: {paths.normalize(path)}")
        if not isinstance(node, LiveFile):
            raise InvalidPathError(f"not a table or series: {paths.normalize(path)}")
        return node.scan()
