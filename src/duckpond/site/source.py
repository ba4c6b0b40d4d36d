"""What a site is built from: the read methods of a pond that the builder uses.

The `Pond` library object is one (`pond site build`), and so is the read view a `sitegen`
job gets from its RunContext (the same Pond, running the steward): the site layer reads
through this protocol and imports nothing of the library itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from ..dynamic import Resolver
    from ..reports import IncompleteReport, TxnSummary
    from ..storage.fs import Located


@runtime_checkable
class SiteSource(Protocol):
    def lookup(self, path: str) -> Located | None: ...

    def resolver(self) -> Resolver: ...

    def sql(
        self,
        query: str = "SELECT * FROM source",
        path: str | None = None,
        version: int | None = None,
        time_start: int | None = None,
        time_end: int | None = None,
        *,
        timeout: float | None = ...,
        memory_limit: int | None = ...,
    ) -> pa.Table: ...

    def control_status(self, limit: int = 20) -> tuple[list[TxnSummary], IncompleteReport]: ...
