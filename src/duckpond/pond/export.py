"""`Pond.export`: publish series and tables for other engines (see duckpond/export/)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..steward.handles import PondHandles

if TYPE_CHECKING:
    from ..export import ExportReport
    from ..storage.objstore import StoreOptions


class ExportMethods(PondHandles):
    def export(
        self,
        patterns: str | Sequence[str],
        dir: str,
        *,
        format: str = "parquet",
        temporal: str | Sequence[str] | None = None,
        options: StoreOptions | None = None,
        rebuild: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> ExportReport:
        """Write the series and tables matching `patterns` into `dir` (a directory,
        `file:///dir` or `s3://bucket/prefix` with the remotes' S3 `options`) as
        Hive-partitioned Parquet (`format="parquet"`: DIR/<path>/year=2024/month=05/...)
        or one Delta table per series (`"delta"`), partitioned by `temporal` (a prefix of
        year,month,day,hour; default year,month; "none": not partitioned), all read at one
        pond version. A series unchanged since the last export into `dir` is left as it is
        (`rebuild`: rewrite all); a re-export replaces the previous one so that a reader
        never sees half of one (see docs/export.md)."""
        from ..export import export

        return export(
            self,
            [patterns] if isinstance(patterns, str) else list(patterns),
            dir,
            fmt=format,
            temporal=temporal,
            options=options,
            rebuild=rebuild,
            wait=self.wait,
            log=log,
        )
