"""`pond maintain`: checkpoint, compact and clean both tables, under the write lock.

Compaction rewrites a partition's files into one without changing a row, so no version is
ever lost; blobs and the lock file live outside both Delta directories, out of vacuum's reach.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..storage import deltafiles
from .control import conform

if TYPE_CHECKING:
    from ..pond import Pond


def maintain(pond: Pond, retention_hours: float = 1.0) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with pond.steward.locked():
        data = pond.data
        data.refresh()
        before = data.file_count()
        compacted = [p for p in data.partitions() if data.compact_partition(p)]
        deltafiles.checkpoint(data.dt, data.path, archive_key="pond_txn")
        report["data"] = {
            "files_before": before,
            "files_after": data.file_count(),
            "partitions_compacted": len(compacted),
            **_clean(data.dt, retention_hours),
            "version": data.version(),
        }
        control = pond.control
        control.evolve_schema()  # compacted files carry every column: the table must too
        control.dt.update_incremental()
        actions = deltafiles.add_actions(control.dt)
        files = actions.column("path").to_pylist()
        if len(files) > 1:
            merged = pa.concat_tables(
                [conform(deltafiles.read_parquet(control.path / f)) for f in files]
            )
            deltafiles.compact(control.dt, control.path, files, merged)
        deltafiles.checkpoint(control.dt, control.path)
        report["control"] = {
            "files_before": len(files),
            "files_after": min(len(files), 1),
            **_clean(control.dt, retention_hours),
            "version": control.dt.version(),
        }
    return report


def _clean(dt: Any, retention_hours: float) -> dict[str, Any]:
    # vacuum takes whole hours: round up, so a fractional window never removes a file
    # a reader in flight may still need (int() made 0.5 mean 0).
    removed = dt.vacuum(
        retention_hours=max(0, math.ceil(retention_hours)),
        dry_run=False,
        enforce_retention_duration=False,
    )
    # No cleanup_metadata(): checkpoint() prunes the log itself, archiving pond_txn first.
    return {"files_vacuumed": len(removed)}
