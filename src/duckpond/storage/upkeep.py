"""Keeping a Delta table small and fast within its retention window: the window itself
(a table's description and the Delta properties that state it to other engines), vacuum,
compaction and log pruning (with the archive of pruned commits' metadata). Checkpoints
(storage/checkpoints.py) run the upkeep; CHECKPOINT_EVERY says how often."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from .deltacommit import LogView, TableLog, commit
from .durability import fsync_dir, replace_synced, sync_commit, unlink_if_older
from .parquetwrite import FileAction, write_file
from .pqread import pq  # pyarrow.parquet, imported on first use
from .tableread import ARCHIVE_DIR, ARCHIVE_SCHEMA, has_commits_after

if TYPE_CHECKING:
    from deltalake import DeltaTable

# Opening a table replays the log entries since its last checkpoint.
CHECKPOINT_EVERY = 100
# The retention window: a file a table no longer references (replaced by compaction, or
# never committed) stays on disk this long, so that readers that listed it (pond processes,
# other Delta readers at a recent version) can still read it. Kept as `retention_s` in the
# table's description (JSON; Delta accepts no custom table properties here). Every
# checkpoint vacuums what is older (see vacuum()).
RETENTION_KEY = "retention_s"
DEFAULT_RETENTION_S = 3600.0
# `delta.deletedFileRetentionDuration` states the retention window to other engines: their
# VACUUM (delta-rs, Spark) at its default retention then deletes nothing the pond keeps.
# The pond's checkpoints keep a tombstone per replaced file only for min(window,
# TOMBSTONE_MAX_S): kept for the whole window they would pile up into every open and every
# checkpoint written (two per write in the control table). The window does not need them:
# compaction stamps a replaced file's mtime with its removal time, which is what vacuum()
# and other engines' full VACUUM measure; a VACUUM that only deletes tombstoned files
# (delta-rs's default) deletes less, never more.
TOMBSTONE_KEY = "delta.deletedFileRetentionDuration"
TOMBSTONE_MAX_S = 60.0
# Log entries stay this long after a checkpoint made them unneeded, so other Delta readers
# can time travel to a recent version by number or by timestamp (Delta's own property; a
# table without it gets Delta's default, 30 days). The pond sets it to the retention window
# (time travel also needs the old version's files, kept that long) and prunes by it, no
# further. A table whose property is still LEGACY_LOG_RETENTION (written by ponds before
# issue 17) keeps the old rule, at most about LOG_KEEP_MAX_VERSIONS versions, until `pond
# retention` or `pond maintain` sets the properties.
LOG_RETENTION_KEY = "delta.logRetentionDuration"
DEFAULT_LOG_RETENTION = "interval 30 days"
LEGACY_LOG_RETENTION = "interval 7 days"
LOG_KEEP_MAX_VERSIONS = 500


def retention_properties(seconds: float) -> dict[str, str]:
    """The Delta table properties that state a retention window of `seconds`."""
    value = format_interval(seconds)
    return {TOMBSTONE_KEY: value, LOG_RETENTION_KEY: value}


def format_interval(seconds: float) -> str:
    if float(seconds).is_integer():
        return f"interval {int(seconds)} seconds"
    return f"interval {round(seconds * 1000)} milliseconds"


# The properties a new table is created with (the default window).
TABLE_CONFIG = retention_properties(DEFAULT_RETENTION_S)


def _description(text: str | None) -> dict[str, Any]:
    try:
        desc = json.loads(text or "{}")
    except ValueError:
        return {}
    return desc if isinstance(desc, dict) else {}


def retention_seconds(description: str | None) -> float:
    """The retention window in seconds a table's description holds (default one hour)."""
    value = _description(description).get(RETENTION_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return DEFAULT_RETENTION_S


def set_retention(dt: DeltaTable, table_dir: Path, seconds: float) -> None:
    """Set the retention window (metadata commits, made durable), and the Delta properties
    that state it to other engines (retention_properties). Caller holds the write lock."""
    dt.update_incremental()
    desc = _description(dt.metadata().description)
    if desc.get(RETENTION_KEY) != seconds:
        desc[RETENTION_KEY] = seconds
        dt.alter.set_table_description(json.dumps(desc, sort_keys=True))
        sync_commit(table_dir, dt.version())
    want = retention_properties(seconds)
    config = dt.metadata().configuration
    if any(config.get(k) != v for k, v in want.items()):
        dt.alter.set_table_properties(want)
        sync_commit(table_dir, dt.version())


def vacuum(
    table_dir: Path,
    version: int,
    live: set[str],
    retention_s: float,
    since: float | None = None,
) -> int:
    """Delete what no version within the retention window needs; returns the count.

    That is every Parquet file the latest snapshot does not reference whose mtime is older
    than the window (compaction stamps a replaced file's mtime with its removal time, and a
    file from a crashed write was never referenced), and `.tmp-*` files left in the log by
    a crash. `live` holds the (decoded) paths of the files the table's latest `version`
    references; the caller must hold the write lock (a writer's files are unreferenced
    until its commit). Deleting is idempotent: a crash
    halfway leaves a valid table.

    `since` (epoch seconds) skips partition directories unchanged since then: a file
    turns into garbage when its partition gains a file (compaction's output, a crashed
    write's file), which moves the directory's mtime, so a directory older than the
    previous vacuum's cutoff holds no garbage that vacuum left. Checkpoints pass it, so
    upkeep does not stat every partition of a pond with many directories.
    """
    if has_commits_after(table_dir, version):
        return 0  # the snapshot is stale: its file list cannot tell garbage apart
    cutoff = time.time() - retention_s
    removed = 0
    for dirpath, dirnames, filenames in os.walk(table_dir):
        if dirpath == str(table_dir):
            # `_delta_log`, `_pond_archive` and other `_`/`.` names are not data (Delta).
            dirnames[:] = [
                d
                for d in dirnames
                if not d.startswith(("_", "."))
                and (since is None or mtime(os.path.join(dirpath, d)) >= since)
            ]
        for name in filenames:
            if not name.endswith(".parquet") or name.startswith(("_", ".")):
                continue
            full = os.path.join(dirpath, name)
            if os.path.relpath(full, table_dir) in live:
                continue
            removed += unlink_if_older(full, cutoff)
    for sub in ("_delta_log", ARCHIVE_DIR):
        if (table_dir / sub).is_dir():
            for entry in os.scandir(table_dir / sub):
                if entry.name.startswith(".tmp-"):
                    removed += unlink_if_older(entry.path, cutoff)
    return removed


def mtime(path: str | Path) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


# Margin for `since`: mtimes and the clock are read at slightly different moments.
VACUUM_SLACK_S = 60.0


def _stamp_removed(table_dir: Path, files: list[str]) -> dict[str, int]:
    """Set replaced files' mtime to now (the retention window counts from their removal);
    returns their sizes, which their remove actions carry."""
    sizes: dict[str, int] = {}
    for f in files:
        full = table_dir / unquote(f)
        try:
            os.utime(full)
            sizes[f] = full.stat().st_size
        except FileNotFoundError:
            pass
    return sizes


def compact(
    view: LogView,
    table_dir: Path,
    files: list[str],
    merged: pa.Table,
    partition_values: dict[str, str] | None = None,
    log: TableLog | None = None,
    first_group: int = 0,
) -> tuple[int, FileAction]:
    """Replace `files` by one file holding `merged` (their rows), without changing data
    (both sides `dataChange: false`, so readers of the change stream skip it);
    `first_group` as for write_file.

    Returns the commit's version and the new file; the caller applies both to its view
    (the view is not advanced: that would re-read the log)."""
    add = write_file(table_dir, merged, partition_values, first_group)
    add.data_change = False
    sizes = _stamp_removed(table_dir, files)
    pv = dict(partition_values or {})
    removes = [
        FileAction(f, sizes.get(f, 0), pv, 0, 0, remove=True, data_change=False) for f in files
    ]
    version = commit(
        view,
        table_dir,
        [add, *removes],
        operation="OPTIMIZE",
        metadata={"pond_maintenance": "compact"},
        log=log,
    )
    return version, add


def parse_interval(text: str | None) -> float | None:
    """Seconds in a Delta interval property (`interval 7 days`), or None if unreadable."""
    parts = (text or "").strip().lower().split()
    if len(parts) == 3 and parts[0] == "interval":
        parts = parts[1:]
    if len(parts) != 2:
        return None
    try:
        n = float(parts[0])
    except ValueError:
        return None
    unit = parts[1].rstrip("s")
    scale = _INTERVAL_UNITS.get(unit)
    return None if scale is None or n < 0 else n * scale


_INTERVAL_UNITS = {
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
}


def log_retention_seconds(configuration: dict[str, str]) -> float:
    """How long log entries are kept (`delta.logRetentionDuration`; Delta's default, 30
    days, for a table without it)."""
    value = parse_interval(configuration.get(LOG_RETENTION_KEY))
    return value if value is not None else float(parse_interval(DEFAULT_LOG_RETENTION) or 0)


def _entry_mtime(log: Path, version: int) -> float:
    """A log entry's mtime; one removed meanwhile (another pruner) counts as old."""
    try:
        return (log / f"{version:020d}.json").stat().st_mtime
    except FileNotFoundError:
        return 0.0


def prune_log(
    table_dir: Path,
    keep_from: int,
    archive_key: str | None,
    log_retention_s: float = 0.0,
    tip: int | None = None,
) -> None:
    """Remove log entries and checkpoints older than the oldest version still to be kept.

    That is `keep_from` (the previous checkpoint), moved back to the checkpoint from which
    every version committed within `log_retention_s` can be rebuilt (a reader at version
    v needs a checkpoint at or before v and every entry after it); with `tip` (a table
    with the legacy property, see LOG_RETENTION_KEY) not further back than the checkpoint
    nearest below `tip - LOG_KEEP_MAX_VERSIONS`. Ages are the entries' mtimes, as Delta's
    own log cleanup measures them."""
    log = table_dir / "_delta_log"
    # Versions only (plain ints): a log kept for an hour of busy writing holds tens of
    # thousands of entries, and an object per entry was a ~12 MB burst per checkpoint.
    entries: list[int] = []
    checkpoints: list[int] = []
    for name in os.listdir(log):
        stem, _, rest = name.partition(".")
        if stem.isdigit() and rest == "json":
            entries.append(int(stem))
        elif stem.isdigit() and rest == "checkpoint.parquet":
            checkpoints.append(int(stem))
    entries.sort()
    checkpoints.sort()
    if log_retention_s > 0:
        cutoff = time.time() - log_retention_s
        # The oldest entry committed within the window: only the older entries (about to
        # be pruned) and that one are stat'ed, not the whole log.
        first = next((v for v in entries if _entry_mtime(log, v) >= cutoff), None)
        if first is not None:
            # the newest checkpoint at or before the oldest recent version
            below = [c for c in checkpoints if c <= first]
            keep_from = min(keep_from, below[-1] if below else first)
        if tip is not None and checkpoints:
            floor = [c for c in checkpoints if c <= tip - LOG_KEEP_MAX_VERSIONS]
            if floor:
                keep_from = max(keep_from, floor[-1])
    old = [(v, log / f"{v:020d}.json") for v in entries if v < keep_from]
    old += [(v, log / f"{v:020d}.checkpoint.parquet") for v in checkpoints if v < keep_from]
    if not old:
        return
    if archive_key is not None:
        rows: dict[str, list[Any]] = {"version": [], "timestamp": [], "metadata": []}
        for version, path in sorted(old):
            if not path.name.endswith(".json"):
                continue
            for line in path.read_text().splitlines():
                info = json.loads(line).get("commitInfo") if line.strip() else None
                if info and info.get(archive_key):
                    rows["version"].append(version)
                    rows["timestamp"].append(int(info.get("timestamp", 0)))
                    rows["metadata"].append(info[archive_key])
        if rows["version"]:
            arch = table_dir / ARCHIVE_DIR
            arch.mkdir(exist_ok=True)
            name = f"{rows['version'][0]:020d}-{rows['version'][-1]:020d}.parquet"
            table = pa.table(rows, schema=ARCHIVE_SCHEMA)
            replace_synced(arch / name, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
            fsync_dir(arch)
    for _, path in old:
        path.unlink(missing_ok=True)
    fsync_dir(log)
