"""`pond maintain`: compact, checkpoint and clean both tables and the blob store, under
the write lock.

Compaction rewrites a partition's files into one without changing a row, so no version is
ever lost. Cleaning removes only what no version references and only once it is older
than the retention window (readers in flight keep their files): files replaced by
compaction or left by a crashed write, `.tmp-*` files a crash left, and blobs no row of
any version references (rolled-back transactions, superseded snapshots). The lock file
lives outside both tables and the blob store; nothing here touches it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .. import seriescache
from ..errors import PondError
from ..storage import checkpoints, tableread, upkeep
from ..storage.blobs import BlobStore
from .control import conform
from .steward import Steward, crash_point


def maintain(
    steward: Steward, blob_store: BlobStore, retention_hours: float | None = None
) -> dict[str, Any]:
    """`retention_hours` None: each table's configured window (`Pond.retention()`)."""
    retention_s = None if retention_hours is None else max(0.0, float(retention_hours) * 3600)
    report: dict[str, Any] = {}
    with steward.locked():
        for table in (steward.data, steward.control):
            # a pond created before issue 17 gets the properties that state its window
            window = upkeep.retention_seconds(table.dt.metadata().description)
            upkeep.set_retention(table.dt, table.path, window)
        data = steward.data
        data.refresh()
        before = data.file_count()
        compacted = [p for p in data.partitions() if data.compact_partition(p)]
        crash_point("maintain_after_compact")
        vacuumed = checkpoints.checkpoint(data.path, "pond_txn", retention_s, full=True)
        report["data"] = {
            "files_before": before,
            "files_after": data.file_count(),
            "partitions_compacted": len(compacted),
            "files_vacuumed": vacuumed,
            "version": data.version(),
        }
        crash_point("maintain_after_data")
        control = steward.control
        control.evolve_schema()  # compacted files carry every column: the table must too
        control.dt.update_incremental()
        actions = tableread.add_actions(control.dt)
        files = actions.column("path").to_pylist()
        if len(files) > 1:
            merged = pa.concat_tables(
                [conform(tableread.read_parquet(control.path / f)) for f in files]
            )
            upkeep.compact(control, control.path, files, merged, log=control.log)
        crash_point("maintain_after_control_compact")
        vacuumed = checkpoints.checkpoint(control.path, retention_s=retention_s, full=True)
        control.catch_up()  # the compaction's commit is not applied to the handle
        report["control"] = {
            "files_before": len(files),
            "files_after": min(len(files), 1),
            "files_vacuumed": vacuumed,
            "version": control.log_version(),
        }
        crash_point("maintain_before_blobs")
        # Blobs belong to the data table: its window applies unless one is given.
        window = (
            upkeep.retention_seconds(data.description()) if retention_s is None else retention_s
        )
        blobs, temps = blob_store.collect_garbage(data.referenced_hashes(), window)
        report["blobs"] = {"removed": blobs, "temp_files_removed": temps}
        report["series_cache"] = {"removed": prune_series_cache(steward)}
    return report


def prune_series_cache(steward: Steward) -> int:
    """Remove series read cache files (duckpond/seriescache.py) that no longer match their
    node's live versions, and crashed writes' temporary files: derived data, never needed."""
    base = steward.root / "cache" / "series"
    removed = 0
    for part_dir in sorted(base.glob("*")) if base.is_dir() else []:
        for node_dir in sorted(part_dir.glob("*")):
            try:
                live = steward.fs.series_live_versions(part_dir.name, node_dir.name) or None
            except (PondError, KeyError, ValueError):
                live = None
            removed += seriescache.prune(node_dir, live)
        try:
            part_dir.rmdir()  # only when empty
        except OSError:
            pass
    return removed
