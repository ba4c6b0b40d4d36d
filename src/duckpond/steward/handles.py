"""One pond's handles: its root, its two tables (each opened on first use), its blob store,
its steward and a read-only view of its latest state. `Pond` is built on them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PondError
from ..storage.blobs import BlobStore
from ..storage.datatable import DataTable
from ..storage.fs import Located, PondFS

if TYPE_CHECKING:
    from ..factories.base import PondReader
    from .control import ControlTable
    from .steward import Steward


class PondHandles:
    """Cheap to make: nothing is opened until used (plain reads never need the control
    table, `pond control` never needs the data table)."""

    def __init__(
        self, root: Path, data: DataTable | None, control: ControlTable | None, wait: float = 0.0
    ) -> None:
        self.root = root
        self._data = data
        self._control = control
        self.blobs = BlobStore(root / "blobs")
        self.wait = wait
        self._steward: Steward | None = None
        # what the steward tells when a post-commit job starts and ends (set before writing)
        self.on_task: Callable[[str | None], None] | None = None

    @property
    def data(self) -> DataTable:
        if self._data is None:
            data = DataTable.open(self.root / "data")
            if data.last_txn_seq() == 0:
                raise PondError(
                    f"the pond at {self.root} was never initialized completely; "
                    "remove it and run init"
                )
            self._data = data
        return self._data

    @property
    def control(self) -> ControlTable:
        if self._control is None and (self.root / "control" / "_delta_log").is_dir():
            from .control import ControlTable  # imports deltalake: only when used

            self._control = ControlTable.open(self.root / "control")
        if self._control is None:
            raise PondError(
                f"the control table of {self.root} is missing; run `pond rebuild-control`"
            )
        return self._control

    @property
    def steward(self) -> Steward:
        if self._steward is None:
            from .steward import Steward

            self._steward = Steward(
                self.root, self.data, self.control, self.blobs, self.wait, reader=self.job_reader()
            )
            self._steward.on_task = self.on_task
        return self._steward

    def job_reader(self) -> Callable[[], PondReader] | None:
        """What the steward's jobs read the whole pond through (RunContext.reader); the
        `Pond` facade hands itself over (duckpond.pond), bare handles have none."""
        return None

    def identity(self) -> dict[str, Any]:
        """Pond id, creation time, user and host, recorded once at init (in both tables)."""
        if self._data is None and (self.root / "control" / "_delta_log").is_dir():
            return self.control.identity()
        try:
            identity = json.loads(self.data.description() or "{}").get("pond", {})
            return identity if isinstance(identity, dict) else {}
        except ValueError:
            return {}

    def refresh(self) -> None:
        self.data.refresh()

    @property
    def fs(self) -> PondFS:
        """A read-only view of the latest committed state (needs no control table)."""
        return PondFS(self.data, self.blobs)

    def lookup(self, path: str) -> Located | None:
        return self.fs.lookup(path)

    def require(self, path: str) -> Located:
        return self.fs.require(path)
