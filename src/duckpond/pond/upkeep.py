"""`Pond`'s steward views and upkeep: the control table read back, recovery, maintenance,
fsck and the retention window (steward/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PondError
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from ..steward.handles import PondHandles

if TYPE_CHECKING:
    import pyarrow as pa

    from ..reports import (
        IncompleteReport,
        MaintainReport,
        RebuildReport,
        RecoverReport,
        TxnDetail,
        TxnSummary,
    )
    from ..steward.fsck import FsckResult


class StewardMethods(PondHandles):
    # -- steward views -----------------------------------------------------------------------
    def control_recent(self, limit: int = 20) -> list[TxnSummary]:
        """The newest `limit` user write transactions with their tasks, newest last."""
        from ..steward import views

        return views.recent(self.control, limit)

    def control_detail(self, txn_seq: int) -> TxnDetail:
        """Every control row of one transaction and its tasks, in recorded order."""
        from ..steward import views

        return views.detail(self.control, txn_seq)

    def control_incomplete(self) -> IncompleteReport:
        """What a crash left unfinished (`pond recover` would finish it)."""
        from ..steward import views

        return views.incomplete(self.control, lambda: self.data)

    def control_status(self, limit: int = 20) -> tuple[list[TxnSummary], IncompleteReport]:
        """`control_recent(limit)` and `control_incomplete()` together, reading the control
        table twice rather than three or four times (see steward/views.py)."""
        from ..steward import views

        return views.status(self.control, lambda: self.data, limit)

    def control_sql(
        self,
        query: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> pa.Table:
        """Read-only SQL over the control table as `control_table`, as of now, within
        `timeout` seconds and `memory_limit` bytes (None: unbounded)."""
        from ..steward.queries import control_sql

        return control_sql(self.control, query, timeout, memory_limit)

    def recover(self, retry_failed: bool = False) -> RecoverReport:
        """Finish what crashes interrupted (SPEC §6); safe to run at any time."""
        from ..reports import RecoverReport
        from ..steward import summaries
        from ..steward.recovery import recover

        # The idle case, without the lock or the data table: a writer at work shows an
        # open `begin`, and then recover waits its turn at the lock like any writer.
        if not retry_failed and summaries.nothing_unfinished(self.control):
            return RecoverReport()
        return RecoverReport.from_dict(recover(self.steward, retry_failed=retry_failed))

    def maintain(self, retention_hours: float | None = None) -> MaintainReport:
        """Compact, checkpoint and clean (docs/developer/upkeep.md); `retention_hours` None
        keeps the pond's retention window (`retention()`); files replaced within the window
        stay for readers still using them."""
        from ..reports import MaintainReport
        from ..steward.maintenance import maintain

        report = maintain(self.steward, self.blobs, retention_hours=retention_hours)
        return MaintainReport.from_dict(report)

    def rebuild_control(self, force: bool = False) -> RebuildReport:
        """Rebuild a lost control table from the data table's history (`force`: move an
        existing one aside first)."""
        from ..reports import RebuildReport
        from ..steward.rebuild import rebuild_control

        report = rebuild_control(self.root, force=force, wait=self.wait)
        self._control = None
        self._steward = None
        return RebuildReport(int(report["transactions"]), list(report["messages"]))

    def fsck(self, repair: bool = False) -> FsckResult:
        """Check the pond for damage; `repair` does what is safe (see steward/fsck.py)."""
        from ..steward.fsck import fsck

        return fsck(self.root, repair=repair, wait=self.wait)

    def retention(self) -> float:
        """The retention window in seconds: files no longer referenced stay this long."""
        from ..storage.upkeep import retention_seconds

        self.data.refresh()
        return retention_seconds(self.data.description())

    def set_retention(self, seconds: float) -> None:
        """Set the retention window of both tables (their `delta.deletedFileRetentionDuration`).
        0 lets automatic upkeep delete replaced files at once: readers in flight may fail."""
        from ..storage.upkeep import set_retention

        if not seconds >= 0:
            raise PondError(f"retention must be >= 0 seconds, got {seconds}")
        with self.steward.locked():
            for table in (self.data, self.control):
                set_retention(table.dt, table.path, float(seconds))
