"""Durable Delta appends: the pond writes and syncs its own Parquet files and `_delta_log`
entries (delta-rs does neither). Shared by the data and control tables, with their
checkpoints, log pruning and direct Parquet reads."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from ..errors import PondError
from .durability import fsync_dir, fsync_file, sync_commit, unlink_if_older

# Opening a table replays the log entries since its last checkpoint.
CHECKPOINT_EVERY = 100
# The retention window: a file a table no longer references (replaced by compaction, or
# never committed) stays on disk this long, so that readers that listed it (pond processes,
# other Delta readers at a recent version) can still read it. Kept as `retention_s` in the
# table's description (JSON; Delta accepts no custom table properties here). Every
# checkpoint vacuums what is older (see vacuum()).
RETENTION_KEY = "retention_s"
DEFAULT_RETENTION_S = 3600.0
# Checkpoints keep a tombstone per replaced file for this long (Delta's default is a week):
# they would pile up into every open and every checkpoint written (two per write in the
# control table). The window above does not need them: compaction stamps a replaced file's
# mtime with its removal time, which is what vacuum() measures.
TOMBSTONE_KEY = "delta.deletedFileRetentionDuration"
TOMBSTONE_MAX_S = 60.0
TABLE_CONFIG = {TOMBSTONE_KEY: "interval 1 minutes"}
SMALL_ROWS = 64
ROW_GROUP_ROWS = 16_384
SMALL_BYTES = 16 * 1024
NO_STATS_COLUMNS = ("content",)


@dataclass
class FileAction:
    """An add (or, for compaction, remove) of one Parquet file."""

    path: str
    size: int
    partition_values: dict[str, str]
    num_records: int
    modification_time: int
    remove: bool = False

    def to_json(self, now_ms: int) -> dict[str, Any]:
        if self.remove:
            return {
                "remove": {
                    "path": self.path,
                    "deletionTimestamp": now_ms,
                    "dataChange": False,
                    "extendedFileMetadata": True,
                    "partitionValues": self.partition_values,
                    "size": self.size,
                }
            }
        return {
            "add": {
                "path": self.path,
                "partitionValues": self.partition_values,
                "size": self.size,
                "modificationTime": self.modification_time,
                "dataChange": True,
                "stats": json.dumps({"numRecords": self.num_records}),
            }
        }


def write_file(
    table_dir: Path, table: pa.Table, partition_values: dict[str, str] | None = None
) -> FileAction:
    """Write one Parquet file into the table directory (synced); return its add action."""
    sub = "/".join(f"{k}={v}" for k, v in (partition_values or {}).items())
    name = f"part-{time.time_ns()}-{os.urandom(6).hex()}.zstd.parquet"
    rel = f"{sub}/{name}" if sub else name
    full = table_dir / rel
    if sub and not full.parent.exists():
        full.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(full.parent.parent)
    # Statistics for every column but raw contents (min/max of 1 KiB values would double a
    # small file and help no reader); no `ARROW:schema` footer entry (a base64 copy of the
    # schema, ~40 % of a one-row file): readers take the schema from the Delta log, and
    # Parquet's own logical types carry everything the pond's schemas need.
    stats = [n for n in table.column_names if n not in NO_STATS_COLUMNS]
    if table.num_rows <= SMALL_ROWS and table.nbytes <= SMALL_BYTES:
        # Per-commit appends are tiny and soon compacted: plain encoding is 3x cheaper,
        # except for contents (a directory snapshot shrinks ~3x for +0.06 ms).
        pq.write_table(
            table,
            full,
            compression={n: "zstd" if n == "content" else "none" for n in table.column_names},
            use_dictionary=False,
            write_statistics=stats,
            store_schema=False,
        )
    else:
        # Small row groups let readers skip old rows by their statistics (min_seq reads).
        pq.write_table(
            table,
            full,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            write_statistics=stats,
            store_schema=False,
        )
    fsync_file(full)
    fsync_dir(full.parent)
    st = full.stat()
    return FileAction(
        rel, st.st_size, dict(partition_values or {}), table.num_rows, int(st.st_mtime * 1000)
    )


def commit(
    dt: DeltaTable,
    table_dir: Path,
    actions: list[FileAction],
    *,
    operation: str = "WRITE",
    metadata: dict[str, str] | None = None,
    app_txn: tuple[str, int] | None = None,
    durable: bool = True,
) -> int:
    """Append one Delta commit; returns its version. `durable=False` skips only the last
    sync (the log directory): after a power loss such a commit may be missing, but the
    table is never torn, since its files and entry were synced before being linked.

    The pond writes the log entry itself rather than through delta-rs: delta-rs neither
    fsyncs nor advances its handle, and replays the log on every commit. The entry is
    written to a temp file, synced, then linked into place (put-if-absent, atomic), and the
    log directory synced. Callers hold the write lock, so a clash means a foreign writer.
    """
    log_dir = table_dir / "_delta_log"
    now_ms = int(time.time() * 1000)
    info: dict[str, Any] = {
        "timestamp": now_ms,
        "operation": operation,
        "operationParameters": {"mode": "Append"},
        "clientVersion": "duckpond",
        **(metadata or {}),
    }
    lines = [{"commitInfo": info}]
    if app_txn is not None:
        lines.append({"txn": {"appId": app_txn[0], "version": app_txn[1], "lastUpdated": now_ms}})
    lines.extend(a.to_json(now_ms) for a in actions)
    info["pond_lines"] = len(lines)  # an entry cut at a line boundary is then seen (fsck)
    body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines).encode()
    tmp = log_dir / f".tmp-{os.getpid()}-{os.urandom(6).hex()}.json"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fdatasync(f.fileno())
    try:
        for _ in range(3):
            version = _next_version(dt, table_dir)
            try:
                os.link(tmp, log_dir / f"{version:020d}.json")
            except FileExistsError:
                dt.update_incremental()
                continue
            if durable:
                fsync_dir(log_dir)
            _known_version[str(table_dir)] = version
            return version
        raise PondError(f"another process is writing {table_dir} without the pond's lock")
    finally:
        tmp.unlink(missing_ok=True)


# Last version this process committed per table: the next commit needs no log listing.
_known_version: dict[str, int] = {}


def known_version(table_dir: Path) -> int:
    """The last version this process committed to the table at `table_dir` (-1: none)."""
    return _known_version.get(str(table_dir), -1)


def _next_version(dt: DeltaTable, table_dir: Path) -> int:
    known = known_version(table_dir)
    version = max(known, dt.version()) + 1
    # A gap in the log would corrupt the table: the previous entry must exist.
    if version > 0 and not (table_dir / "_delta_log" / f"{version - 1:020d}.json").exists():
        _known_version.pop(str(table_dir), None)
        dt.update_incremental()
        version = dt.version() + 1
    return version


def format_interval(seconds: float) -> str:
    if float(seconds).is_integer():
        return f"interval {int(seconds)} seconds"
    return f"interval {round(seconds * 1000)} milliseconds"


def _description(dt: DeltaTable) -> dict[str, Any]:
    try:
        desc = json.loads(dt.metadata().description or "{}")
    except ValueError:
        return {}
    return desc if isinstance(desc, dict) else {}


def retention_seconds(dt: DeltaTable) -> float:
    """The table's retention window in seconds (default one hour)."""
    value = _description(dt).get(RETENTION_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return DEFAULT_RETENTION_S


def set_retention(dt: DeltaTable, table_dir: Path, seconds: float) -> None:
    """Set the retention window (metadata commits, made durable); tombstones expire from
    checkpoints after min(window, a minute). Caller holds the write lock."""
    dt.update_incremental()
    desc = _description(dt)
    desc[RETENTION_KEY] = seconds
    dt.alter.set_table_description(json.dumps(desc, sort_keys=True))
    sync_commit(table_dir, dt.version())
    tombstones = format_interval(min(seconds, TOMBSTONE_MAX_S))
    if dt.metadata().configuration.get(TOMBSTONE_KEY) != tombstones:
        dt.alter.set_table_properties({TOMBSTONE_KEY: tombstones})
        sync_commit(table_dir, dt.version())
    _known_version[str(table_dir)] = dt.version()


def vacuum(dt: DeltaTable, table_dir: Path, retention_s: float, since: float | None = None) -> int:
    """Delete what no version within the retention window needs; returns the count.

    That is every Parquet file the latest snapshot does not reference whose mtime is older
    than the window (compaction stamps a replaced file's mtime with its removal time, and a
    file from a crashed write was never referenced), and `.tmp-*` files left in the log by
    a crash. `dt` must be at the latest version and the caller must hold the write lock (a
    writer's files are unreferenced until its commit). Deleting is idempotent: a crash
    halfway leaves a valid table.

    `since` (epoch seconds) skips partition directories unchanged since then: a file
    turns into garbage when its partition gains a file (compaction's output, a crashed
    write's file), which moves the directory's mtime, so a directory older than the
    previous vacuum's cutoff holds no garbage that vacuum left. Checkpoints pass it, so
    upkeep does not stat every partition of a pond with many directories.
    """
    if has_commits_after(table_dir, dt.version()):
        return 0  # the snapshot is stale: its file list cannot tell garbage apart
    live = {unquote(p) for p in add_actions(dt).column("path").to_pylist()}
    cutoff = time.time() - retention_s
    removed = 0
    for dirpath, dirnames, filenames in os.walk(table_dir):
        if dirpath == str(table_dir):
            # `_delta_log`, `_pond_archive` and other `_`/`.` names are not data (Delta).
            dirnames[:] = [
                d
                for d in dirnames
                if not d.startswith(("_", "."))
                and (since is None or _mtime(os.path.join(dirpath, d)) >= since)
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


def _mtime(path: str | Path) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


# Margin for `since`: mtimes and the clock are read at slightly different moments.
VACUUM_SLACK_S = 60.0


def _stamp_removed(table_dir: Path, files: list[str]) -> None:
    """Set replaced files' mtime to now: the retention window counts from their removal."""
    for f in files:
        try:
            os.utime(table_dir / unquote(f))
        except FileNotFoundError:
            pass


def compact(
    dt: DeltaTable,
    table_dir: Path,
    files: list[str],
    merged: pa.Table,
    partition_values: dict[str, str] | None = None,
) -> tuple[int, FileAction]:
    """Replace `files` by one file holding `merged` (their rows), without changing data.

    Returns the commit's version and the new file; the caller applies both to its view
    (the handle is not advanced: that would re-read the log)."""
    add = write_file(table_dir, merged, partition_values)
    _stamp_removed(table_dir, files)
    removes = [FileAction(f, 0, dict(partition_values or {}), 0, 0, remove=True) for f in files]
    version = commit(
        dt,
        table_dir,
        [add, *removes],
        operation="OPTIMIZE",
        metadata={"pond_maintenance": "compact"},
    )
    return version, add


def checkpoint(
    dt: DeltaTable,
    table_dir: Path,
    archive_key: str | None = None,
    retention_s: float | None = None,
    full: bool = False,
) -> int:
    """Take a synced checkpoint, prune the log behind the previous one, then vacuum files
    older than the retention window (the table's own unless `retention_s` is given);
    returns the number of files vacuumed. Not `full`: only partitions changed since the
    previous checkpoint's vacuum could have garbage left (see vacuum()).

    Opening a table lists `_delta_log`; with tens of thousands of entries that listing
    costs more than reading the state, so entries older than the previous checkpoint are
    removed (one interval is kept for readers still catching up). With `archive_key`, that
    custom commit metadata (the data table's `pond_txn`) is first saved to an archive.
    Vacuuming here keeps disk use flat without anyone running `pond maintain`: a
    checkpoint has just read the snapshot the vacuum needs.
    """
    previous = last_checkpoint_version(table_dir)
    # The previous checkpoint's vacuum ran after this file was written.
    previous_at = _mtime(table_dir / "_delta_log" / "_last_checkpoint")
    dt.update_incremental()
    dt.create_checkpoint()
    log = table_dir / "_delta_log"
    names = [f"{dt.version():020d}.checkpoint.parquet", "_last_checkpoint"]
    for name in names:
        if (log / name).exists():
            fsync_file(log / name)
    fsync_dir(log)
    prune_log(table_dir, previous, archive_key)
    window = retention_seconds(dt) if retention_s is None else retention_s
    since = None if full or not previous_at else previous_at - window - VACUUM_SLACK_S
    return vacuum(dt, table_dir, window, since)


ARCHIVE_DIR = "_pond_archive"  # '_' prefix: ignored by Delta readers and by vacuum
ARCHIVE_SCHEMA = pa.schema(
    [("version", pa.int64()), ("timestamp", pa.int64()), ("metadata", pa.string())]
)


def prune_log(table_dir: Path, keep_from: int, archive_key: str | None) -> None:
    """Remove log entries and checkpoints older than version `keep_from`."""
    log = table_dir / "_delta_log"
    old: list[tuple[int, Path]] = []
    for entry in os.scandir(log):
        stem, _, rest = entry.name.partition(".")
        if stem.isdigit() and int(stem) < keep_from and rest in ("json", "checkpoint.parquet"):
            old.append((int(stem), Path(entry.path)))
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
            tmp = arch / f".tmp-{name}"
            pq.write_table(pa.table(rows, schema=ARCHIVE_SCHEMA), tmp, compression="zstd")
            fsync_file(tmp)
            os.replace(tmp, arch / name)
            fsync_dir(arch)
    for _, path in old:
        path.unlink(missing_ok=True)
    fsync_dir(log)


def archived_metadata(table_dir: Path) -> list[tuple[int, int, str]]:
    """(version, timestamp ms, raw metadata) saved by prune_log, oldest first."""
    arch = table_dir / ARCHIVE_DIR
    if not arch.is_dir():
        return []
    out: list[tuple[int, int, str]] = []
    for path in sorted(arch.glob("*.parquet")):
        t = pq.ParquetFile(path).read()
        out.extend(
            zip(
                t["version"].to_pylist(),
                t["timestamp"].to_pylist(),
                t["metadata"].to_pylist(),
                strict=True,
            )
        )
    return out


def has_commits_after(table_dir: Path, version: int) -> bool:
    """Whether the table has moved past `version`: a stat of the next log entry, or, when
    that entry was pruned meanwhile, a newer checkpoint."""
    if (table_dir / "_delta_log" / f"{version + 1:020d}.json").exists():
        return True
    return last_checkpoint_version(table_dir) > version


def last_checkpoint_version(table_dir: Path) -> int:
    try:
        return int(
            json.loads((table_dir / "_delta_log" / "_last_checkpoint").read_text())["version"]
        )
    except (OSError, ValueError, KeyError):
        return 0


def read_parquet(
    path: Path,
    columns: list[str] | None = None,
    min_value: tuple[str, int] | None = None,
) -> pa.Table:
    """Read one Parquet file without `pyarrow.dataset` (whose import pulls in pandas,
    ~190 ms per process). `min_value=(col, v)` keeps rows with col >= v, skipping row
    groups whose statistics say they hold none."""
    pf = open_parquet(path)
    if min_value is None:
        return pf.read(columns=columns)
    name, value = min_value
    idx = pf.schema_arrow.get_field_index(name)
    groups = []
    for i in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(i).column(idx).statistics
        if stats is None or not stats.has_min_max or stats.max >= value:
            groups.append(i)
    want = columns if columns is None or name in columns else [*columns, name]
    if groups:
        table = pf.read_row_groups(groups, columns=want)
    else:
        table = pf.schema_arrow.empty_table()
        table = table if want is None else table.select(want)
    import pyarrow.compute as pc  # ~100 ms to import: only when a floor is given

    table = table.filter(pc.greater_equal(table[name], value))
    return table if columns is None or name in columns else table.drop_columns([name])


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open a table's Parquet file; a missing or unreadable one is one line naming it."""
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise PondError(f"{_rel(path)} is missing; run `pond fsck`") from None
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise PondError(f"{_rel(path)} is unreadable ({e}); run `pond fsck`") from None


def _rel(path: Path) -> str:
    """A table file's path from the pond's directory (`data/part_id=.../part-...`)."""
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("data", "control"):
            return "/".join(parts[i:])
    return str(path)


def add_actions(dt: DeltaTable) -> pa.Table:
    # from_stream, not pa.table(): the latter imports pandas (~190 ms) to check the type.
    return pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()


def history_metadata(dt: DeltaTable, table_dir: Path, key: str) -> list[tuple[int, int, Any]]:
    """(version, timestamp ms, parsed custom metadata `key`) of every commit that carries
    it, from the archive and the live log, newest first."""
    seen: dict[int, tuple[int, int, Any]] = {}
    for version, ts, archived in archived_metadata(table_dir):
        seen[version] = (version, ts, json.loads(archived))
    for h in dt.history():
        raw = h.get(key)
        if raw:
            v = int(h["version"])
            seen[v] = (v, int(h.get("timestamp", 0)), json.loads(raw))
    return [seen[v] for v in sorted(seen, reverse=True)]
