"""The control table (`$POND/control`, SPEC §5): the steward's record of every write
transaction and every post-commit task. Rows are appended durably; rows that need not be
durable on their own are batched into one Delta commit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..nodes import now_us
from ..records import (  # noqa: F401 - re-exported: the steward imports them from here
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    FAILED,
    PC_COMPLETED,
    PC_FAILED,
    PC_PENDING,
    PC_STARTED,
    PC_TERMINAL,
    POST_COMMIT,
    TERMINAL,
    WRITE,
)
from ..storage import checkpoints, deltacommit, deltalog, parquetwrite, tableread, upkeep
from ..storage.durability import fsync_dir, sync_commit

if TYPE_CHECKING:
    # Imported where used: reading the table (`pond log`, `pond status`) goes through the
    # pond's own log reader (storage/deltalog.py) and never loads deltalake (~25 ms).
    from deltalake import DeltaTable

CONTROL_SCHEMA = pa.schema(
    [
        ("txn_seq", pa.int64()),
        ("txn_id", pa.string()),
        ("record_type", pa.string()),
        ("transaction_type", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("parent_txn_seq", pa.int64()),
        ("execution_seq", pa.int32()),
        ("factory_name", pa.string()),
        ("config_path", pa.string()),
        ("data_fs_version", pa.int64()),
        ("duration_ms", pa.int64()),
        ("error_message", pa.string()),
        ("attempt", pa.int32()),
        ("cli_args", pa.string()),
        ("vars", pa.string()),
        # post_commit_started of a job that runs a host process: its pid (= its process
        # group) and start time (/proc/PID/stat, clock ticks), so `recover` can end it.
        ("pid", pa.int64()),
        ("pid_starttime", pa.int64()),
    ]
)
COLUMNS = [f.name for f in CONTROL_SCHEMA]
# Columns added after the first release: a control table created before them gets them by
# schema evolution on its next append, and its older files read them as null.
ADDED_COLUMNS = ("pid", "pid_starttime")
# Record types (SPEC §5): duckpond.records, re-exported above for the steward.

# Small appends pile up as small files; fold them together once this many are unfolded.
COMPACT_FILES = 32
# Row-count bands, each COMPACT_FILES times the one below: 32 files of one band fold into
# about one file of the next, so a row is rewritten once per band (folding everything
# under a limit rewrote the growing merged file on every round).
COMPACT_TIERS = (48, 1536, 49_152, 1_572_864)


class _RecordClock:
    """Strictly increasing µs clock, so rows sort in recorded order within a process."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(now_us(), self.last + 1)
        return self.last


next_timestamp = _RecordClock().next


@dataclass
class Record:
    txn_seq: int
    txn_id: str
    record_type: str
    transaction_type: str = WRITE
    timestamp: int = field(default_factory=next_timestamp)
    parent_txn_seq: int | None = None
    execution_seq: int | None = None
    factory_name: str | None = None
    config_path: str | None = None
    data_fs_version: int | None = None
    duration_ms: int | None = None
    error_message: str | None = None
    attempt: int | None = None
    cli_args: str | None = None
    vars: str | None = None
    pid: int | None = None
    pid_starttime: int | None = None


def records_to_table(records: Iterable[Record]) -> pa.Table:
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for r in records:
        for c in COLUMNS:
            cols[c].append(getattr(r, c))
    return pa.table(cols, schema=CONTROL_SCHEMA)


def conform(table: pa.Table, schema: pa.Schema = CONTROL_SCHEMA) -> pa.Table:
    """`table` in `schema`: columns a file written before they existed are read as null."""
    if table.schema.equals(schema):
        return table  # the common case: a file written in the current schema (no casts)
    missing = [f for f in schema if f.name not in table.column_names]
    for f in missing:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


class ControlTable(deltalog.SnapshotThenDelta):
    """Opened for reading, it holds the pond's own snapshot of the log; the delta-rs
    handle `dt` is opened on first use (appends, SQL, upkeep) and from then on is the
    handle's view of the log (as DataTable does)."""

    def __init__(
        self, path: Path, dt: DeltaTable | None, snapshot: deltalog.Snapshot | None = None
    ) -> None:
        super().__init__(path, dt, snapshot)
        self._written: dict[str, pa.Table] = {}  # files this process appended: no re-read
        self._files: dict[str, int] | None = None
        self._files_version = -1
        self._schema_checked = False
        self.log = deltacommit.TableLog(path)  # log state: last commit, protocol checked

    def _read(self, rel: str) -> pa.Table:
        table = self._written.pop(rel, None)
        if table is not None:
            return table
        return tableread.read_parquet(self.path / rel)

    @classmethod
    def create(cls, path: Path, identity: dict[str, Any]) -> ControlTable:
        from deltalake import DeltaTable

        dt = DeltaTable.create(
            str(path),
            CONTROL_SCHEMA,
            name="pond-control",
            description=json.dumps({"pond": identity}, sort_keys=True),
            configuration=upkeep.TABLE_CONFIG,
        )
        sync_commit(path, dt.version())
        fsync_dir(path)
        return cls.open(path)  # the pond's own reader, as for any later open

    @staticmethod
    def exists(path: Path) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(str(path))

    def refresh(self) -> DeltaTable:
        """`dt` brought up to the latest commit (ours or another process's), for SQL over
        it: the appends above write the log themselves and leave `dt` where it was."""
        if tableread.has_commits_after(self.path, self.dt.version()):
            self.catch_up()
        return self.dt

    def identity(self) -> dict[str, Any]:
        try:
            return json.loads(self.description() or "{}").get("pond", {})
        except ValueError:
            return {}

    def append(self, records: list[Record], durable: bool = True) -> int:
        """Append records as one Delta commit (`durable`: it survives a power loss)."""
        self.evolve_schema()
        table = records_to_table(records)
        action = parquetwrite.write_file(self.path, table)
        version = deltacommit.commit(self, self.path, [action], durable=durable, log=self.log)
        self._written[action.path] = table
        self._note_commit(version, [(action.path, table.num_rows)], [])
        if version % COMPACT_FILES == 0:
            self._upkeep()
        return version

    def evolve_schema(self) -> None:
        """Add the columns a table created by an older pond lacks (a metaData commit)."""
        if self._schema_checked:
            return
        have = set(self.field_names())
        if not all(c in have for c in ADDED_COLUMNS):
            from deltalake import Field
            from deltalake.schema import PrimitiveType

            self.dt.update_incremental()
            have = {f.name for f in self.dt.schema().fields}
            missing = [
                Field(c, PrimitiveType("long"), nullable=True)
                for c in ADDED_COLUMNS
                if c not in have
            ]
            if missing:
                self.dt.alter.add_columns(missing)
                sync_commit(self.path, self.dt.version())
        self._schema_checked = True

    def _file_list(self) -> dict[str, int]:
        """path -> num_records of the live files, kept in-process; the log is re-read only
        when another process has committed since (a stat of the next entry tells)."""
        if self._files is None or tableread.has_commits_after(self.path, self._files_version):
            self.catch_up()  # the pond's own snapshot, or delta-rs once it cannot read the log
            if self._snap is not None:
                files = {a.path: a.num_records or 0 for a in self._snap.add_files()}
                version = self._snap.version
            else:
                actions = tableread.add_actions(self.dt)
                paths = actions.column("path").to_pylist()
                counts = [n or 0 for n in actions.column("num_records").to_pylist()]
                files, version = dict(zip(paths, counts, strict=True)), self.dt.version()
            self._files, self._files_version = files, version
            # Tables kept for compaction whose files are gone (compacted elsewhere) are dropped.
            self._written = {p: t for p, t in self._written.items() if p in files}
        return self._files

    def _note_commit(self, version: int, added: list[tuple[str, int]], removed: list[str]) -> None:
        if self._files is not None and self._files_version == version - 1:
            for p in removed:
                self._files.pop(p, None)
            self._files.update(added)
            self._files_version = version

    def _upkeep(self) -> None:
        """Fold small files together in row-count bands: amortised O(log n) rewrites per
        row."""
        files = self._file_list()
        floor = 0
        for limit in COMPACT_TIERS:
            tier = [p for p, n in files.items() if floor <= n < limit]
            floor = limit
            if len(tier) >= COMPACT_FILES:
                merged = pa.concat_tables([self._read(p) for p in tier]).sort_by(
                    [("timestamp", "ascending")]
                )
                v, add = upkeep.compact(self, self.path, tier, merged, log=self.log)
                self._note_commit(v, [(add.path, merged.num_rows)], tier)
                # No break: upkeep runs every COMPACT_FILES versions, when the lowest
                # band is full again, so the next band is folded in the same round.
                files = self._file_list()
        if (
            self._files_version - tableread.last_checkpoint_version(self.path)
            >= upkeep.CHECKPOINT_EVERY
        ):
            checkpoints.checkpoint(self.path)

    def committed_after(self, seq: int) -> int | None:
        """The highest txn_seq above `seq` that a `data_committed` row records, or None.

        Cheap enough for every write: the log's statistics (the largest txn_seq and the
        record types of each file) rule out nearly every file, so usually none is opened."""
        files = self._file_list()
        if self._snap is not None:
            paths = [a.path for a in self._snap.add_files() if _may_commit_after(a.stats, seq)]
        else:
            paths = list(files)  # delta-rs reads this log: no statistics at hand
        schema = pa.schema([CONTROL_SCHEMA.field("txn_seq"), CONTROL_SCHEMA.field("record_type")])
        best: int | None = None
        for rel in paths:
            t = self._read_columns(rel, schema.names, ("txn_seq", seq + 1), schema)
            for s, kind in zip(t["txn_seq"].to_pylist(), t["record_type"].to_pylist(), strict=True):
                if kind == DATA_COMMITTED and s is not None and s > seq:
                    best = s if best is None else max(best, s)
        return best

    def read_all(
        self, columns: list[str] | None = None, min_seq: int | None = None, ordered: bool = True
    ) -> pa.Table:
        """Rows in recorded order (Parquet files straight, never `to_pyarrow_*`).

        `columns` reads only those (the lifecycle state is a small part of each row);
        `min_seq` keeps rows with txn_seq >= it, skipping row groups by their statistics.
        """
        paths = list(self._file_list())
        schema = (
            CONTROL_SCHEMA
            if columns is None
            else pa.schema([CONTROL_SCHEMA.field(c) for c in columns])
        )
        if not paths:
            return schema.empty_table()
        floor = ("txn_seq", min_seq) if min_seq is not None else None
        tables = [self._read_columns(p, columns, floor, schema) for p in paths]
        table = pa.concat_tables(tables)
        if ordered and "timestamp" in table.column_names:
            table = table.sort_by([("timestamp", "ascending")])
        return table

    def _read_columns(
        self,
        rel: str,
        columns: list[str] | None,
        floor: tuple[str, int] | None,
        schema: pa.Schema,
    ) -> pa.Table:
        path = self.path / rel
        try:
            table = tableread.read_parquet(path, columns=columns, min_value=floor)
        except (KeyError, ValueError, pa.ArrowInvalid):
            if columns is None:
                raise
            # A file from before a column was added: read what it has, the rest is null.
            table = tableread.read_parquet(path, min_value=floor)
        return conform(table, schema)


def _may_commit_after(stats: str | None, seq: int) -> bool:
    """Whether a file with these Delta statistics may hold a `data_committed` row with a
    txn_seq above `seq` (no statistics: it may)."""
    if not stats:
        return True
    try:
        parsed = json.loads(stats)
        hi, lo = parsed.get("maxValues", {}), parsed.get("minValues", {})
    except (ValueError, AttributeError):
        return True
    top = hi.get("txn_seq")
    if top is not None and int(top) <= seq:
        return False
    first, last = lo.get("record_type"), hi.get("record_type")
    return first is None or last is None or first <= DATA_COMMITTED <= last
