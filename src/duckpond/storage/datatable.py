"""The data table: one row per node version, partitioned by owning directory (SPEC §2).

The pond writes its own Parquet files (fsynced) and commits them with
`create_write_transaction`, then fsyncs the new log entry: delta-rs alone never syncs.
Reads go straight to the Parquet files of one partition (never `to_pyarrow_*`, which makes
the process abort at exit). A partition is indexed without its `content` column (an Arrow
table per immutable file, so a refresh reads only files it has not seen); contents are read
per row group on demand, through a cache bounded in bytes. Files no longer live (compacted
away) leave every cache.
"""

from __future__ import annotations

import bisect
import gc
import json
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import PondError
from ..nodes import NodeRow
from . import checkpoints, deltafiles, deltalog
from .durability import fsync_dir, sync_commit
from .pqread import ParquetFile

if TYPE_CHECKING:
    # deltalake is imported when a handle first needs it (a write, history, upkeep): plain
    # reads go through `deltalog`, so `pond list` and `pond cat` never load it (~25 ms).
    from deltalake import DeltaTable

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

# Every column but `content`: what indexing a partition reads.
INDEX_COLUMNS = [f.name for f in FILE_SCHEMA if f.name != "content"]
INDEX_SCHEMA = pa.schema(
    [pa.field(f.name, pa.int64()) if f.name == "timestamp" else f for f in FILE_SCHEMA]
).remove(FILE_SCHEMA.get_field_index("content"))
# Row groups of contents kept in memory (least recently used dropped first): 4 MiB holds a
# long-lived writer's recent files and the groups it read lately (row groups hold at most
# deltafiles.ROW_GROUP_CONTENT_BYTES of contents unless one body is bigger). 16 and then
# 8 MiB were most of a long-lived pond's growth in memory over 10,000 steps (bench 12): the
# cache is full by then and nearly empty after 1,000. A group above
# CONTENT_GROUP_MAX_BYTES is read, not kept; one below is kept even when it fills half the
# cache (a big directory's snapshot shares its row group with the files a fresh process
# then reads).
CONTENT_CACHE_BYTES = 4 * 1024 * 1024
CONTENT_GROUP_MAX_BYTES = 2 * 1024 * 1024

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


def _index_table(table: pa.Table) -> pa.Table:
    """A file's rows without contents, timestamps as int64 µs (cheap to turn into rows).

    The pond's own files need no conversion but the timestamp's, done as a zero-copy view:
    `cast` would import pyarrow.compute (~50 ms of every `pond` process's start-up)."""
    table = table.select(INDEX_COLUMNS)
    i = table.schema.get_field_index("timestamp")
    ts = table.column(i)
    if ts.type == DATA_SCHEMA.field("timestamp").type:
        ts = pa.chunked_array([c.view(pa.int64()) for c in ts.chunks], pa.int64())
    else:
        ts = ts.cast(pa.int64())
    table = table.set_column(i, "timestamp", ts)
    return table if table.schema.equals(INDEX_SCHEMA) else table.cast(INDEX_SCHEMA)


# What finding a node's rows reads from a file (txn_seq: where node_tail may stop); the other
# columns are read when a row of the file is built (a fresh process writing into a
# 100,000-entry directory needs a few).
KEY_COLUMNS = ["node_id", "version", "extended_attributes", "txn_seq"]
KEY_SCHEMA = pa.schema([INDEX_SCHEMA.field(c) for c in KEY_COLUMNS])


@dataclass
class _FileMeta:
    """One immutable data file: its rows without contents (the key columns first, the
    rest on first use), and its row-group offsets."""

    keys: pa.Table
    group_starts: list[int]  # first row of each row group
    index: pa.Table | None = None  # every column but contents; None = not read yet

    @classmethod
    def of(cls, index: pa.Table, group_starts: list[int]) -> _FileMeta:
        return cls(index.select(KEY_COLUMNS), group_starts, index)


# Nodes whose row positions a partition index remembers (the directory itself, files
# looked up), carried to the next index when a commit only adds files.
NODE_MEMO_MAX = 256

# What a partition index holds per row: every stored column except the partition value
# (from the path) and contents (loaded on first use), in NodeRow's order.
_ROW_COLUMNS = [f for f in NodeRow.FIELDS if f not in (PARTITION, "content")]
NodeVersions = list[tuple[int, int, str | None]]  # (version, position, attributes), sorted
# Up to this many rows a partition is searched in Python rather than with pyarrow.compute.
SCAN_IN_PYTHON_ROWS = 2048
# Up to this many rows Python is used also beyond SCAN_IN_PYTHON_ROWS while pyarrow.compute
# is not loaded yet: importing it (~50 ms) costs more than scanning that many rows in
# Python (~10 ms), which a `pond` process does once or twice.
PYTHON_UNTIL_LOADED_ROWS = 1 << 20


# Python scans of one big partition before pyarrow.compute is used anyway.
PYTHON_SCANS_OF_BIG = 4


def use_compute(rows: int, small: int) -> bool:
    """Whether to search or merge `rows` rows with pyarrow.compute (above `small`)."""
    if rows <= small:
        return False
    return rows > PYTHON_UNTIL_LOADED_ROWS or "pyarrow.compute" in sys.modules


class PartIndex:
    """Every row of one partition, without contents, as one Arrow table.

    Looking a node up filters the table once (no Python object per row) and remembers
    where its rows are; listing builds the latest row of every node once. When a commit
    only adds files, the next index takes both over and adds the new files' rows, so a
    write into a big directory never rescans it. Rows come out as NodeRows whose content
    loads on use.
    """

    def __init__(
        self, table: DataTable, part_id: str, files: tuple[str, ...], prev: PartIndex | None
    ) -> None:
        self.part_id = part_id
        self.files = files
        self._table = table
        self._keys: pa.Table | None = None  # every file's key columns; None = not read yet
        self._index: pa.Table | None = None
        self._starts: list[int] = []  # first position of each file's rows
        at = 0
        for f in files:  # row counts from the log's statistics (or footers): no data read
            self._starts.append(at)
            at += table._span(f)[0]
        self.num_rows = at
        self._latest: dict[str, NodeRow] | None = None
        self._memo: OrderedDict[str, NodeVersions] = OrderedDict()
        self._latest_memo: OrderedDict[str, NodeRow] = OrderedDict()
        # node_tail() answers: (node id, incomplete attributes) -> the node's newest rows
        self._tails: OrderedDict[tuple[str, frozenset[str | None]], NodeVersions] = OrderedDict()
        # Python scans of this (big) partition so far: a long-lived reader switches to
        # pyarrow.compute after a few, as each costs ~10 ms per 100,000 rows.
        self._python_scans: int = prev._python_scans if prev is not None else 0
        if prev is not None and files[: len(prev.files)] == prev.files:
            self._take_over(prev, len(prev.files))

    def _take_over(self, prev: PartIndex, kept: int) -> None:
        """Positions of old rows are unchanged: extend prev's memo and latest rows with
        the rows of the files added after them."""
        new: dict[str, NodeVersions] = {}
        for i in range(kept, len(self.files)):
            t, start = self._table._meta(self.files[i]).keys, self._starts[i]
            cols = zip(
                t.column("node_id").to_pylist(),
                t.column("version").to_pylist(),
                t.column("extended_attributes").to_pylist(),
                strict=True,
            )
            for r, (node_id, version, attrs) in enumerate(cols):
                new.setdefault(node_id, []).append((version, start + r, attrs))
        self._memo, prev._memo = prev._memo, OrderedDict()
        self._latest_memo, prev._latest_memo = prev._latest_memo, OrderedDict()
        self._tails, prev._tails = prev._tails, OrderedDict()
        for node_id in new:
            self._latest_memo.pop(node_id, None)
        for (node_id, upto), tail in list(self._tails.items()):
            if node_id in new:
                self._tails[node_id, upto] = _trim_tail(sorted([*tail, *new[node_id]]), upto)
        for node_id, rows in new.items():
            if node_id in self._memo:
                self._memo[node_id] = sorted([*self._memo[node_id], *rows])
        if prev._latest is not None:
            self._latest, prev._latest = prev._latest, None
            for node_id, rows in new.items():
                version, pos, _ = max(rows)
                old = self._latest.get(node_id)
                if old is None or version > old.version:
                    self._latest[node_id] = self._rows_at([pos])[0]

    @property
    def keys(self) -> pa.Table:
        """The key columns of every row of the partition (reads the files not read yet)."""
        if self._keys is None:
            keys = [self._table._meta(f).keys for f in self.files]
            self._keys = pa.concat_tables(keys) if keys else KEY_SCHEMA.empty_table()
        return self._keys

    @property
    def index(self) -> pa.Table:
        """Every row of the partition, every column but contents (reads what is unread)."""
        if self._index is None:
            tables = [self._table._full_meta(f) for f in self.files]
            self._index = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
        return self._index

    def _rows_at(self, positions: list[int]) -> list[NodeRow]:
        if len(positions) * 4 >= self.num_rows and len(positions) > 64:
            # most rows (listing a directory): whole columns, picked in Python
            whole = [self.index.column(name).to_pylist() for name in _ROW_COLUMNS]
            cols = [[col[p] for p in positions] for col in whole]
            with _no_gc() if len(positions) > 1000 else nullcontext():
                return self._make_rows(positions, cols)
        if len(positions) > 64 and self._index is not None:  # one gather over the index
            picked = self.index.take(pa.array(positions, pa.int64()))
        elif positions:  # slice them out of their files' tables (read only those files)
            slices = []
            for pos in positions:
                i = bisect.bisect_right(self._starts, pos) - 1
                full = self._table._full_meta(self.files[i])
                slices.append(full.slice(pos - self._starts[i], 1))
            picked = pa.concat_tables(slices)
        else:
            return []
        cols = [picked.column(name).to_pylist() for name in _ROW_COLUMNS]
        with _no_gc() if len(positions) > 1000 else nullcontext():
            return self._make_rows(positions, cols)

    def _make_rows(self, positions: list[int], cols: list[list[Any]]) -> list[NodeRow]:
        starts, files, load = self._starts, self.files, self._table._content
        out = []
        for pos, values in zip(positions, zip(*cols, strict=True), strict=True):
            i = bisect.bisect_right(starts, pos) - 1
            node_id, ftype, version, ts, chash, size, txn, lo, hi, attrs, factory = values
            out.append(
                NodeRow(
                    self.part_id,
                    node_id,
                    ftype,
                    version,
                    ts,
                    None,
                    chash,
                    size,
                    txn,
                    lo,
                    hi,
                    json.loads(attrs) if attrs else {},
                    factory,
                    partial(load, files[i], pos - starts[i]),
                )
            )
        return out

    def node_versions(self, node_id: str) -> NodeVersions:
        """(version, position, extended_attributes) of the node's rows, oldest first."""
        found = self._memo.get(node_id)
        if found is not None:
            self._memo.move_to_end(node_id)
            return found
        if self._latest is not None and node_id not in self._latest:
            return []
        found = sorted(self._find(node_id))
        self._memo[node_id] = found
        while len(self._memo) > NODE_MEMO_MAX:
            self._memo.popitem(last=False)
        return found

    def _find(self, node_id: str) -> NodeVersions:
        index = self.keys
        big = index.num_rows > SCAN_IN_PYTHON_ROWS
        if not big or (
            self._python_scans < PYTHON_SCANS_OF_BIG
            and not use_compute(index.num_rows, SCAN_IN_PYTHON_ROWS)
        ):
            # A small partition (or the first lookups in a big one): a Python scan, so that
            # a `pond` process never imports pyarrow.compute (~50 ms of start-up) for it.
            self._python_scans += big
            ids = index.column("node_id").to_pylist()
            positions = [pos for pos, i in enumerate(ids) if i == node_id]
            versions = index.column("version")
            attrs = index.column("extended_attributes")
            return [(versions[p].as_py(), p, attrs[p].as_py()) for p in positions]
        import pyarrow.compute as pc

        mask = pc.equal(index.column("node_id"), node_id)
        return list(
            zip(
                pc.filter(index.column("version"), mask).to_pylist(),
                pc.indices_nonzero(mask).to_pylist(),
                pc.filter(index.column("extended_attributes"), mask).to_pylist(),
                strict=True,
            )
        )

    def versions(self, node_id: str) -> list[NodeRow]:
        """The node's rows in this partition, oldest version first."""
        return self.versions_from(node_id, 0)

    def versions_from(self, node_id: str, version: int) -> list[NodeRow]:
        """The node's rows from `version` on, oldest first."""
        found = self.node_versions(node_id)
        start = bisect.bisect_left(found, (version,))
        return self._rows_at([pos for _, pos, _ in found[start:]])

    def rows(self, found: NodeVersions) -> list[NodeRow]:
        """The rows `found` (by node_versions or node_tail) names."""
        return self._rows_at([pos for _, pos, _ in found])

    def contents(self, found: NodeVersions) -> list[tuple[bytes | None, str | None]]:
        """(content, content_hash) of the rows `found` names: the stored content, or None
        and the hash of a content kept in the blob store. Reads the other columns of a
        file only for a blob's hash (a directory's deltas since its snapshot are spread
        over many files: building their rows would read each of those files whole)."""
        out: list[tuple[bytes | None, str | None]] = []
        for _, pos, _ in found:
            i = bisect.bisect_right(self._starts, pos) - 1
            rel, row = self.files[i], pos - self._starts[i]
            content = self._table._content(rel, row)
            if content is not None:
                out.append((content, None))
            else:
                out.append((None, self._table._value(rel, row, "content_hash")))
        return out

    def node_tail(
        self, node_id: str, incomplete: frozenset[str | None] = frozenset()
    ) -> NodeVersions:
        """The node's rows from its newest row whose attributes are not in `incomplete` (a
        directory's snapshot; with none incomplete, the latest row) on, oldest first.

        A fresh process reads the key columns only of the files that can hold them: files
        newest first by their txn_seq statistics, stopping once every file left holds only
        rows older than the newest such row found. A node has at most one version per
        transaction, so its versions grow with txn_seq."""
        key = (node_id, incomplete)
        found = self._tails.get(key)
        if found is not None:
            self._tails.move_to_end(key)
            return found
        if self._keys is not None or node_id in self._memo or self._latest is not None:
            found = _trim_tail(self.node_versions(node_id), incomplete)
        else:
            found = self._scan_tail(node_id, incomplete)
        self._tails[key] = found
        if incomplete and found:  # its newest row is the node's latest: latest() needs no scan
            self._tails[node_id, frozenset()] = found[-1:]
        while len(self._tails) > NODE_MEMO_MAX:
            self._tails.popitem(last=False)
        return found

    def _scan_tail(self, node_id: str, incomplete: frozenset[str | None]) -> NodeVersions:
        spans = [self._table._span(f) for f in self.files]
        if any(lo is None for _, lo, _ in spans):  # no statistics: every file is read
            return _trim_tail(self.node_versions(node_id), incomplete)
        order = sorted(range(len(self.files)), key=lambda i: spans[i][2] or 0, reverse=True)
        found: NodeVersions = []
        # The txn_seq of the newest complete row found: a file whose max is below it holds
        # only older rows of the node.
        floor = -1
        read = 0
        for i in order:
            _, lo, hi = spans[i]
            if (hi or 0) < floor:
                break
            read += 1
            for offset, keys in self._table._key_groups(self.files[i], node_id):
                hits = _positions_of(keys.column("node_id"), node_id)
                if not hits:
                    continue
                start = self._starts[i] + offset
                versions = keys.column("version")
                attrs = keys.column("extended_attributes")
                seqs = keys.column("txn_seq")
                for r in hits:
                    row = (versions[r].as_py(), start + r, attrs[r].as_py())
                    found.append(row)
                    if row[2] not in incomplete:
                        seq = seqs[r].as_py()
                        floor = max(floor, seq if seq is not None else lo or 0)
        if read == len(self.files):  # every file read: the whole history is in hand
            found.sort()
            self._memo[node_id] = found
            while len(self._memo) > NODE_MEMO_MAX:
                self._memo.popitem(last=False)
        return _trim_tail(sorted(found), incomplete)

    def latest(self, node_id: str) -> NodeRow | None:
        if self._latest is not None:
            return self._latest.get(node_id)
        row = self._latest_memo.get(node_id)
        if row is None:
            found = self.node_tail(node_id)
            if not found:
                return None
            row = self._latest_memo[node_id] = self._rows_at([found[-1][1]])[0]
            while len(self._latest_memo) > NODE_MEMO_MAX:
                self._latest_memo.popitem(last=False)
        return row

    def latest_rows(self) -> dict[str, NodeRow]:
        """node_id -> its latest row, for every node of the partition (built once)."""
        if self._latest is None:
            with _no_gc():
                self._latest = self._build_latest()
        return self._latest

    def _build_latest(self) -> dict[str, NodeRow]:
        best: dict[str, tuple[int, int]] = {}
        ids = self.keys.column("node_id").to_pylist()
        versions = self.keys.column("version").to_pylist()
        for pos, (node_id, version) in enumerate(zip(ids, versions, strict=True)):
            seen = best.get(node_id)
            if seen is None or version > seen[0]:
                best[node_id] = (version, pos)
        positions = [pos for _, pos in best.values()]
        return {r.node_id: r for r in self._rows_at(positions)}


def _positions_of(ids: pa.ChunkedArray, node_id: str) -> list[int]:
    """Positions of `node_id` in a file's node_id column (with pyarrow.compute only when
    something in the process already loaded it)."""
    if use_compute(len(ids), SCAN_IN_PYTHON_ROWS):
        import pyarrow.compute as pc

        return pc.indices_nonzero(pc.equal(ids, node_id)).to_pylist()
    return [r for r, n in enumerate(ids.to_pylist()) if n == node_id]


# A data file of more rows than this keeps its directory's own rows in a row group of
# their own when they are at most 1/OWN_GROUP_SHARE of it (see DataTable._key_groups): a
# bulk write or a compaction of a big directory. Smaller files are read whole at little
# cost, a second row group costs ~2 KB of footer, and a file whose rows are largely the
# directory's gains nothing from it.
OWN_GROUP_MIN_ROWS = 512
OWN_GROUP_SHARE = 8


def _own_group(own: int, rows: int) -> int:
    """The size of the first row group of a file of `rows` rows whose first `own` are its
    directory's (0: no row group of their own)."""
    return own if rows > OWN_GROUP_MIN_ROWS and own * OWN_GROUP_SHARE <= rows else 0


def _own_rows_first(table: pa.Table, part_id: str) -> tuple[pa.Table, int]:
    """A big file's rows with its directory's own rows first (their order kept) and the
    size of their row group (_own_group); other files as they are, and 0."""
    if table.num_rows <= OWN_GROUP_MIN_ROWS:  # no row group of their own: no need to look
        return table, 0
    ids = table.column("node_id").to_pylist()
    own = [i for i, n in enumerate(ids) if n == part_id]
    first = _own_group(len(own), len(ids))
    if not first:
        return table, 0
    mine = set(own)
    return table.take(own + [i for i in range(len(ids)) if i not in mine]), first


def _trim_tail(found: NodeVersions, incomplete: Collection[str | None]) -> NodeVersions:
    """`found` (sorted) from its newest row whose attributes are not in `incomplete` on."""
    for i in range(len(found) - 1, -1, -1):
        if found[i][2] not in incomplete:
            return found[i:]
    return found


def _read_columns(pf: ParquetFile, columns: list[str], group: int | None = None) -> pa.Table:
    """`columns` of a data file (or of one row group); a column a later version added is
    null in older files."""
    have = [c for c in columns if c in pf.schema_arrow.names]
    table = pf.read(columns=have) if group is None else pf.read_row_group(group, columns=have)
    for f in FILE_SCHEMA:
        if f.name in columns and f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


@contextmanager
def _no_gc() -> Iterator[None]:
    """Cyclic GC paused while building many rows (which form no cycles): each collection
    walks every tracked object, so 100,000 new rows cost ~6x as much with it running."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _spans(actions: pa.Table, paths: list[str]) -> dict[str, tuple[int, int | None, int | None]]:
    """(rows, min txn_seq, max txn_seq) per file from the add actions' statistics."""
    names = actions.column_names
    if "num_records" not in names or "min.txn_seq" not in names or "max.txn_seq" not in names:
        return {}
    rows = actions.column("num_records").to_pylist()
    los = actions.column("min.txn_seq").to_pylist()
    his = actions.column("max.txn_seq").to_pylist()
    return {
        p: (n, lo, hi)
        for p, n, lo, hi in zip(paths, rows, los, his, strict=True)
        if n is not None and lo is not None and hi is not None
    }


def _stats_span(rows: int, stats: dict[str, Any]) -> tuple[int, int | None, int | None]:
    """(rows, min txn_seq, max txn_seq) from Delta statistics (None bounds: not there)."""
    lo = stats.get("minValues", {}).get("txn_seq")
    hi = stats.get("maxValues", {}).get("txn_seq")
    return (rows, lo, hi)


def _action_span(action: deltafiles.FileAction) -> tuple[int, int | None, int | None]:
    return _stats_span(action.num_records, action.stats or {})


# Key columns of small row groups (a big directory's own rows) kept at most, as pairs.
GROUP_KEYS_MAX = 4096


@dataclass
class _RowGroups:
    """A data file's row groups as its footer has them: first rows, row counts, and the
    node_id bounds ("", "\U0010ffff" where the footer has none: anything may be there)."""

    starts: list[int]
    rows: list[int]
    bounds: list[tuple[str, str]]

    @classmethod
    def of(cls, pf: ParquetFile) -> _RowGroups:
        md = pf.metadata
        col = pf.schema_arrow.get_field_index("node_id")
        rows, bounds = [], []
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            rows.append(group.num_rows)
            stats = group.column(col).statistics if col >= 0 else None
            if stats is not None and stats.has_min_max:
                bounds.append((str(stats.min), str(stats.max)))
            else:
                bounds.append(("", "\U0010ffff"))
        starts = deltafiles.row_group_starts(md)
        return cls(starts, rows or [0], bounds or [("", "\U0010ffff")])


class DataTable(deltalog.SnapshotThenDelta):
    """The `$POND/data` Delta table.

    Opened for reading, it holds the pond's own snapshot of the log (`deltalog`); the
    delta-rs handle `dt` is opened on first use (writes, history, upkeep) and from then on
    is the handle's view of the log."""

    SNAPSHOT_STATS = False  # only paths, sizes, partitions (statistics: parsed on use)

    def __init__(
        self, path: Path, dt: DeltaTable | None, snapshot: deltalog.Snapshot | None = None
    ) -> None:
        super().__init__(path, dt, snapshot)
        self._files_version = -1
        self._files_by_part: dict[str, list[str]] = {}
        self._pending_refresh = False
        self._own = (-1, 0)  # (version, txn_seq) of this handle's last commit
        self.log = deltafiles.TableLog(path)  # log state: last commit, protocol checked
        self._file_sizes: dict[str, int] = {}
        # (rows, min txn_seq, max txn_seq) of live files, from the log's statistics
        self._spans: dict[str, tuple[int, int | None, int | None]] = {}
        self._raw_stats: dict[str, str] = {}  # a log snapshot's unparsed statistics
        # Caches, all keyed by live files: entries for files compacted away are dropped.
        self._metas: dict[str, _FileMeta] = {}
        self._row_groups: dict[str, _RowGroups] = {}  # footers of files not read whole
        self._group_keys: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._contents: OrderedDict[tuple[str, int], pa.Array] = OrderedDict()
        self._content_bytes = 0
        self._index_cache: dict[str, PartIndex] = {}
        # Derived per-partition state kept by the layer above (directory entry sets):
        # dropped with the partition's index, bounded by `DERIVED_MAX` entries.
        self.derived: OrderedDict[str, Any] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, description: str) -> DataTable:
        from deltalake import DeltaTable

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
        return cls.open(path)  # the pond's own reader, as for any later open

    @staticmethod
    def is_table(path: Path) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(str(path))

    def refresh(self) -> None:
        """See commits made since this handle was opened (ours or another process's)."""
        known = max(self.log_version(), self._own[0])
        if not self._pending_refresh and not deltafiles.has_commits_after(self.path, known):
            return  # nothing new: a stat instead of a log listing
        self.catch_up()
        self._pending_refresh = False

    def _sync(self) -> None:
        if self._pending_refresh:
            self.refresh()

    def version(self) -> int:
        self._sync()
        return max(self.log_version(), self._own[0])

    def last_txn_seq(self) -> int:
        self._sync()
        if self._own[0] > self.log_version():
            return self._own[1]
        if self._snap is not None:
            v = self._snap.transaction_version(APP_ID)
        else:
            v = self.dt.transaction_version(APP_ID)
        return int(v) if v is not None else 0

    # -- writing ---------------------------------------------------------------------------
    def commit(self, rows: list[NodeRow], pond_txn: dict[str, Any]) -> int:
        """Commit rows atomically as one Delta version; returns that version, durable."""
        by_part: dict[str, list[NodeRow]] = defaultdict(list)
        for r in rows:
            by_part[r.part_id].append(r)
        written = []
        for part, prows in by_part.items():
            own = [r for r in prows if r.node_id == part]  # the directory's rows first
            table = rows_to_table(own + [r for r in prows if r.node_id != part])
            action = deltafiles.write_file(
                self.path, table, {PARTITION: part}, _own_group(len(own), table.num_rows)
            )
            written.append((action, table))
        seq = int(pond_txn["txn_seq"])
        before = self._files_version
        version = deltafiles.commit(
            self,
            self.path,
            [a for a, _ in written],
            metadata={"pond_txn": json.dumps(pond_txn, sort_keys=True)},
            app_txn=(APP_ID, seq),
            log=self.log,
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
            # A file this handle just wrote: index it (and, when small, keep its contents)
            # from the table in hand, as write_file laid out its row groups.
            starts = action.group_starts or [0]
            self._metas[action.path] = _FileMeta.of(_index_table(table), starts)
            content = table.column("content")
            if len(starts) == 1 and content.nbytes <= CONTENT_GROUP_MAX_BYTES:
                self._cache_content((action.path, 0), content.combine_chunks())
        if before != version - 1:
            self._pending_refresh = True
            return
        gone = set(removed)
        for part, files in self._files_by_part.items():
            if gone:
                self._files_by_part[part] = [f for f in files if f not in gone]
        for f in gone:
            self._file_sizes.pop(f, None)
            self._spans.pop(f, None)
        self._forget(gone)
        for action, _ in added:
            part = action.partition_values[PARTITION]
            self._files_by_part.setdefault(part, []).append(action.path)
            self._file_sizes[action.path] = action.size
            self._spans[action.path] = _action_span(action)
        self._files_version = version
        self._own = (version, seq)

    # -- reading ---------------------------------------------------------------------------
    def _ensure_file_map(self) -> None:
        v = self.version()
        if v == self._files_version:
            return
        parts: list[Any]
        if self._snap is not None:
            adds = self._snap.add_files()
            parts = [a.partition_values.get(PARTITION) for a in adds]
            paths = [a.path for a in adds]
            sizes = [a.size for a in adds]
            live = set(paths)  # files are immutable: the spans of those still live hold
            self._spans = {f: span for f, span in self._spans.items() if f in live}
            self._raw_stats = {a.path: a.stats for a in adds if a.stats}  # parsed on use
        else:
            actions = deltafiles.add_actions(self.dt)
            parts = actions.column(f"partition.{PARTITION}").to_pylist()
            paths = actions.column("path").to_pylist()
            sizes = actions.column("size_bytes").to_pylist()
            self._spans = _spans(actions, paths)
        by_part: dict[str, list[str]] = defaultdict(list)
        for p, f in zip(parts, paths, strict=True):
            by_part[p].append(f)
        self._files_by_part = dict(by_part)
        self._file_sizes = dict(zip(paths, sizes, strict=True))
        self._files_version = v
        self._forget({f for f in (*self._metas, *self._row_groups) if f not in self._file_sizes})
        for part in [p for p in self._index_cache if p not in self._files_by_part]:
            del self._index_cache[part]
            self.derived.pop(part, None)

    def _forget(self, files: set[str]) -> None:
        """Drop the cached rows and contents of files that are no longer live."""
        if not files:
            return
        for f in files:
            self._metas.pop(f, None)
            self._row_groups.pop(f, None)
        for key in [k for k in self._contents if k[0] in files]:
            self._content_bytes -= self._contents.pop(key).nbytes
        for key in [k for k in self._group_keys if k[0] in files]:
            del self._group_keys[key]

    def partitions(self) -> list[str]:
        self._ensure_file_map()
        return list(self._files_by_part)

    def partition_files(self, part_id: str) -> list[str]:
        self._ensure_file_map()
        return self._files_by_part.get(part_id, [])

    def file_count(self) -> int:
        self._ensure_file_map()
        return sum(len(v) for v in self._files_by_part.values())

    def _meta(self, rel: str) -> _FileMeta:
        """The file's key columns (and row groups), read once."""
        meta = self._metas.get(rel)
        if meta is None:
            pf = deltafiles.open_parquet(self.path / rel)
            keys = _read_columns(pf, KEY_COLUMNS)
            keys = keys if keys.schema.equals(KEY_SCHEMA) else keys.cast(KEY_SCHEMA)
            span = self._spans.get(rel)
            if span is not None and span[0] != keys.num_rows:  # row positions would be off
                raise PondError(
                    f"data/{rel}: the log says {span[0]} rows, the file holds {keys.num_rows}"
                )
            meta = _FileMeta(keys, deltafiles.row_group_starts(pf.metadata))
            self._metas[rel] = meta
        return meta

    def _span(self, rel: str) -> tuple[int, int | None, int | None]:
        """(rows, min txn_seq, max txn_seq) of a live file: from the log's statistics, or
        its footer when the log has none (None bounds: unknown)."""
        span = self._spans.get(rel)
        if span is None and rel in self._raw_stats:
            stats = json.loads(self._raw_stats[rel])
            n = stats.get("numRecords")
            parsed = _stats_span(n, stats) if n is not None else None
            if parsed is not None and parsed[1] is not None and parsed[2] is not None:
                span = self._spans[rel] = parsed
        if span is None:
            md = deltafiles.open_parquet(self.path / rel).metadata
            span = (md.num_rows, None, None)
            names = [md.schema.column(i).name for i in range(md.num_columns)]
            if "txn_seq" in names and md.num_row_groups:
                idx = names.index("txn_seq")
                stats = [md.row_group(g).column(idx).statistics for g in range(md.num_row_groups)]
                if all(s is not None and s.has_min_max for s in stats):
                    span = (md.num_rows, min(s.min for s in stats), max(s.max for s in stats))
            self._spans[rel] = span
        return span

    def _full_meta(self, rel: str) -> pa.Table:
        """The file's rows, every column but contents: the key columns already read plus
        the others, read once."""
        meta = self._meta(rel)
        if meta.index is None:
            rest = [c for c in INDEX_COLUMNS if c not in KEY_COLUMNS]
            table = _read_columns(deltafiles.open_parquet(self.path / rel), rest)
            for name in KEY_COLUMNS:
                table = table.append_column(KEY_SCHEMA.field(name), meta.keys.column(name))
            meta.index = _index_table(table)
        return meta.index

    def _key_groups(self, rel: str, node_id: str) -> list[tuple[int, pa.Table]]:
        """The key columns of the parts of a file that can hold rows of `node_id`, each
        with its first row: the whole file (read once) unless the row groups whose
        node_id bounds include it are few rows. Files of a big directory keep the
        directory's own rows in a row group of their own (commit and compaction put them
        first), so folding its deltas reads those small groups, not the entries' rows
        (bench 10f); they are kept, bounded in number, as the whole files are."""
        meta = self._metas.get(rel)
        if meta is not None:
            return [(0, meta.keys)]
        groups = self._groups(rel)
        picked = [g for g, (lo, hi) in enumerate(groups.bounds) if lo <= node_id <= hi]
        if len(groups.starts) <= 1 or sum(groups.rows[g] for g in picked) > OWN_GROUP_MIN_ROWS:
            return [(0, self._meta(rel).keys)]
        out = []
        for g in picked:
            keys = self._group_keys.get((rel, g))
            if keys is None:
                pf = deltafiles.open_parquet(self.path / rel)
                keys = _read_columns(pf, KEY_COLUMNS, group=g)
                keys = keys if keys.schema.equals(KEY_SCHEMA) else keys.cast(KEY_SCHEMA)
                self._group_keys[rel, g] = keys
                while len(self._group_keys) > GROUP_KEYS_MAX:
                    self._group_keys.popitem(last=False)
            out.append((groups.starts[g], keys))
        return out

    def _groups(self, rel: str) -> _RowGroups:
        """The file's row groups from its footer (read once)."""
        groups = self._row_groups.get(rel)
        if groups is None:
            groups = self._row_groups[rel] = _RowGroups.of(deltafiles.open_parquet(self.path / rel))
        return groups

    def _row_group_starts(self, rel: str) -> list[int]:
        """The first row of each of the file's row groups."""
        meta = self._metas.get(rel)
        return meta.group_starts if meta is not None else self._groups(rel).starts

    def _value(self, rel: str, row: int, column: str) -> Any:
        """One value of one row of a file: from its rows if read, else its row group's."""
        meta = self._metas.get(rel)
        if meta is not None and meta.index is not None:
            return meta.index.column(column)[row].as_py()
        starts = self._row_group_starts(rel)
        group = bisect.bisect_right(starts, row) - 1
        values = deltafiles.open_parquet(self.path / rel).read_row_group(group, columns=[column])
        return values.column(0)[row - starts[group]].as_py()

    def _content(self, rel: str, row: int) -> bytes | None:
        """The `content` of one row of one file, reading (and caching) its row group."""
        starts = self._row_group_starts(rel)
        group = bisect.bisect_right(starts, row) - 1
        key = (rel, group)
        column = self._contents.get(key)
        if column is None:
            pf = ParquetFile(self.path / rel)
            column = pf.read_row_group(group, columns=["content"]).column(0).combine_chunks()
            if column.nbytes <= CONTENT_GROUP_MAX_BYTES:  # a huge group is read, not kept
                self._cache_content(key, column)
        else:
            self._contents.move_to_end(key)
        return column[row - starts[group]].as_py()

    def _cache_content(self, key: tuple[str, int], column: pa.Array) -> None:
        self._contents[key] = column
        self._content_bytes += column.nbytes
        while self._content_bytes > CONTENT_CACHE_BYTES:
            _, old = self._contents.popitem(last=False)
            self._content_bytes -= old.nbytes

    def _read_file(self, rel: str) -> pa.Table:
        """A whole file, contents included (compaction); not cached."""
        return deltafiles.read_parquet(self.path / rel).cast(FILE_SCHEMA)

    def partition_index(self, part_id: str) -> PartIndex:
        """Every row of the partition, without contents (see PartIndex).

        Files are immutable: a file already indexed is never read again, so after a commit
        the index is rebuilt from the cached per-file tables plus the new file's."""
        files = tuple(self.partition_files(part_id))
        cached = self._index_cache.get(part_id)
        if cached is not None and cached.files == files:
            return cached
        index = PartIndex(self, part_id, files, cached)
        self._index_cache[part_id] = index
        return index

    def cache_size(self) -> dict[str, int]:
        """What the read caches hold: indexed files, content row groups and their bytes."""
        return {
            "indexed_files": len(self._metas),
            "index_rows": sum(m.keys.num_rows for m in self._metas.values()),
            "content_groups": len(self._contents),
            "content_bytes": self._content_bytes,
            "partitions": len(self._index_cache),
            "derived": len(self.derived),
        }

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
        merged, own = _own_rows_first(
            pa.concat_tables([self._read_file(f) for f in files]), part_id
        )
        before, seq = self._files_version, self.last_txn_seq()
        version, add = deltafiles.compact(
            self, self.path, files, merged, {PARTITION: part_id}, self.log, own
        )
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
            checkpoints.checkpoint(self.path, archive_key="pond_txn")
