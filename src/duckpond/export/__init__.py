"""Publishing series and tables for other engines (`pond export`, the `export` job).

Series content lives inside the pond's tables as Parquet bytes; an export writes it out as
Hive-partitioned Parquet (`DIR/<path>/year=2024/month=05/data.parquet`) or as one standard
Delta table per series, partitioned by the series' UTC time, into a local directory or an
s3:// prefix (the remotes' S3 options). Modules: spec (what was asked), partition (rows by
time), writers (Parquet, Delta, and how a re-export replaces the last one), manifest (what
earlier exports wrote), run (one export), job (the post-commit factory).
"""

from __future__ import annotations

from .run import ExportedSeries, ExportReport, export
from .spec import DEFAULT_TEMPORAL, FORMATS, TEMPORAL_PARTS

__all__ = [
    "DEFAULT_TEMPORAL",
    "FORMATS",
    "TEMPORAL_PARTS",
    "ExportReport",
    "ExportedSeries",
    "export",
]
