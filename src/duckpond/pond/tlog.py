"""The tamper-evident log's library methods (`pond tlog show|verify`), a mixin of `Pond`.

The log is kept by every data commit (storage/tlog.py); these read it and check it
(storage/tlogcheck.py), locally or in a remote's copy (remotes/tlog.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ..steward.handles import PondHandles

if TYPE_CHECKING:
    from ..remotes.ops import PondHost
    from ..storage.tlogcheck import TlogReport, TlogShow


class TlogMethods(PondHandles):
    def tlog_show(self) -> TlogShow:
        """The log as recorded: the newest tree head and every leaf (no rows read)."""
        from ..storage import tlogcheck

        return tlogcheck.show(self.root / "data")

    def tlog_verify(self, remote: str | None = None) -> TlogReport:
        """Recompute the tree from the data and compare it with the records: `report.ok`,
        or `report.first_bad` and `report.problem` naming the first transaction whose
        content, order or presence changed. `remote`: check that remote's copy instead."""
        if remote is not None:
            from ..remotes import tlog

            return tlog.verify(cast("PondHost", self), remote)
        from ..storage import tlogcheck

        return tlogcheck.check(self.root / "data", self.root / "control", str(self.root))
