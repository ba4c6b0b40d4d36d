"""A read-only Delta snapshot from `_delta_log`, without deltalake.

Importing deltalake costs ~25 ms of every `pond` process (numpy parts, the Rust module)
and opening a table through it ~7 ms more; `pond list` and `pond cat` need only the live
files, the protocol, the metadata and the application transaction versions. This reads
them as the Delta protocol defines them: the newest classic checkpoint (one Parquet file,
read with pyarrow.parquet), then every JSON commit after it, in order.

Anything this reader does not handle raises `Unsupported`, and the caller opens the table
with deltalake instead: reader features beyond `timestampNtz`, column mapping, deletion
vectors, multi-part and v2 checkpoints, unknown actions, transaction expiry, and a log it
cannot make sense of (a gap, an unparsable entry: deltalake's error then names it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote

from .deltacommit import protocol_problem, write_problem
from .tableread import last_checkpoint_version

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable


class Unsupported(Exception):
    """The log needs what this reader does not do: open the table with deltalake."""


# Reader features that change nothing about which files are live or how they are read.
READER_FEATURES_OK = frozenset({"timestampNtz", "vacuumProtocolCheck"})
# Actions that do not change the snapshot this reader keeps.
IGNORED_ACTIONS = frozenset({"commitInfo", "cdc", "domainMetadata", "checkpointMetadata"})
# What is read of a checkpoint's `add` column (not the statistics parsed into columns).
ADD_FIELDS = ("path", "partitionValues", "size", "modificationTime", "stats", "deletionVector")
# What an `add` may hold for this reader to write it back whole (a checkpoint): others
# (tags, row tracking, clustering) come from other engines, and delta-rs checkpoints them.
ADD_KEYS_KEPT = frozenset(
    {"path", "partitionValues", "size", "modificationTime", "dataChange", "stats"}
)
# Expired `txn` actions are dropped by readers that honour this property: not done here.
TXN_RETENTION_KEY = "delta.setTransactionRetentionDuration"


class AddFile:
    """A live data file: its `add` action as the log has it (`path` URI-encoded). A plain
    class: a dataclass costs ~0.3 ms of start-up to create."""

    __slots__ = ("path", "size", "partition_values", "modification_time", "stats")

    def __init__(
        self,
        path: str,
        size: int,
        partition_values: dict[str, str | None],
        modification_time: int,
        stats: str | None,  # Delta's JSON statistics, unparsed
    ) -> None:
        self.path = path
        self.size = size
        self.partition_values = partition_values
        self.modification_time = modification_time
        self.stats = stats

    @property
    def num_records(self) -> int | None:
        if not self.stats:
            return None
        n = json.loads(self.stats).get("numRecords")
        return int(n) if n is not None else None


class Tombstone:
    """A `remove` action of a commit after the checkpoint, kept for the next checkpoint:
    the fields the pond writes back."""

    __slots__ = (
        "path",
        "deletion_timestamp",
        "data_change",
        "extended_file_metadata",
        "partition_values",
        "size",
    )

    def __init__(
        self,
        path: str,
        deletion_timestamp: int | None,
        data_change: bool,
        extended_file_metadata: bool | None,
        partition_values: Any,  # an object (a log entry) or key/value pairs (a checkpoint)
        size: int | None,
    ) -> None:
        self.path = path
        self.deletion_timestamp = deletion_timestamp
        self.data_change = data_change
        self.extended_file_metadata = extended_file_metadata
        self.partition_values = partition_values
        self.size = size


# What is read of a checkpoint's `remove` column (a checkpoint writer's snapshot).
REMOVE_FIELDS = (
    "path",
    "deletionTimestamp",
    "dataChange",
    "extendedFileMetadata",
    "partitionValues",
    "size",
)


class Snapshot:
    """The latest version of one Delta table, as far as readers of its files need it."""

    def __init__(self, table_dir: Path, stats: bool = True, tombstones: bool = False) -> None:
        self.table_dir = table_dir
        self.stats = stats  # False: a checkpoint's statistics are not read (None)
        self.tombstones = tombstones  # True: removes are kept (a checkpoint carries them)
        self.version = -1
        # the JSON entries' versions as load() listed them: the tamper check reads every
        # entry's commitInfo and would otherwise list a long log a second time
        self.listed: list[int] = []
        self.protocol: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.txns: dict[str, int] = {}
        self.txn_updated: dict[str, int | None] = {}  # the txn actions' lastUpdated
        # live files by decoded path (a remove may spell it differently), oldest first
        self.files: dict[str, AddFile] = {}
        # with `tombstones`: the remove actions of the commits after the checkpoint, of
        # files not re-added since, by decoded path
        self.removes: dict[str, Tombstone] = {}
        # with `tombstones`: the checkpoint's `remove` column as read (null in rows of other
        # actions). A busy table's minute holds thousands: kept as Arrow, not as objects
        # (they were most of a long-lived pond's memory peaks, bench 12).
        self.checkpoint_removes: pa.StructArray | None = None
        # decoded paths added or removed by commits after the checkpoint: a tombstone of
        # the checkpoint for one of them no longer stands
        self.touched: set[str] = set()

    @classmethod
    def load(
        cls, table_dir: Path, stats: bool = True, tombstones: bool = False, gaps: bool = False
    ) -> Snapshot:
        """The table's latest snapshot; raises Unsupported (or OSError/ValueError on a
        log it cannot read) when deltalake must open it instead. `stats` False skips the
        checkpoint's statistics (~1 KB per file), which only row counts need; `tombstones`
        keeps the remove actions, which only a checkpoint writer needs; `gaps` replays
        the entries there are when some are missing (the tamper check reads what is left,
        storage/tlogcheck.py)."""
        snap = cls(table_dir, stats, tombstones)
        log = table_dir / "_delta_log"
        commits, checkpoints, odd = _list_log(log)
        snap.listed = commits
        start = max(checkpoints, default=-1)
        if odd and max(odd) >= start:
            raise Unsupported("multi-part or v2 checkpoint")
        _check_last_checkpoint(log)
        if start >= 0:
            snap._read_checkpoint(log / f"{start:020d}.checkpoint.parquet")
            snap.version = start
        newer = sorted(v for v in commits if v > start)
        if not newer and start < 0:
            raise Unsupported("no log entries")
        if not gaps and newer and newer != list(range(start + 1, start + 1 + len(newer))):
            raise Unsupported("a gap in the log")
        for v in newer:
            snap._apply_commit(log / f"{v:020d}.json", v)
        snap._check()
        return snap

    def update(self) -> bool:
        """Apply the commits made since; False if the log no longer holds the next one
        (pruned behind a newer checkpoint): then load() anew."""
        log = self.table_dir / "_delta_log"
        v = self.version + 1
        applied = False
        while True:
            path = log / f"{v:020d}.json"
            try:
                self._apply_commit(path, v)
            except FileNotFoundError:
                break
            applied = True
            v += 1
        if not applied and last_checkpoint_version(self.table_dir) > self.version:
            return False
        self._check()
        return True

    # -- what readers ask ------------------------------------------------------------------
    def transaction_version(self, app_id: str) -> int | None:
        return self.txns.get(app_id)

    @property
    def description(self) -> str | None:
        return self.metadata.get("description")

    @property
    def configuration(self) -> dict[str, str]:
        return dict(self.metadata.get("configuration") or {})

    def add_files(self) -> list[AddFile]:
        return list(self.files.values())

    def superseded(self, path: str) -> bool:
        """Whether a later commit added or removed the file a tombstone of the checkpoint
        names (`path` as the log spells it): that tombstone no longer stands."""
        return path in self.touched or ("%" in path and unquote(path) in self.touched)

    def tombstone_paths(self) -> set[str]:
        """With `tombstones`: the paths (as the log spells them) of every remove action
        that still stands, expired or not."""
        paths = {t.path for t in self.removes.values()}
        if self.checkpoint_removes is not None:
            i = self.checkpoint_removes.type.get_field_index("path")
            old = self.checkpoint_removes.flatten()[i].to_pylist()
            paths.update(p for p in old if p is not None and not self.superseded(p))
        return paths

    def fields(self) -> list[dict[str, Any]]:
        """The table schema's fields, as the log's `schemaString` spells them."""
        schema = json.loads(self.metadata.get("schemaString") or "{}")
        return list(schema.get("fields") or []) if isinstance(schema, dict) else []

    # -- replay ----------------------------------------------------------------------------
    def _read_checkpoint(self, path: Path) -> None:
        import pyarrow as pa

        from .pqread import ParquetFile

        pf = ParquetFile(path)
        names = set(pf.schema_arrow.names)
        have = {f.name for f in pf.schema_arrow.field("add").type} if "add" in names else set()
        fields = ADD_FIELDS + (("tags",) if self.tombstones else ())
        want = [f"add.{n}" for n in fields if n in have and (self.stats or n != "stats")]
        want += [n for n in ("metaData", "protocol", "txn") if n in names]
        if self.tombstones and "remove" in names:
            kept = {f.name for f in pf.schema_arrow.field("remove").type}
            want += [f"remove.{n}" for n in REMOVE_FIELDS if n in kept]
        # A group at a time: one decode of a whole checkpoint was ~7 MB of Arrow memory for
        # 10,000 tombstones (the pond writes them in groups, checkpoints.py).
        groups = [pf.read_row_group(g, columns=want) for g in range(pf.metadata.num_row_groups)]
        table = pa.concat_tables(groups) if groups else pf.read(columns=want)
        for name in ("metaData", "protocol"):
            if name in names:
                for row in table.column(name).to_pylist():
                    if row is not None:
                        if name == "metaData":
                            row["configuration"] = dict(row.get("configuration") or [])
                            self.metadata = row
                        else:
                            self.protocol = row
        if "txn" in names:
            for row in table.column("txn").to_pylist():
                if row is not None:
                    self.txns[row["appId"]] = int(row["version"])
                    self.txn_updated[row["appId"]] = row.get("lastUpdated")
        if "remove" in table.column_names:
            self.checkpoint_removes = table.column("remove").combine_chunks()
        if not want or not want[0].startswith("add."):
            return
        # Columns of the add struct with its nulls applied (rows of other actions).
        add = table.column("add").combine_chunks()
        cols = dict(zip([f.name for f in add.type], add.flatten(), strict=True))
        if "deletionVector" in cols and cols["deletionVector"].null_count != len(add):
            raise Unsupported("deletion vectors")
        if "tags" in cols and any(cols["tags"].to_pylist()):
            raise Unsupported("add tags")
        paths = cols["path"].to_pylist()
        sizes = cols["size"].to_pylist()
        parts = cols["partitionValues"].to_pylist()
        mtimes = cols["modificationTime"].to_pylist() if "modificationTime" in cols else None
        stats = cols["stats"].to_pylist() if "stats" in cols else None
        for i, p in enumerate(paths):
            if p is None:
                continue
            self.files[unquote(p)] = AddFile(
                p,
                int(sizes[i]),
                dict(parts[i] or []),
                int(mtimes[i]) if mtimes is not None and mtimes[i] is not None else 0,
                stats[i] if stats is not None else None,
            )

    def _apply_commit(self, path: Path, version: int) -> None:
        with open(path, "rb") as f:
            raw = f.read()
        for line in raw.splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if not isinstance(action, dict) or len(action) != 1:
                raise Unsupported(f"version {version}: not one action per line")
            kind, body = next(iter(action.items()))
            if kind == "add":
                if body.get("deletionVector"):
                    raise Unsupported("deletion vectors")
                if self.tombstones and set(body) - ADD_KEYS_KEPT:
                    raise Unsupported(f"add fields {sorted(set(body) - ADD_KEYS_KEPT)}")
                p = body["path"]
                self.files.pop(unquote(p), None)  # re-added: it moves to the end
                if self.tombstones:
                    self.removes.pop(unquote(p), None)
                    self.touched.add(unquote(p))
                self.files[unquote(p)] = AddFile(
                    p,
                    int(body["size"]),
                    dict(body.get("partitionValues") or {}),
                    int(body.get("modificationTime") or 0),
                    body.get("stats"),
                )
            elif kind == "remove":
                self.files.pop(unquote(body["path"]), None)
                if self.tombstones:
                    self.touched.add(unquote(body["path"]))
                    self.removes[unquote(body["path"])] = Tombstone(
                        body["path"],
                        body.get("deletionTimestamp"),
                        bool(body.get("dataChange", True)),
                        body.get("extendedFileMetadata"),
                        body.get("partitionValues"),
                        body.get("size"),
                    )
            elif kind == "txn":
                self.txns[body["appId"]] = int(body["version"])
                self.txn_updated[body["appId"]] = body.get("lastUpdated")
            elif kind == "metaData":
                self.metadata = dict(body)
                self.metadata["configuration"] = dict(body.get("configuration") or {})
            elif kind == "protocol":
                self.protocol = dict(body)
            elif kind not in IGNORED_ACTIONS:
                raise Unsupported(f"action {kind}")
        self.version = version

    def _check(self) -> None:
        """Refuse what would make this snapshot differ from deltalake's."""
        if not self.protocol or not self.metadata:
            raise Unsupported("no protocol or metadata")
        reader = int(self.protocol.get("minReaderVersion", 0))
        config = self.metadata.get("configuration") or {}
        mapping = str(config.get("delta.columnMapping.mode", "none")).lower()
        if mapping != "none":
            raise Unsupported("column mapping")
        if reader == 3:
            features = set(self.protocol.get("readerFeatures") or ())
            if features - READER_FEATURES_OK - {"columnMapping", "deletionVectors"}:
                raise Unsupported(f"reader features {sorted(features)}")
        elif reader not in (1, 2):
            raise Unsupported(f"reader version {reader}")
        if TXN_RETENTION_KEY in config:
            raise Unsupported("transaction retention")


def _list_log(log: Path) -> tuple[list[int], list[int], list[int]]:
    """Versions of the JSON commits, of the classic (one-file) checkpoints and of any
    other checkpoint (multi-part, v2)."""
    commits: list[int] = []
    checkpoints: list[int] = []
    odd: list[int] = []
    with os.scandir(log) as it:
        for entry in it:
            stem, _, rest = entry.name.partition(".")
            if len(stem) != 20 or not stem.isdigit():
                continue
            if rest == "json":
                commits.append(int(stem))
            elif rest == "checkpoint.parquet":
                checkpoints.append(int(stem))
            elif rest.startswith("checkpoint."):
                odd.append(int(stem))
    return commits, checkpoints, odd


def _check_last_checkpoint(log: Path) -> None:
    """`_last_checkpoint` naming a multi-part or v2 checkpoint: not read here."""
    try:
        hint = json.loads((log / "_last_checkpoint").read_bytes())
    except FileNotFoundError:
        return
    if not isinstance(hint, dict):
        raise Unsupported("unreadable _last_checkpoint")
    if hint.get("parts") or hint.get("v2Checkpoint") or hint.get("checkpointMetadata"):
        raise Unsupported("multi-part or v2 checkpoint")


def open_snapshot(table_dir: Path, stats: bool = True) -> Snapshot | None:
    """The table's snapshot, or None when deltalake must open it (see the module's doc)."""
    try:
        return Snapshot.load(table_dir, stats)
    except (Unsupported, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class SnapshotThenDelta:
    """A table handle that reads and writes through its own `Snapshot` until something
    needs delta-rs (SQL, history, schema changes, a log the snapshot cannot read): `dt`
    opens deltalake's handle, at the latest version, on first use, and from then on it is
    the handle's view of the log. Either way the handle is the `deltacommit.LogView` its
    commits check against."""

    # Whether the snapshot a handle opens with reads the checkpoint's statistics.
    SNAPSHOT_STATS = True

    def __init__(self, path: Path, dt: DeltaTable | None, snapshot: Snapshot | None) -> None:
        self.path = path
        self._dt = dt
        self._snap = snapshot if dt is None else None

    @classmethod
    def open(cls, path: Path) -> Self:
        """A handle for reading: the pond's own log reader when it can read this log,
        else (a feature it does not handle, damage for deltalake to name) delta-rs."""
        snap = open_snapshot(path, cls.SNAPSHOT_STATS)
        if snap is None:
            return cls(path, _open_dt(path), None)
        return cls(path, None, snap)

    @property
    def dt(self) -> DeltaTable:
        if self._dt is None:
            self._dt = _open_dt(self.path)
            self._snap = None
        return self._dt

    @dt.setter
    def dt(self, value: DeltaTable) -> None:
        self._dt, self._snap = value, None

    def description(self) -> str | None:
        """The table's metadata description (the pond keeps its identity there)."""
        if self._snap is not None:
            return self._snap.description
        return self.dt.metadata().description

    def field_names(self) -> list[str]:
        """The table schema's column names."""
        if self._snap is not None:
            return [str(f.get("name")) for f in self._snap.fields()]
        return [f.name for f in self.dt.schema().fields]

    # -- deltacommit.LogView ---------------------------------------------------------------
    def log_version(self) -> int:
        """The version of the log this handle has read (either reader)."""
        if self._snap is not None:
            return self._snap.version
        return self.dt.version()

    def catch_up(self) -> None:
        """Read the commits made since into the handle. A handle left behind entries that
        were pruned meanwhile reads the table anew; a log the snapshot cannot read is
        handed over to delta-rs."""
        snap = self._snap
        if snap is not None:
            try:
                if not snap.update():
                    self._snap = Snapshot.load(self.path, snap.stats)
                return
            except Exception:  # noqa: BLE001 - anything it cannot read: delta-rs reads it
                self.dt = _open_dt(self.path)
                return
        try:
            self.dt.update_incremental()
        except Exception:  # noqa: BLE001 - entries it still needed were pruned meanwhile
            self.dt = _open_dt(self.path)

    def write_problem(self) -> str | None:
        """Why the pond may not write this table (deltacommit.write_problem), or None."""
        snap = self._snap
        if snap is not None:
            return write_problem(snap.protocol, snap.configuration, snap.fields())
        return protocol_problem(self.dt)


def _open_dt(path: Path) -> DeltaTable:
    """deltalake's handle on the table; logcheck names a damaged log (imports deltalake)."""
    from .logcheck import open_table

    return open_table(path)
