"""The data table: one row per node version, partitioned by owning directory (SPEC §2).

The pond writes its own Parquet files (fsynced) and commits them with
`create_write_transaction`, then fsyncs the new log entry: delta-rs alone never syncs.
Reads go straight to the Parquet files of one partition (never `to_pyarrow_*`, which makes
the process abort at exit), cached per immutable file so a process stays coherent by
refreshing the snapshot and reading only files it has not seen.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from ..nodes import NodeRow
from . import deltafiles
from .durability import fsync_dir, sync_commit

APP_ID = "pond"
PARTITION = "part_id"

DATA_SCHEMA = pa.schema(
    [
        ("part_id", pa.string()),
        ("node_id", pa.string()),
        ("file_type", pa.string()),
        ("version", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("content", pa.binary()),
        ("content_hash", pa.string()),
        ("size", pa.int64()),
        ("min_event_time", pa.int64()),
        ("max_event_time", pa.int64()),
        ("extended_attributes", pa.string()),
        ("factory", pa.string()),
        ("txn_seq", pa.int64()),
    ]
)
# Delta keeps partition values in the path, not in the files.
FILE_SCHEMA = pa.schema([f for f in DATA_SCHEMA if f.name != PARTITION])

# Automatic upkeep: cheap enough to run inside a write, keeps opening and reading fast.
COMPACT_PARTITION_FILES = 8
SMALL_FILE_BYTES = 256 * 1024
COMPACT_TIER_BYTES = (16 * 1024, 96 * 1024, SMALL_FILE_BYTES)


def rows_to_table(rows: Iterable[NodeRow]) -> pa.Table:
    rows = list(rows)
    cols: dict[str, list[Any]] = {f.name: [] for f in FILE_SCHEMA}
    for r in rows:
        cols["node_id"].append(r.node_id)
        cols["file_type"].append(r.file_type)
        cols["version"].append(r.version)
        cols["timestamp"].append(r.timestamp)
        cols["content"].append(r.content)
        cols["content_hash"].append(r.content_hash)
        cols["size"].append(r.size)
        cols["min_event_time"].append(r.min_event_time)
        cols["max_event_time"].append(r.max_event_time)
        cols["extended_attributes"].append(
            json.dumps(r.extended_attributes, sort_keys=True) if r.extended_attributes else None
        )
        cols["factory"].append(r.factory)
        cols["txn_seq"].append(r.txn_seq)
    return pa.table(cols, schema=FILE_SCHEMA)


def table_to_rows(part_id: str, table: pa.Table) -> list[NodeRow]:
    out = []
    i = table.schema.get_field_index("timestamp")
    table = table.set_column(i, "timestamp", table.column(i).cast(pa.int64()))
    for d in table.to_pylist():
        out.append(
            NodeRow(
                part_id=part_id,
                node_id=d["node_id"],
                file_type=d["file_type"],
                version=d["version"],
                timestamp=d["timestamp"],
                content=d["content"],
                content_hash=d["content_hash"],
                size=d["size"],
                txn_seq=d["txn_seq"],
                min_event_time=d["min_event_time"],
                max_event_time=d["max_event_time"],
                extended_attributes=json.loads(d["extended_attributes"])
                if d["extended_attributes"]
                else {},
                factory=d["factory"],
            )
        )
    return out


class DataTable:
    """The `$POND/data` Delta table."""

    def __init__(self, path: Path, dt: DeltaTable) -> None:
        self.path = path
        self.dt = dt
        self._files_version = -1
        self._files_by_part: dict[str, list[str]] = {}
        self._file_cache: dict[str, pa.Table] = {}
        self._pending_refresh = False
        self._own = (-1, 0)  # (version, txn_seq) of this handle's last commit
        self._file_sizes: dict[str, int] = {}
        self._index_cache: dict[str, tuple[tuple[str, ...], dict[str, list[NodeRow]]]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, description: str) -> DataTable:
        dt = DeltaTable.create(
            str(path),
            DATA_SCHEMA,
            partition_by=[PARTITION],
            name="pond-data",
            description=description,
            configuration=deltafiles.TABLE_CONFIG,
        )
        sync_commit(path, dt.version())
        fsync_dir(path)
        return cls(path, dt)

    @staticmethod
    def is_table(path: Path) -> bool:
        return DeltaTable.is_deltatable(str(path))

    @classmethod
    def open(cls, path: Path) -> DataTable:
        return cls(path, DeltaTable(str(path)))

    def refresh(self) -> None:
        """See commits made since this handle was opened (ours or another process's)."""
        known = max(self.dt.version(), self._own[0])
        if not self._pending_refresh and not deltafiles.has_commits_after(self.path, known):
            return  # nothing new: a stat instead of a log listing
        try:
            self.dt.update_incremental()
        except Exception:  # noqa: BLE001 - a handle left behind entries another process pruned
            self.dt = DeltaTable(str(self.path))
        self._pending_refresh = False

    def _sync(self) -> None:
        if self._pending_refresh:
            self.refresh()

    def version(self) -> int:
        self._sync()
        return max(self.dt.version(), self._own[0])

    def last_txn_seq(self) -> int:
        self._sync()
        if self._own[0] > self.dt.version():
            return self._own[1]
        v = self.dt.transaction_version(APP_ID)
        return int(v) if v is not None else 0

    def description(self) -> str | None:
        return self.dt.metadata().description

    # -- writing ---------------------------------------------------------------------------
    def commit(self, rows: list[NodeRow], pond_txn: dict[str, Any]) -> int:
        """Commit rows atomically as one Delta version; returns that version, durable."""
        by_part: dict[str, list[NodeRow]] = defaultdict(list)
        for r in rows:
            by_part[r.part_id].append(r)
        written = []
        for part, prows in by_part.items():
            table = rows_to_table(prows)
            written.append((deltafiles.write_file(self.path, table, {PARTITION: part}), table))
        seq = int(pond_txn["txn_seq"])
        before = self._files_version
        version = deltafiles.commit(
            self.dt,
            self.path,
            [a for a, _ in written],
            metadata={"pond_txn": json.dumps(pond_txn, sort_keys=True)},
            app_txn=(APP_ID, seq),
        )
        self._apply_own(before, version, seq, written, removed=[])
        return version

    def _apply_own(
        self,
        before: int,
        version: int,
        seq: int,
        added: list[tuple[deltafiles.FileAction, pa.Table]],
        removed: list[str],
    ) -> None:
        """Apply this handle's own commit to the in-process view instead of re-reading the
        log and the files just written; the handle itself catches up at the next refresh().
        `before` is the view's version when the commit started: if the view was behind,
        it is rebuilt from the log instead."""
        for action, table in added:
            self._file_cache[action.path] = table
        if before != version - 1:
            self._pending_refresh = True
            return
        gone = set(removed)
        for part, files in self._files_by_part.items():
            if gone:
                self._files_by_part[part] = [f for f in files if f not in gone]
        for action, _ in added:
            part = action.partition_values[PARTITION]
            self._files_by_part.setdefault(part, []).append(action.path)
            self._file_sizes[action.path] = action.size
        self._files_version = version
        self._own = (version, seq)

    # -- reading ---------------------------------------------------------------------------
    def _ensure_file_map(self) -> None:
        v = self.version()
        if v == self._files_version:
            return
        actions = deltafiles.add_actions(self.dt)
        parts = actions.column(f"partition.{PARTITION}").to_pylist()
        paths = actions.column("path").to_pylist()
        sizes = actions.column("size_bytes").to_pylist()
        by_part: dict[str, list[str]] = defaultdict(list)
        for p, f in zip(parts, paths, strict=True):
            by_part[p].append(f)
        self._files_by_part = dict(by_part)
        self._file_sizes = dict(zip(paths, sizes, strict=True))
        self._files_version = v

    def partitions(self) -> list[str]:
        self._ensure_file_map()
        return list(self._files_by_part)

    def partition_files(self, part_id: str) -> list[str]:
        self._ensure_file_map()
        return self._files_by_part.get(part_id, [])

    def file_count(self) -> int:
        self._ensure_file_map()
        return sum(len(v) for v in self._files_by_part.values())

    def _read_file(self, rel: str) -> pa.Table:
        t = self._file_cache.get(rel)
        if t is None:
            t = deltafiles.read_parquet(self.path / rel).cast(FILE_SCHEMA)
            self._file_cache[rel] = t
        return t

    def partition_index(self, part_id: str) -> dict[str, list[NodeRow]]:
        """node_id -> its rows in this partition, oldest version first.

        Files are immutable, so when a commit only adds files the index is extended with
        the new files' rows instead of re-reading the partition.
        """
        files = tuple(sorted(self.partition_files(part_id)))
        cached = self._index_cache.get(part_id)
        if cached is not None and cached[0] == files:
            return cached[1]
        known = set(cached[0]) if cached is not None else set()
        if cached is not None and known <= set(files):
            new_files = [f for f in files if f not in known]
            index = {k: list(v) for k, v in cached[1].items()}
        else:
            new_files = list(files)
            index = {}
        touched: set[str] = set()
        for f in new_files:
            for row in table_to_rows(part_id, self._read_file(f)):
                index.setdefault(row.node_id, []).append(row)
                touched.add(row.node_id)
        for node_id in touched:
            index[node_id].sort(key=lambda r: r.version)
        self._index_cache[part_id] = (files, index)
        return index

    def commit_history(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(delta version, timestamp ms, pond_txn) of every data commit, newest first,
        including those whose log entries were pruned into the archive."""
        self.refresh()
        if self._own[0] > self.dt.version():
            # our own commits are applied to the view, not the handle: history needs the log
            self.dt.update_incremental()
        return deltafiles.history_metadata(self.dt, self.path, "pond_txn")

    def pond_txns(self, limit: int | None = None) -> list[tuple[int, dict[str, Any]]]:
        """(delta version, pond_txn) of data commits, newest first."""
        return [(v, p) for v, _, p in self.commit_history()][:limit]

    # -- maintenance -----------------------------------------------------------------------
    def _small_files(self, part_id: str) -> list[str]:
        return [
            f
            for f in self.partition_files(part_id)
            if self._file_sizes.get(f, 0) < SMALL_FILE_BYTES
        ]

    def compact_partition(
        self, part_id: str, only_small: bool = False, files: list[str] | None = None
    ) -> bool:
        if files is None:
            files = self._small_files(part_id) if only_small else self.partition_files(part_id)
        if len(files) < 2:
            return False
        merged = pa.concat_tables([self._read_file(f) for f in files])
        before, seq = self._files_version, self.last_txn_seq()
        version, add = deltafiles.compact(self.dt, self.path, files, merged, {PARTITION: part_id})
        self._apply_own(before, version, seq, [(add, merged)], removed=files)
        return True

    def referenced_hashes(self) -> set[str]:
        """Every content hash in any row of the latest snapshot, which holds every node
        version (compaction keeps all rows): the blobs that must stay."""
        self.refresh()
        self._ensure_file_map()
        hashes: set[str] = set()
        for files in self._files_by_part.values():
            for f in files:
                col = deltafiles.read_parquet(self.path / f, columns=["content_hash"])
                hashes.update(h for h in col.column(0).to_pylist() if h)
        return hashes

    def auto_maintain(self, touched_parts: Iterable[str]) -> None:
        """Keep a long-lived pond fast without anyone running `pond maintain`."""
        for part in set(touched_parts):
            # Fold small files in size tiers: a read of the partition opens few files, and
            # a row is rewritten about once per tier, not on every fold.
            small = self._small_files(part)
            if len(small) < COMPACT_PARTITION_FILES:
                continue
            floor = 0
            for limit in COMPACT_TIER_BYTES:
                tier = [f for f in small if floor <= self._file_sizes.get(f, 0) < limit]
                if len(tier) >= COMPACT_PARTITION_FILES:
                    self.compact_partition(part, files=tier)
                    break
                floor = limit
        if (
            self.version() - deltafiles.last_checkpoint_version(self.path)
            >= deltafiles.CHECKPOINT_EVERY
        ):
            deltafiles.checkpoint(self.dt, self.path, archive_key="pond_txn")
