"""Durable Delta appends: the pond writes and syncs its own Parquet files and `_delta_log`
entries (delta-rs does neither). Shared by the data and control tables, with their
checkpoints, log pruning and direct Parquet reads."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import pyarrow as pa

from ..errors import PondError
from .durability import fsync_dir, fsync_file, replace_synced, sync_commit, unlink_if_older
from .pqread import ParquetFile, pq  # pq: pyarrow.parquet, imported on first use

if TYPE_CHECKING:
    # Handles come from the callers: plain reads never import deltalake (storage/deltalog).
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


SMALL_ROWS = 64
ROW_GROUP_ROWS = 16_384
# A row group holds at most this much `content` (the data table's inline file bodies):
# reading one small file's body decodes its whole row group, and a compacted file's bodies
# in one group made each such read decode all of them (2 MB and more), which a long-lived
# pond then kept in its content cache (bench 12). A bigger body has a row group of its
# own. Not smaller: listing reads every other column of every group (a 10,000-row file in
# 256 KiB groups was 41 groups and `pond list` of it ~6 % slower).
ROW_GROUP_CONTENT_BYTES = 1024 * 1024
SMALL_BYTES = 16 * 1024
NO_STATS_COLUMNS = ("content",)
# Free text and hashes: null counts only, no min/max (neither in the Parquet footer nor in
# the add action). Their bounds prune nothing a reader asks for (a hash's 32-character
# prefix, a JSON or argument text) and cost bytes in every footer, log entry and
# checkpoint. Columns readers filter on (txn_seq, timestamps, versions, node and txn ids,
# types and states) keep their bounds.
NULLS_ONLY_COLUMNS = frozenset(
    {"content_hash", "extended_attributes", "cli_args", "vars", "error_message"}
)


@dataclass
class FileAction:
    """An add (or, for compaction, remove) of one Parquet file. `stats` is the add's Delta
    statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`); None: only the count.
    `data_change` False marks a rewrite of rows already in the table (compaction)."""

    path: str
    size: int
    partition_values: dict[str, str]
    num_records: int
    modification_time: int
    remove: bool = False
    stats: dict[str, Any] | None = None
    data_change: bool = True
    # The first row of each row group, as written (not part of the log entry).
    group_starts: list[int] | None = None
    # The file's sha256, recorded in the commit's `pond_sha256` (a restore checks it).
    sha256: str | None = None

    def to_json(self, now_ms: int) -> dict[str, Any]:
        if self.remove:
            return {
                "remove": {
                    "path": self.path,
                    "deletionTimestamp": now_ms,
                    "dataChange": self.data_change,
                    "extendedFileMetadata": True,
                    "partitionValues": self.partition_values,
                    "size": self.size,
                }
            }
        stats = self.stats if self.stats is not None else {"numRecords": self.num_records}
        return {
            "add": {
                "path": self.path,
                "partitionValues": self.partition_values,
                "size": self.size,
                "modificationTime": self.modification_time,
                "dataChange": self.data_change,
                "stats": json.dumps(stats, separators=(",", ":")),
            }
        }


# Delta's statistics: strings are cut to this many characters (as Spark does); a cut max
# gets the highest code point appended, so it stays an upper bound.
STATS_STRING_PREFIX = 32
_MAX_CHAR = "\U0010ffff"
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}
# Arrow type ids whose Parquet min/max Delta readers use (a type-id lookup: this runs for
# every column of every file written, ~3 per write).
_INT, _STR, _TS, _DATE = range(4)
_KINDS = {
    **{t.id: _INT for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())},
    **{t.id: _INT for t in (pa.uint8(), pa.uint16(), pa.uint32())},
    pa.string().id: _STR,
    pa.large_string().id: _STR,
    pa.timestamp("us").id: _TS,
    pa.date32().id: _DATE,
}


def file_stats(
    md: pq.FileMetaData,
    schema: pa.Schema,
    skip: tuple[str, ...] = (),
    nulls_only: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Delta statistics of a Parquet file from its footer (no data read): per column with
    statistics in every row group, its min, max (ints, strings, dates, timestamps) and
    null count. Columns in `skip` (partition columns: their value is in the path) and
    columns whose statistics Delta readers cannot use (binary, floats whose NaN Parquet
    leaves out, booleans) get no bounds. `nulls_only`: null counts of columns written
    without Parquet statistics (NULLS_ONLY_COLUMNS), counted by the caller."""
    out: dict[str, Any] = {"numRecords": md.num_rows}
    if md.num_columns != len(schema):
        return out  # nested columns: Parquet's leaves are not the schema's fields
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    groups = [md.row_group(i) for i in range(md.num_row_groups)]
    for idx, (name, typ) in enumerate(zip(schema.names, schema.types, strict=True)):
        if name in skip:
            continue
        if nulls_only is not None and name in nulls_only:
            nulls[name] = nulls_only[name]
            continue
        lo = hi = None
        count = 0
        for g in groups:
            st = g.column(idx).statistics
            if st is None or not st.has_null_count:
                break
            count += st.null_count
            if st.has_min_max:
                a, b = st.min_raw, st.max_raw
                lo = a if lo is None or a < lo else lo
                hi = b if hi is None or b > hi else hi
        else:
            nulls[name] = count
            kind = _KINDS.get(typ.id)
            if kind is not None and lo is not None:
                mins[name], maxs[name] = _bounds(kind, typ, lo, hi)
    if mins:
        out["minValues"] = mins
        out["maxValues"] = maxs
    if nulls:
        out["nullCount"] = nulls
    return out


def _bounds(kind: int, t: pa.DataType, lo: Any, hi: Any) -> tuple[Any, Any]:
    """Parquet's physical min/max as Delta's JSON statistics values."""
    if kind == _INT:
        return int(lo), int(hi)
    if kind == _STR:
        lo_s = lo.decode() if isinstance(lo, bytes) else str(lo)
        hi_s = hi.decode() if isinstance(hi, bytes) else str(hi)
        if len(hi_s) > STATS_STRING_PREFIX:
            hi_s = hi_s[:STATS_STRING_PREFIX] + _MAX_CHAR
        return lo_s[:STATS_STRING_PREFIX], hi_s
    if kind == _TS:
        unit = t.unit
        if unit == "ns":  # floor the min, ceil the max: bounds stay bounds at µs
            lo_us, hi_us = int(lo) // 1000, -(-int(hi) // 1000)
        else:
            lo_us, hi_us = int(lo) * _UNIT_US[unit], int(hi) * _UNIT_US[unit]
        zone = "Z" if t.tz is not None else ""
        return _iso(lo_us) + zone, _iso(hi_us) + zone
    return _iso_date(int(lo)), _iso_date(int(hi))


def _iso(us: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) of µs since the epoch."""
    sec, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:06d}"


def _iso_date(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


def write_file(
    table_dir: Path,
    table: pa.Table,
    partition_values: dict[str, str] | None = None,
    first_group: int = 0,
) -> FileAction:
    """Write one Parquet file into the table directory (synced); return its add action,
    with Delta statistics taken from the footer just written. `first_group` > 0: a file
    that is not small gets its first that many rows as a row group of their own (the
    data table's directory rows: readers find them by the row groups' statistics)."""
    sub = "/".join(f"{k}={v}" for k, v in (partition_values or {}).items())
    small = table.num_rows <= SMALL_ROWS and table.nbytes <= SMALL_BYTES
    # The name says the data columns' codec (Spark's `part-...<codec>.parquet` habit); a
    # reader never needs it (Parquet records each column's codec) but a person might.
    codec = "uncompressed" if small else "zstd"
    name = f"part-{time.time_ns()}-{os.urandom(6).hex()}.{codec}.parquet"
    rel = f"{sub}/{name}" if sub else name
    full = table_dir / rel
    if sub and not full.parent.exists():
        full.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(full.parent.parent)
    # Statistics for every column but raw contents (min/max of 1 KiB values would double a
    # small file and help no reader) and free text and hashes (null counts only, counted
    # here); no `ARROW:schema` footer entry (a base64 copy of the schema, ~40 % of a
    # one-row file): readers take the schema from the Delta log, and Parquet's own
    # logical types carry everything the pond's schemas need.
    names = table.column_names
    stats = [n for n in names if n not in NO_STATS_COLUMNS and n not in NULLS_ONLY_COLUMNS]
    nulls = {n: table.column(n).null_count for n in names if n in NULLS_ONLY_COLUMNS}
    collected: list[pq.FileMetaData] = []
    if small:
        # Per-commit appends are tiny and soon compacted: plain encoding is 3x cheaper,
        # except for contents (a directory snapshot shrinks ~3x for +0.06 ms).
        pq.write_table(
            table,
            full,
            compression={n: "zstd" if n == "content" else "none" for n in table.column_names},
            use_dictionary=False,
            write_statistics=stats,
            store_schema=False,
            metadata_collector=collected,
        )
    else:
        # Small row groups let readers skip old rows by their statistics (min_seq reads),
        # and read one body without decoding many (ROW_GROUP_CONTENT_BYTES).
        with pq.ParquetWriter(
            full,
            table.schema,
            compression="zstd",
            write_statistics=stats,
            store_schema=False,
            metadata_collector=collected,
        ) as writer:
            for start, rows in _row_groups(table, first_group):
                writer.write_table(table.slice(start, rows), row_group_size=rows)
    fsync_file(full)
    fsync_dir(full.parent)
    st = full.stat()
    pv = dict(partition_values or {})
    return FileAction(
        rel,
        st.st_size,
        pv,
        table.num_rows,
        int(st.st_mtime * 1000),
        stats=file_stats(collected[0], table.schema, tuple(pv), nulls) if collected else None,
        group_starts=row_group_starts(collected[0]) if collected else None,
        sha256=_sha256_file(full),
    )


def _sha256_file(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _row_groups(table: pa.Table, first_group: int = 0) -> list[tuple[int, int]]:
    """(first row, rows) of each row group of a file that is not small: `first_group` rows
    (when > 0) on their own, then at most ROW_GROUP_ROWS rows and, past the first row,
    ROW_GROUP_CONTENT_BYTES of `content` each."""
    n = table.num_rows
    groups: list[tuple[int, int]] = []
    start = 0
    if 0 < first_group < n:
        groups.append((0, first_group))
        start = first_group
    if "content" not in table.column_names:  # a row count is the only bound
        return groups + [
            (at, min(ROW_GROUP_ROWS, n - at)) for at in range(start, n, ROW_GROUP_ROWS)
        ]
    sizes = _value_sizes(table.column("content").slice(start))
    at, held = start, 0
    for row in range(start, n):
        size = sizes[row - start]
        if row > at and (row - at >= ROW_GROUP_ROWS or held + size > ROW_GROUP_CONTENT_BYTES):
            groups.append((at, row - at))
            at, held = row, 0
        held += size
    if n > at:
        groups.append((at, n - at))
    return groups


def _value_sizes(column: pa.ChunkedArray) -> list[int]:
    """Each binary value's length in bytes (0 for null), from the offsets buffers: no
    pyarrow.compute (~50 ms to import in a `pond` process)."""
    large = pa.types.is_large_binary(column.type)
    sizes: list[int] = []
    for chunk in column.chunks:
        offsets = chunk.buffers()[1]
        if offsets is None:  # an empty or all-null chunk without values
            sizes.extend([0] * len(chunk))
            continue
        raw = memoryview(offsets)
        raw = raw[: len(raw) - len(raw) % (8 if large else 4)]
        ints = raw.cast("q") if large else raw.cast("i")
        bounds = ints[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
        sizes.extend(b - a for a, b in zip(bounds, bounds[1:], strict=False))
    return sizes


def row_group_starts(md: pq.FileMetaData) -> list[int]:
    """The first row of each row group of a Parquet file, from its footer ([0]: none)."""
    starts, at = [], 0
    for g in range(md.num_row_groups):
        starts.append(at)
        at += md.row_group(g).num_rows
    return starts or [0]


def action_for_file(
    table_dir: Path, rel: str, partition_values: dict[str, str] | None = None
) -> FileAction:
    """The add action of a Parquet file already in the table directory (repairs)."""
    full = table_dir / rel
    pf = open_parquet(full)
    st = full.stat()
    pv = dict(partition_values or {})
    # The footer has no statistics for these: their null counts are read from the data.
    text = [n for n in pf.schema_arrow.names if n in NULLS_ONLY_COLUMNS]
    nulls = {n: c.null_count for n, c in zip(text, pf.read(columns=text).columns, strict=True)}
    return FileAction(
        rel,
        st.st_size,
        pv,
        pf.metadata.num_rows,
        int(st.st_mtime * 1000),
        stats=file_stats(pf.metadata, pf.schema_arrow, tuple(pv), nulls),
    )


class LogView(Protocol):
    """What a commit needs of a table handle's view of the log: the version it has read,
    a way to read the commits made since, and whether the pond may write the table. The
    pond's own reader (deltalog.SnapshotThenDelta) serves it without delta-rs."""

    def log_version(self) -> int: ...

    def catch_up(self) -> None: ...

    def write_problem(self) -> str | None: ...


class DeltaView:
    """A bare delta-rs handle as a LogView (repairs that hold one already)."""

    def __init__(self, dt: DeltaTable) -> None:
        self.dt = dt

    def log_version(self) -> int:
        return self.dt.version()

    def catch_up(self) -> None:
        self.dt.update_incremental()

    def write_problem(self) -> str | None:
        return protocol_problem(self.dt)


class TableLog:
    """One table handle's view of its log between reads of it: the last version it
    committed (the next commit then needs no listing) and the version whose protocol and
    metadata it found writable (checked once, again only when the table has moved)."""

    def __init__(self, table_dir: Path) -> None:
        self.table_dir = table_dir
        self.known = -1  # last version this handle committed (-1: none yet)
        self.checked = -1  # log version whose protocol the pond may write (-1: unchecked)

    def check_writable(self, view: LogView) -> None:
        """Refuse a table whose protocol or metadata needs what the pond does not write."""
        version = view.log_version()
        if self.checked == version and self.checked >= 0:
            return
        problem = view.write_problem()
        if problem is not None:
            raise PondError(
                f"the {self.table_dir.name} table {problem}, which the pond does not write; "
                "nothing was written"
            )
        self.checked = version


# What the pond's own writes are compatible with. Writer features the pond "supports" by
# refusing to write whenever the table actually uses them (a CHECK constraint, an
# invariant): a table that only lists them is still written.
READER_FEATURES_OK: frozenset[str] = frozenset()
WRITER_FEATURES_OK = frozenset({"appendOnly", "invariants", "checkConstraints"})
FIELD_METADATA_REFUSED = {
    "delta.invariants": "a column invariant",
    "delta.generationExpression": "a generated column",
    "delta.identity.start": "an identity column",
    "delta.columnMapping.id": "column mapping",
}


def protocol_problem(dt: DeltaTable) -> str | None:
    """Why the pond may not write this table (one phrase), or None (a delta-rs handle)."""
    proto = dt.protocol()
    protocol = {
        "minReaderVersion": proto.min_reader_version,
        "minWriterVersion": proto.min_writer_version,
        "readerFeatures": proto.reader_features,
        "writerFeatures": proto.writer_features,
    }
    fields = json.loads(dt.schema().to_json()).get("fields", [])
    return write_problem(protocol, dt.metadata().configuration or {}, fields)


def write_problem(
    protocol: dict[str, Any], configuration: dict[str, str], fields: list[dict[str, Any]]
) -> str | None:
    """Why the pond may not write a table with this protocol action, metadata
    configuration and schema fields (as the Delta log spells them), or None."""
    reader = int(protocol.get("minReaderVersion") or 0)
    writer = int(protocol.get("minWriterVersion") or 0)
    rfeat = set(protocol.get("readerFeatures") or ())
    wfeat = set(protocol.get("writerFeatures") or ())
    if reader not in (1, 3) or (reader == 3 and rfeat - READER_FEATURES_OK):
        extra = f" ({', '.join(sorted(rfeat - READER_FEATURES_OK))})" if rfeat else ""
        return f"needs Delta reader version {reader}{extra}"
    if writer == 7:
        if wfeat - WRITER_FEATURES_OK:
            return f"needs Delta writer features {', '.join(sorted(wfeat - WRITER_FEATURES_OK))}"
    elif writer > 3:
        return f"needs Delta writer version {writer}"
    for key, value in sorted(configuration.items()):
        if key.startswith("delta.constraints."):
            return f"has CHECK constraint {key.removeprefix('delta.constraints.')} ({value})"
    if str(configuration.get("delta.appendOnly", "false")).lower() == "true":
        return "is append-only (delta.appendOnly)"
    if str(configuration.get("delta.enableChangeDataFeed", "false")).lower() == "true":
        return "records a change data feed (delta.enableChangeDataFeed)"
    for f in fields:
        for key, what in FIELD_METADATA_REFUSED.items():
            if key in (f.get("metadata") or {}):
                return f"has {what} on column {f.get('name')}"
    return None


class CommitConflict(PondError):
    """Another writer committed first and made this commit's actions invalid."""


def commit(
    view: LogView,
    table_dir: Path,
    actions: list[FileAction],
    *,
    operation: str = "WRITE",
    metadata: dict[str, str] | None = None,
    app_txn: tuple[str, int] | None = None,
    durable: bool = True,
    log: TableLog | None = None,
) -> int:
    """Append one Delta commit; returns its version. `durable=False` skips only the last
    sync (the log directory): after a power loss such a commit may be missing, but the
    table is never torn, since its files and entry were synced before being linked.

    The pond writes the log entry itself rather than through delta-rs: delta-rs neither
    fsyncs nor advances its handle, and replays the log on every commit. The entry is
    written to a temp file, synced, then linked into place (put-if-absent, atomic), and the
    log directory synced. `view` is the table handle's view of the log and `log` its
    commit state (a fresh one re-checks the protocol). First the protocol is checked (see
    TableLog.check_writable). A version
    taken by another writer (a foreign process, or another handle behind this one) is read:
    the commit moves on to the next version only if its actions are still valid.
    """
    log = log if log is not None else TableLog(table_dir)
    log.check_writable(view)
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
    hashes = {a.path: a.sha256 for a in actions if a.sha256 and not a.remove}
    if hashes:  # what a restore checks each downloaded file against
        info["pond_sha256"] = hashes
    info["pond_lines"] = len(lines)  # an entry cut at a line boundary is then seen (fsck)
    body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines).encode()
    tmp = log_dir / f".tmp-{os.getpid()}-{os.urandom(6).hex()}.json"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fdatasync(f.fileno())
    try:
        version = _next_version(view, log)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                os.link(tmp, log_dir / f"{version:020d}.json")
            except FileExistsError:
                _check_winner(view, log, version, actions, app_txn)
                version += 1
                continue
            if durable:
                fsync_dir(log_dir)
            log.known = version
            return version
        raise CommitConflict(
            f"another process keeps writing {table_dir} without the pond's lock; nothing "
            "was written"
        )
    finally:
        tmp.unlink(missing_ok=True)


# A commit that finds its version taken reads the winner's entry and tries the next one;
# after this many taken versions it gives up (someone is writing without the lock).
MAX_COMMIT_ATTEMPTS = 20


def _check_winner(
    view: LogView,
    log: TableLog,
    version: int,
    actions: list[FileAction],
    app_txn: tuple[str, int] | None,
) -> None:
    """Whether this commit's actions still hold after the entry another writer put at
    `version`: raises CommitConflict if not. A file this commit removes must not have been
    removed by the winner (a compaction would re-add rows, or a delete remove twice); an
    application transaction must not have been taken to the same or a later number; a new
    protocol or metadata is checked as at the start."""
    name = log.table_dir.name
    path = log.table_dir / "_delta_log" / f"{version:020d}.json"
    try:
        winner = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise CommitConflict(
            f"the {name} table's version {version} was written by another process and "
            f"cannot be read ({e}); nothing was written"
        ) from None
    removed = {unquote(a["remove"]["path"]) for a in winner if "remove" in a}
    ours = {unquote(a.path) for a in actions if a.remove}
    clash = sorted(ours & removed)
    if clash:
        raise CommitConflict(
            f"another writer removed {clash[0]} from the {name} table (version {version}) "
            "while this commit replaced it; nothing was written"
        )
    if app_txn is not None:
        for a in winner:
            txn = a.get("txn")
            if txn and txn.get("appId") == app_txn[0] and int(txn["version"]) >= app_txn[1]:
                raise CommitConflict(
                    f"another writer committed {name} transaction {txn['version']} "
                    f"(version {version}) while this one committed {app_txn[1]}; nothing "
                    "was written"
                )
    if any("protocol" in a or "metaData" in a for a in winner):
        view.catch_up()
        log.checked = -1
        log.check_writable(view)


def _next_version(view: LogView, log: TableLog) -> int:
    version = max(log.known, view.log_version()) + 1
    # A gap in the log would corrupt the table: the previous entry must exist.
    if version > 0 and not (log.table_dir / "_delta_log" / f"{version - 1:020d}.json").exists():
        log.known = -1
        view.catch_up()
        version = view.log_version() + 1
    return version


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


ARCHIVE_DIR = "_pond_archive"  # '_' prefix: ignored by Delta readers and by vacuum
ARCHIVE_SCHEMA = pa.schema(
    [("version", pa.int64()), ("timestamp", pa.int64()), ("metadata", pa.string())]
)


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
    except (OSError, ValueError, KeyError, TypeError):
        return 0


SMALL_FILE_ROWS = 10_000


def read_parquet(
    path: Path,
    columns: list[str] | None = None,
    min_value: tuple[str, int] | None = None,
) -> pa.Table:
    """Read one Parquet file without `pyarrow.dataset` (whose import pulls in pandas,
    ~190 ms per process). `min_value=(col, v)` keeps rows with col >= v, skipping row
    groups whose statistics say they hold none."""
    pf = open_parquet(path)
    # Decoding columns on the thread pool costs more than it saves for a small file (most
    # control files hold a few rows).
    threads = pf.metadata.num_rows > SMALL_FILE_ROWS
    if min_value is None:
        return pf.read(columns=columns, use_threads=threads)
    name, value = min_value
    idx = pf.schema_arrow.get_field_index(name)
    groups = []
    whole = True  # every kept row group holds only rows >= value: nothing to filter
    for i in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(i).column(idx).statistics
        if stats is None or not stats.has_min_max or stats.max >= value:
            groups.append(i)
            whole = whole and stats is not None and stats.has_min_max and stats.min >= value
    if groups and whole:
        return pf.read_row_groups(groups, columns=columns, use_threads=threads)
    want = columns if columns is None or name in columns else [*columns, name]
    if groups:
        table = pf.read_row_groups(groups, columns=want, use_threads=threads)
    else:
        table = pf.schema_arrow.empty_table()
        table = table if want is None else table.select(want)
    import pyarrow.compute as pc  # ~100 ms to import: only when a floor is given

    table = table.filter(pc.greater_equal(table[name], value))
    return table if columns is None or name in columns else table.drop_columns([name])


def open_parquet(path: Path) -> ParquetFile:
    """Open a table's Parquet file; a missing or unreadable one is one line naming it."""
    try:
        return ParquetFile(path)
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
