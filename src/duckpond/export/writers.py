"""Writing one series' rows to the destination, as Hive-partitioned Parquet or as Delta.

How a re-export replaces the previous one without a reader ever seeing half of it:
- Delta: one `overwrite` commit (deltalake). A reader sees the table before or after it;
  the files it replaced are removed by `vacuum` only after the table's retention window
  (7 days), so a reader still on the old version keeps working.
- Parquet in a local directory: the series' new tree is written complete (files synced)
  under DIR/_pond_export_tmp/, then swapped in with two renames (old tree aside, new tree
  in) and the old tree deleted. A reader listing in between the renames finds the series
  missing for that instant, never a mix of two exports.
- Parquet on s3://: object stores have no rename. Each partition is one object with a
  fixed name (`.../year=2024/month=05/data.parquet`), replaced by a single atomic PUT,
  then partitions that no longer exist are deleted: every file a reader opens is whole,
  but a reader listing during the export may see some partitions of the previous export.
  Use the delta format when readers need one export exactly.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import TYPE_CHECKING

from ..crashpoints import crash_point
from ..errors import PondError, clip
from ..storage.durability import fsync_dir, fsync_file
from . import partition
from .spec import STAGING, Dest

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from ..storage.objstore import ObjectStore

FILE_NAME = "data.parquet"
# Delta: files replaced by an overwrite stay this long for readers still on the old version.
VACUUM_HOURS = 168


class ExportError(PondError):
    pass


def pieces(
    path: str, table: pa.Table, tc: str | None, parts: tuple[str, ...]
) -> list[tuple[str, pa.Table]]:
    """(relative directory, rows) of each partition; one piece at the top without
    partitioning (or without rows, so the schema is still published)."""
    if not parts or tc is None or table.num_rows == 0:
        return [("", table)]
    table, values = partition.columns(path, table, tc, parts)
    return [(partition.directory(labels), rows) for labels, rows in partition.split(table, values)]


def file_keys(rel: str, dirs: list[str]) -> list[str]:
    return [f"{rel}/{d}/{FILE_NAME}" if d else f"{rel}/{FILE_NAME}" for d in dirs]


def _parquet(table: pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def write_parquet(
    dest: Dest, store: ObjectStore, rel: str, parts: list[tuple[str, pa.Table]], old: list[str]
) -> list[str]:
    """Write the pieces under DIR/rel; returns the keys written. `old`: the keys the
    previous export of this series wrote (on s3, those not rewritten are deleted)."""
    keys = file_keys(rel, [d for d, _ in parts])
    if dest.local is not None:
        _swap_local(dest.local, rel, parts)
        return keys
    for key, (_, rows) in zip(keys, parts, strict=True):
        store.put(key, _parquet(rows))
    for key in sorted(set(old) - set(keys)):
        store.delete(key)
    return keys


def _swap_local(root: Path, rel: str, parts: list[tuple[str, pa.Table]]) -> None:
    import pyarrow.parquet as pq

    staging = root / STAGING
    token = uuid.uuid4().hex
    new = staging / token
    for d, rows in parts:
        folder = new / d if d else new
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, folder / FILE_NAME)
        fsync_file(folder / FILE_NAME)
        fsync_dir(folder)
    crash_point("export_staged")  # the new tree is whole; the old one still in place
    target = root / rel
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ExportError(f"{target} is in the way (not a directory an export wrote)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        aside = staging / f"{token}.old"
        os.rename(target, aside)
        crash_point("export_between_renames")  # the one instant the series is absent
        os.rename(new, target)
        shutil.rmtree(aside)
    else:
        os.rename(new, target)
    fsync_dir(target.parent)


def remove(dest: Dest, store: ObjectStore, rel: str) -> None:
    """Delete a series' export (every object under DIR/rel, which only exports write)."""
    if dest.local is None:
        for info in store.list(f"{rel}/"):
            store.delete(info.key)
        return
    target = dest.local / rel
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    parent = target.parent
    while parent != dest.local and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def write_delta(
    dest: Dest, rel: str, table: pa.Table, tc: str | None, parts: tuple[str, ...], txn_seq: int
) -> tuple[int, int]:
    """Overwrite the Delta table at DIR/rel with `table` partitioned by `parts`; returns
    (partitions, data files) of the new version."""
    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import DeltaError

    uri = dest.uri(rel)
    storage = dest.options.delta_storage_options() or None
    table = _delta_types(table)
    by: list[str] = []
    if parts and tc is not None and table.num_rows:
        table, values = partition.columns(rel, table, tc, parts)
        for p in parts:
            table = table.append_column(pa.field(p, pa.int32(), nullable=False), values[p])
        by = list(parts)
    if dest.local is not None:
        (dest.local / rel).mkdir(parents=True, exist_ok=True)
    try:
        existing = (
            DeltaTable(uri, storage_options=storage)
            if DeltaTable.is_deltatable(uri, storage)
            else None
        )
        if existing is not None and list(existing.metadata().partition_columns) != by:
            # Another partitioning: a new table (an overwrite cannot change it).
            existing = None
            _drop_table(dest, rel)
        write_deltalake(
            uri,
            table,
            mode="overwrite",
            partition_by=by or None,
            schema_mode="overwrite",
            storage_options=storage,
            commit_properties=CommitProperties(custom_metadata={"pond_txn_seq": str(txn_seq)}),
        )
        written = DeltaTable(uri, storage_options=storage)
        written.vacuum(
            retention_hours=VACUUM_HOURS, dry_run=False, enforce_retention_duration=False
        )
        files = written.file_uris()
    except (DeltaError, OSError, ValueError, TypeError, pa.ArrowException) as e:
        reason = clip(" ".join(str(e).split()))
        raise ExportError(f"{rel}: writing the Delta table failed: {reason}") from None
    dirs = {os.path.dirname(f) for f in files}
    return (len(dirs) if by else 0), len(files)


def _drop_table(dest: Dest, rel: str) -> None:
    if dest.local is not None:
        shutil.rmtree(dest.local / rel)
        (dest.local / rel).mkdir(parents=True)
    else:
        remove(dest, dest.store(), rel)


def _delta_types(table: pa.Table) -> pa.Table:
    """Delta stores times as µs: finer ones are cut to µs (Delta cannot hold them)."""
    import pyarrow as pa

    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            fields.append(f.with_type(pa.timestamp("us", f.type.tz)))
        else:
            fields.append(f)
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema, safe=False)
