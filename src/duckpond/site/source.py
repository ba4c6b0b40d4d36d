"""What a site build reads from a pond. `Pond.site_build` calls the site, so the site names
only what it reads (a `Pond` is one) and never imports the library above it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from ..reports import IncompleteReport, TxnSummary
    from ..storage.blobs import BlobStore
    from ..storage.datatable import DataTable
    from ..storage.fs import Located


class SiteSource(Protocol):
    blobs: BlobStore

    @property
    def root(self) -> Path: ...

    @property
    def data(self) -> DataTable: ...

    def lookup(self, path: str) -> Located | None: ...

    def sql(
        self,
        query: str = ...,
        path: str | None = None,
        version: int | None = None,
        time_start: int | None = None,
        time_end: int | None = None,
    ) -> pa.Table: ...

    def control_status(self, limit: int = ...) -> tuple[list[TxnSummary], IncompleteReport]: ...
