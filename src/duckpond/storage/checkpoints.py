"""Delta checkpoints, written by the pond from its own log reader, and the upkeep that
follows one (log pruning, vacuum).

A checkpoint written through delta-rs needs a delta-rs handle: in a long-lived pond that
was ~50 MB of resident memory and ~125 runtime threads that never went away, growing with
every checkpoint (bench group `memory`, benchmark 12), and in a `pond` process it is
~40 ms of importing and opening deltalake. The pond reads the log itself (deltalog), so
it writes the checkpoint itself too: a classic single-file checkpoint as the Delta
protocol defines it, one row per action (protocol, metadata, application transactions,
live files with their JSON statistics, and the remove tombstones that have not expired),
with the same columns delta-rs gives its checkpoints, zstd-compressed. A log the pond's
reader does not handle (deltalog.Unsupported: features of other engines) is checkpointed
by delta-rs as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from . import deltalog
from .durability import fsync_dir, fsync_file, replace_synced
from .pqread import pq
from .tableread import last_checkpoint_version
from .upkeep import (
    LEGACY_LOG_RETENTION,
    LOG_RETENTION_KEY,
    TOMBSTONE_KEY,
    TOMBSTONE_MAX_S,
    VACUUM_SLACK_S,
    log_retention_seconds,
    mtime,
    parse_interval,
    prune_log,
    retention_seconds,
    vacuum,
)

_MAP = pa.map_(pa.string(), pa.string())
_DELETION_VECTOR = pa.struct(
    [
        pa.field("storageType", pa.string(), nullable=False),
        pa.field("pathOrInlineDv", pa.string(), nullable=False),
        pa.field("offset", pa.int32()),
        pa.field("sizeInBytes", pa.int32(), nullable=False),
        pa.field("cardinality", pa.int64(), nullable=False),
    ]
)
_STRINGS = pa.list_(pa.field("element", pa.string(), nullable=False))
# The checkpoint's columns: one struct per action type (Delta protocol, "Checkpoint Schema").
CHECKPOINT_SCHEMA = pa.schema(
    [
        pa.field(
            "add",
            pa.struct(
                [
                    pa.field("path", pa.string(), nullable=False),
                    pa.field("partitionValues", _MAP, nullable=False),
                    pa.field("size", pa.int64(), nullable=False),
                    pa.field("modificationTime", pa.int64(), nullable=False),
                    pa.field("dataChange", pa.bool_(), nullable=False),
                    pa.field("stats", pa.string()),
                    pa.field("tags", _MAP),
                    pa.field("deletionVector", _DELETION_VECTOR),
                    pa.field("baseRowId", pa.int64()),
                    pa.field("defaultRowCommitVersion", pa.int64()),
                    pa.field("clusteringProvider", pa.string()),
                ]
            ),
        ),
        pa.field(
            "remove",
            pa.struct(
                [
                    pa.field("path", pa.string(), nullable=False),
                    pa.field("deletionTimestamp", pa.int64()),
                    pa.field("dataChange", pa.bool_(), nullable=False),
                    pa.field("extendedFileMetadata", pa.bool_()),
                    pa.field("partitionValues", _MAP),
                    pa.field("size", pa.int64()),
                    pa.field("stats", pa.string()),
                    pa.field("tags", _MAP),
                    pa.field("deletionVector", _DELETION_VECTOR),
                    pa.field("baseRowId", pa.int64()),
                    pa.field("defaultRowCommitVersion", pa.int64()),
                ]
            ),
        ),
        pa.field(
            "metaData",
            pa.struct(
                [
                    pa.field("id", pa.string(), nullable=False),
                    pa.field("name", pa.string()),
                    pa.field("description", pa.string()),
                    pa.field(
                        "format",
                        pa.struct(
                            [
                                pa.field("provider", pa.string(), nullable=False),
                                pa.field("options", _MAP, nullable=False),
                            ]
                        ),
                        nullable=False,
                    ),
                    pa.field("schemaString", pa.string(), nullable=False),
                    pa.field("partitionColumns", _STRINGS, nullable=False),
                    pa.field("createdTime", pa.int64()),
                    pa.field("configuration", _MAP, nullable=False),
                ]
            ),
        ),
        pa.field(
            "protocol",
            pa.struct(
                [
                    pa.field("minReaderVersion", pa.int32(), nullable=False),
                    pa.field("minWriterVersion", pa.int32(), nullable=False),
                    pa.field("readerFeatures", _STRINGS),
                    pa.field("writerFeatures", _STRINGS),
                ]
            ),
        ),
        pa.field(
            "txn",
            pa.struct(
                [
                    pa.field("appId", pa.string(), nullable=False),
                    pa.field("version", pa.int64(), nullable=False),
                    pa.field("lastUpdated", pa.int64()),
                ]
            ),
        ),
        pa.field(
            "domainMetadata",
            pa.struct(
                [
                    pa.field("domain", pa.string(), nullable=False),
                    pa.field("configuration", pa.string(), nullable=False),
                    pa.field("removed", pa.bool_(), nullable=False),
                ]
            ),
        ),
        pa.field(
            "sidecar",
            pa.struct(
                [
                    pa.field("path", pa.string(), nullable=False),
                    pa.field("sizeInBytes", pa.int64(), nullable=False),
                    pa.field("modificationTime", pa.int64(), nullable=False),
                    pa.field("tags", _MAP),
                ]
            ),
        ),
    ]
)
_REMOVE: pa.StructType = CHECKPOINT_SCHEMA.field("remove").type
# Tombstones per row group of a checkpoint: what writing (and reading) one costs in memory.
CHECKPOINT_GROUP_ROWS = 4096
# A zero-byte file at the table's root whose mtime is when the last vacuum started
# (Delta readers ignore `_` names). Automatic upkeep vacuums again only once a fraction of
# the retention window has passed (at most VACUUM_EVERY_MAX_S): garbage is deleted at most
# that much later than the window says, and a checkpoint does not stat every file still
# inside the window (a busy hour leaves tens of thousands). `pond maintain` always does.
VACUUM_MARK = "_pond_vacuumed"
VACUUM_EVERY = 1 / 8
VACUUM_EVERY_MAX_S = 300.0
# Delta's default for delta.deletedFileRetentionDuration (one week).
DEFAULT_TOMBSTONE_S = 7 * 86400.0


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """A map value as key/value pairs (the log has objects, a checkpoint pairs)."""
    if isinstance(value, dict):
        return list(value.items())
    return [(str(k), v) for k, v in value or []]


def _rows(snap: deltalog.Snapshot) -> dict[str, list[Any]]:
    """Each column's values, one row per action but the removes (None where a row is
    another action)."""
    meta = snap.metadata
    fmt = meta.get("format") or {}
    rows: list[tuple[str, dict[str, Any]]] = [
        (
            "protocol",
            {
                "minReaderVersion": int(snap.protocol["minReaderVersion"]),
                "minWriterVersion": int(snap.protocol["minWriterVersion"]),
                "readerFeatures": snap.protocol.get("readerFeatures"),
                "writerFeatures": snap.protocol.get("writerFeatures"),
            },
        ),
        (
            "metaData",
            {
                "id": meta["id"],
                "name": meta.get("name"),
                "description": meta.get("description"),
                "format": {
                    "provider": fmt.get("provider") or "parquet",
                    "options": _pairs(fmt.get("options")),
                },
                "schemaString": meta["schemaString"],
                "partitionColumns": list(meta.get("partitionColumns") or []),
                "createdTime": meta.get("createdTime"),
                "configuration": _pairs(meta.get("configuration")),
            },
        ),
    ]
    for app, version in sorted(snap.txns.items()):
        rows.append(
            ("txn", {"appId": app, "version": version, "lastUpdated": snap.txn_updated.get(app)})
        )
    for f in snap.files.values():
        rows.append(
            (
                "add",
                {
                    "path": f.path,
                    "partitionValues": _pairs(f.partition_values),
                    "size": f.size,
                    "modificationTime": f.modification_time,
                    # a checkpoint restates the table, it changes no data (as delta-rs)
                    "dataChange": False,
                    "stats": f.stats,
                },
            )
        )
    columns: dict[str, list[Any]] = {name: [None] * len(rows) for name in CHECKPOINT_SCHEMA.names}
    for i, (name, value) in enumerate(rows):
        columns[name][i] = value
    return columns


def _tombstone_cutoff_ms(snap: deltalog.Snapshot, now_ms: int) -> int:
    """Removes deleted before this are expired: kept for min(the table's
    `delta.deletedFileRetentionDuration`, TOMBSTONE_MAX_S), see upkeep.TOMBSTONE_KEY."""
    window = parse_interval(snap.configuration.get(TOMBSTONE_KEY))
    keep = min(DEFAULT_TOMBSTONE_S if window is None else window, TOMBSTONE_MAX_S)
    return int(now_ms - keep * 1000)


def _nulls(n: int, type_: pa.DataType) -> pa.Array:
    """`n` nulls of `type_`; a struct's non-nullable fields get values under them, as
    Parquet writers require (pa.nulls leaves them null)."""
    return pa.array([None] * n, type_)


def _kept_runs(keep: list[bool]) -> list[tuple[int, int]]:
    """(offset, length) of each run of kept rows: slices instead of a filter, which would
    import pyarrow.compute (~50 ms) into a `pond` process whose commit checkpoints."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, k in enumerate(keep + [False]):
        if k and start is None:
            start = i
        elif not k and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def _old_removes(snap: deltalog.Snapshot, cutoff_ms: int) -> pa.StructArray | None:
    """The previous checkpoint's tombstones that still stand and have not expired, as the
    checkpoint's `remove` struct, without a Python object per row."""
    old = snap.checkpoint_removes
    if old is None or len(old) == 0:
        return None
    cols = dict(zip([f.name for f in old.type], old.flatten(), strict=True))
    paths = cols["path"].to_pylist()
    stamp = cols.get("deletionTimestamp")
    stamps = stamp.to_pylist() if stamp is not None else [None] * len(paths)
    keep = [
        p is not None and s is not None and s >= cutoff_ms and not snap.superseded(p)
        for p, s in zip(paths, stamps, strict=True)
    ]
    runs = _kept_runs(keep)
    n = sum(length for _, length in runs)
    if n == 0:
        return None
    kept: dict[str, pa.Array] = {}
    for field in _REMOVE:
        col = cols.get(field.name)
        if col is not None:
            col = col if col.type == field.type else col.cast(field.type)
            kept[field.name] = pa.concat_arrays([col.slice(o, k) for o, k in runs])
    return _remove_struct(n, kept)


def _new_removes(snap: deltalog.Snapshot, cutoff_ms: int) -> pa.StructArray | None:
    """The tombstones of the commits after the previous checkpoint (at most a hundred
    commits' worth) that have not expired, as the checkpoint's `remove` struct."""
    kept = [
        t
        for t in snap.removes.values()
        if t.deletion_timestamp is not None and t.deletion_timestamp >= cutoff_ms
    ]
    if not kept:
        return None
    values: dict[str, list[Any]] = {
        "path": [t.path for t in kept],
        "deletionTimestamp": [int(t.deletion_timestamp or 0) for t in kept],
        "dataChange": [t.data_change for t in kept],
        "extendedFileMetadata": [t.extended_file_metadata for t in kept],
        "partitionValues": [_pairs(t.partition_values) for t in kept],
        "size": [t.size for t in kept],
    }
    return _remove_struct(
        len(kept), {k: pa.array(v, _REMOVE.field(k).type) for k, v in values.items()}
    )


def _remove_struct(n: int, columns: dict[str, pa.Array]) -> pa.StructArray:
    """The checkpoint's `remove` struct of `n` rows from the fields given (nulls for
    the others)."""
    children = [columns[f.name] if f.name in columns else _nulls(n, f.type) for f in _REMOVE]
    return pa.StructArray.from_arrays(children, fields=list(_REMOVE))


def _checkpoint_pieces(snap: deltalog.Snapshot, now_ms: int) -> Iterator[pa.Table]:
    """One row per action: protocol, metadata, txns, live files, then the tombstones, in
    tables of at most CHECKPOINT_GROUP_ROWS tombstones. A checkpoint row holds a slot in
    every action's columns (~300 bytes of nulls each): built whole, 10,000 tombstones were
    3 MB, and ~11 MB of Arrow memory once written as one row group (bench 12)."""
    yield pa.Table.from_pydict(_rows(snap), schema=CHECKPOINT_SCHEMA)
    cutoff = _tombstone_cutoff_ms(snap, now_ms)
    for removes in (_old_removes(snap, cutoff), _new_removes(snap, cutoff)):
        if removes is None:
            continue
        for at in range(0, len(removes), CHECKPOINT_GROUP_ROWS):
            piece = removes.slice(at, CHECKPOINT_GROUP_ROWS)
            columns = [
                piece if f.name == "remove" else _nulls(len(piece), f.type)
                for f in CHECKPOINT_SCHEMA
            ]
            yield pa.Table.from_arrays(columns, schema=CHECKPOINT_SCHEMA)


def _write_pieces(pieces: Iterator[pa.Table], path: Path) -> int:
    """Write the tables as the row groups of one Parquet file; returns the rows written."""
    rows = 0
    with pq.ParquetWriter(path, CHECKPOINT_SCHEMA, compression="zstd", store_schema=False) as w:
        for piece in pieces:
            w.write_table(piece, row_group_size=CHECKPOINT_GROUP_ROWS)
            rows += piece.num_rows
    return rows


def write_checkpoint(snap: deltalog.Snapshot) -> int:
    """Write the checkpoint of `snap` (loaded with statistics and tombstones) and point
    `_last_checkpoint` at it, both synced; returns its version. Each file is written
    under a temporary name and renamed into place, so a reader never sees half of one
    (a crash leaves a `.tmp-*` file, which vacuum removes)."""
    log = snap.table_dir / "_delta_log"
    pieces = _checkpoint_pieces(snap, int(time.time() * 1000))
    name = f"{snap.version:020d}.checkpoint.parquet"
    rows = [0]

    def write(tmp: Path) -> None:
        rows[0] = _write_pieces(pieces, tmp)

    size = replace_synced(log / name, write)
    hint = json.dumps(
        {
            "version": snap.version,
            "size": rows[0],
            "sizeInBytes": size,
            "numOfAddFiles": len(snap.files),
        },
        separators=(",", ":"),
    )
    replace_synced(log / "_last_checkpoint", lambda tmp: tmp.write_text(hint))
    fsync_dir(log)
    return snap.version


def _delta_rs_checkpoint(table_dir: Path) -> tuple[int, set[str], dict[str, str], str | None]:
    """A checkpoint by delta-rs, for a log the pond's reader does not handle."""
    from .logcheck import open_table  # imports deltalake
    from .tableread import add_actions

    dt = open_table(table_dir)
    dt.create_checkpoint()
    log = table_dir / "_delta_log"
    for name in (f"{dt.version():020d}.checkpoint.parquet", "_last_checkpoint"):
        if (log / name).exists():
            fsync_file(log / name)
    fsync_dir(log)
    live = {unquote(p) for p in add_actions(dt).column("path").to_pylist()}
    meta = dt.metadata()
    return dt.version(), live, dict(meta.configuration or {}), meta.description


def checkpoint(
    table_dir: Path,
    archive_key: str | None = None,
    retention_s: float | None = None,
    full: bool = False,
) -> int:
    """Take a synced checkpoint, prune log entries past their retention, then vacuum files
    older than the retention window (the table's own unless `retention_s` is given);
    returns the number of files vacuumed. Not `full`: no vacuum if the previous one is
    recent (VACUUM_EVERY), and only partitions changed since the previous vacuum could
    have garbage left (see upkeep.vacuum()).

    Log entries are kept for `delta.logRetentionDuration` (the pond sets it to the
    retention window) so other readers can time travel, and always back to the previous
    checkpoint (readers still catching up); a table with the legacy property keeps at most
    about LOG_KEEP_MAX_VERSIONS versions (upkeep.LOG_RETENTION_KEY). With
    `archive_key`, that custom commit metadata (the data table's `pond_txn`) of pruned
    entries is first saved to an archive. Vacuuming here keeps disk use flat without
    anyone running `pond maintain`: a checkpoint has just read the snapshot it needs.
    """
    previous = last_checkpoint_version(table_dir)
    try:
        snap = deltalog.Snapshot.load(table_dir, stats=True, tombstones=True)
    except deltalog.Unsupported:
        version, live, config, description = _delta_rs_checkpoint(table_dir)
    else:
        version = write_checkpoint(snap)
        live, config, description = set(snap.files), snap.configuration, snap.description
    legacy = config.get(LOG_RETENTION_KEY) == LEGACY_LOG_RETENTION
    prune_log(
        table_dir, previous, archive_key, log_retention_seconds(config), version if legacy else None
    )
    window = retention_seconds(description) if retention_s is None else retention_s
    mark = table_dir / VACUUM_MARK
    last = mtime(mark)  # when the previous vacuum started (0: none recorded)
    now = time.time()
    if not full and last and now - last < min(window * VACUUM_EVERY, VACUUM_EVERY_MAX_S):
        return 0
    since = None if full or not last else last - window - VACUUM_SLACK_S
    mark.touch()
    os.utime(mark, (now, now))
    return vacuum(table_dir, version, live, window, since)
