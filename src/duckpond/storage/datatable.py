"""The data table: one row per node version, partitioned by owning directory (SPEC §2).

Opening reads the log with the pond's own reader (`deltalog`), not delta-rs. A commit
writes one Parquet file per partition touched (storage/parquetwrite.py, synced) and
appends the log entry itself (storage/deltacommit.py: written to a temp file, synced,
linked into place, the log directory synced), then applies it to the handle's view
without re-reading the files (nor the log, unless another writer committed meanwhile).
delta-rs creates the table and serves history,
retention changes and repairs (`dt`, opened on first use); it never writes a commit.
Upkeep inside a write compacts a partition's small files in size tiers and checkpoints
every upkeep.CHECKPOINT_EVERY versions (storage/checkpoints.py, also the pond's own).

Reads go straight to the Parquet files of one partition (never `to_pyarrow_*`, which makes
the process abort at exit). A partition is indexed without its `content` column
(storage/partindex.py; an Arrow table per immutable file, so a refresh reads only files
it has not seen); contents are read per row group on demand, through a cache bounded in
bytes. Files no longer live (compacted away) leave every cache.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import PondError
from ..nodes import NodeRow
from . import checkpoints, deltacommit, deltalog, parquetwrite, tableread, tlog, upkeep
from .datalayout import OWN_GROUP_MIN_ROWS, RowGroups, own_group, own_rows_first
from .dataschema import (
    APP_ID,
    DATA_SCHEMA,
    FILE_SCHEMA,
    INDEX_COLUMNS,
    KEY_COLUMNS,
    KEY_SCHEMA,
    PARTITION,
    index_table,
    read_columns,
    rows_to_table,
)
from .durability import fsync_dir, sync_commit
from .partindex import FileMeta, PartIndex
from .pqread import ParquetFile

if TYPE_CHECKING:
    # deltalake is imported when a handle first needs it (a write, history, upkeep): plain
    # reads go through `deltalog`, so `pond list` and `pond cat` never load it (~25 ms).
    from deltalake import DeltaTable

# Row groups of contents kept in memory (least recently used dropped first): 4 MiB holds a
# long-lived writer's recent files and the groups it read lately (row groups hold at most
# parquetwrite.ROW_GROUP_CONTENT_BYTES of contents unless one body is bigger). 16 and then
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


def _action_span(action: parquetwrite.FileAction) -> tuple[int, int | None, int | None]:
    return _stats_span(action.num_records, action.stats or {})


# Key columns of small row groups (a big directory's own rows) kept at most, as pairs.
GROUP_KEYS_MAX = 4096


class DataTable(deltalog.SnapshotThenDelta):
    """The `$POND/data` Delta table.

    Opened, it holds the pond's own snapshot of the log (`deltalog`), which its reads,
    commits and upkeep use; the delta-rs handle `dt` is opened on first use (history,
    retention changes, repairs, a log the pond's reader cannot read) and from then on is
    the handle's view of the log."""

    SNAPSHOT_STATS = False  # only paths, sizes, partitions (statistics: parsed on use)

    def __init__(
        self, path: Path, dt: DeltaTable | None, snapshot: deltalog.Snapshot | None = None
    ) -> None:
        super().__init__(path, dt, snapshot)
        self._files_version = -1
        self._files_by_part: dict[str, list[str]] = {}
        self._pending_refresh = False
        self._own = (-1, 0)  # (version, txn_seq) of this handle's last commit
        self._tlog: tuple[int, tlog.Tree] | None = None  # (txn_seq, tree after it)
        self.log = deltacommit.TableLog(path)  # log state: last commit, protocol checked
        self._file_sizes: dict[str, int] = {}
        # (rows, min txn_seq, max txn_seq) of live files, from the log's statistics
        self._spans: dict[str, tuple[int, int | None, int | None]] = {}
        self._raw_stats: dict[str, str] = {}  # a log snapshot's unparsed statistics
        # Caches, all keyed by live files: entries for files compacted away are dropped.
        self._metas: dict[str, FileMeta] = {}
        self._row_groups: dict[str, RowGroups] = {}  # footers of files not read whole
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
            configuration=upkeep.TABLE_CONFIG,
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
        if not self._pending_refresh and not tableread.has_commits_after(self.path, known):
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
            action = parquetwrite.write_file(
                self.path, table, {PARTITION: part}, own_group(len(own), table.num_rows)
            )
            written.append((action, table))
        seq = int(pond_txn["txn_seq"])
        # This commit's leaf of the tamper-evident log, and the tree head after it.
        digests = [
            d for a, t in written for _, d in tlog.row_digests(t, a.partition_values[PARTITION])
        ]
        tree = self._tlog_tree()
        recorded = tlog.record(tree, tlog.leaf_hash(seq, str(pond_txn["txn_id"]), digests))
        pond_txn = {**pond_txn, tlog.TLOG_KEY: recorded.to_json()}
        before = self._files_version
        version = deltacommit.commit(
            self,
            self.path,
            [a for a, _ in written],
            metadata={"pond_txn": json.dumps(pond_txn, sort_keys=True)},
            app_txn=(APP_ID, seq),
            log=self.log,
        )
        self._apply_own(before, version, seq, written, removed=[])
        self._tlog = (seq, tree)
        return version

    def _tlog_tree(self) -> tlog.Tree:
        """The tamper-evident log's tree as the newest data commit left it: its recorded
        frontier; for a pond whose newest commit records none (written before the log was
        kept), or whose record was damaged, recomputed from every commit's rows
        (storage/tlogcheck.py)."""
        seq = self.last_txn_seq()
        if self._tlog is not None and self._tlog[0] == seq:
            return self._tlog[1].copy()
        try:
            found, recorded = tlog.last_record(self.path, self.version())
            if not found:
                return tlog.Tree()
            if recorded is not None:
                tree = recorded.tree()
                if tree.root() == recorded.root:
                    return tree
        except PondError:
            pass  # a record that does not parse: recomputed (verify names it)
        from . import tlogcheck  # verify's module: a write needs it once per process at most

        return tlogcheck.adopt(self.path)

    def _apply_own(
        self,
        before: int,
        version: int,
        seq: int,
        added: list[tuple[parquetwrite.FileAction, pa.Table]],
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
            self._metas[action.path] = FileMeta.of(index_table(table), starts)
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
            actions = tableread.add_actions(self.dt)
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

    def file_meta(self, rel: str) -> FileMeta:
        """The file's key columns (and row groups), read once."""
        meta = self._metas.get(rel)
        if meta is None:
            pf = tableread.open_parquet(self.path / rel)
            keys = read_columns(pf, KEY_COLUMNS)
            keys = keys if keys.schema.equals(KEY_SCHEMA) else keys.cast(KEY_SCHEMA)
            span = self._spans.get(rel)
            if span is not None and span[0] != keys.num_rows:  # row positions would be off
                raise PondError(
                    f"data/{rel}: the log says {span[0]} rows, the file holds {keys.num_rows}"
                )
            meta = FileMeta(keys, parquetwrite.row_group_starts(pf.metadata))
            self._metas[rel] = meta
        return meta

    def span(self, rel: str) -> tuple[int, int | None, int | None]:
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
            md = tableread.open_parquet(self.path / rel).metadata
            span = (md.num_rows, None, None)
            names = [md.schema.column(i).name for i in range(md.num_columns)]
            if "txn_seq" in names and md.num_row_groups:
                idx = names.index("txn_seq")
                stats = [md.row_group(g).column(idx).statistics for g in range(md.num_row_groups)]
                if all(s is not None and s.has_min_max for s in stats):
                    span = (md.num_rows, min(s.min for s in stats), max(s.max for s in stats))
            self._spans[rel] = span
        return span

    def file_index(self, rel: str) -> pa.Table:
        """The file's rows, every column but contents: the key columns already read plus
        the others, read once."""
        meta = self.file_meta(rel)
        if meta.index is None:
            rest = [c for c in INDEX_COLUMNS if c not in KEY_COLUMNS]
            table = read_columns(tableread.open_parquet(self.path / rel), rest)
            for name in KEY_COLUMNS:
                table = table.append_column(KEY_SCHEMA.field(name), meta.keys.column(name))
            meta.index = index_table(table)
        return meta.index

    def key_groups(self, rel: str, node_id: str) -> list[tuple[int, pa.Table]]:
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
            return [(0, self.file_meta(rel).keys)]
        out = []
        for g in picked:
            keys = self._group_keys.get((rel, g))
            if keys is None:
                pf = tableread.open_parquet(self.path / rel)
                keys = read_columns(pf, KEY_COLUMNS, group=g)
                keys = keys if keys.schema.equals(KEY_SCHEMA) else keys.cast(KEY_SCHEMA)
                self._group_keys[rel, g] = keys
                while len(self._group_keys) > GROUP_KEYS_MAX:
                    self._group_keys.popitem(last=False)
            out.append((groups.starts[g], keys))
        return out

    def _groups(self, rel: str) -> RowGroups:
        """The file's row groups from its footer (read once)."""
        groups = self._row_groups.get(rel)
        if groups is None:
            groups = self._row_groups[rel] = RowGroups.of(tableread.open_parquet(self.path / rel))
        return groups

    def _row_group_starts(self, rel: str) -> list[int]:
        """The first row of each of the file's row groups."""
        meta = self._metas.get(rel)
        return meta.group_starts if meta is not None else self._groups(rel).starts

    def value(self, rel: str, row: int, column: str) -> Any:
        """One value of one row of a file: from its rows if read, else its row group's."""
        meta = self._metas.get(rel)
        if meta is not None and meta.index is not None:
            return meta.index.column(column)[row].as_py()
        starts = self._row_group_starts(rel)
        group = bisect.bisect_right(starts, row) - 1
        values = tableread.open_parquet(self.path / rel).read_row_group(group, columns=[column])
        return values.column(0)[row - starts[group]].as_py()

    def content(self, rel: str, row: int) -> bytes | None:
        """The `content` of one row of one file, reading (and caching) its row group."""
        return self.contents_at(rel, [row])[0]

    def contents_at(self, rel: str, rows: list[int]) -> list[bytes | None]:
        """The `content` of rows of one file: each row group read once (one open of the
        file for all), kept in the cache unless huge; a series' versions share groups."""
        starts = self._row_group_starts(rel)
        groups: dict[int, pa.Array] = {}
        pf: ParquetFile | None = None
        out = []
        for row in rows:
            group = bisect.bisect_right(starts, row) - 1
            column = groups.get(group)
            if column is None:
                column = self._contents.get((rel, group))
                if column is None:
                    pf = pf or ParquetFile(self.path / rel)
                    column = pf.read_row_group(group, columns=["content"]).column(0)
                    column = column.combine_chunks()
                    if column.nbytes <= CONTENT_GROUP_MAX_BYTES:  # a huge group: not kept
                        self._cache_content((rel, group), column)
                else:
                    self._contents.move_to_end((rel, group))
                groups[group] = column
            out.append(column[row - starts[group]].as_py())
        return out

    def _cache_content(self, key: tuple[str, int], column: pa.Array) -> None:
        self._contents[key] = column
        self._content_bytes += column.nbytes
        while self._content_bytes > CONTENT_CACHE_BYTES:
            _, old = self._contents.popitem(last=False)
            self._content_bytes -= old.nbytes

    def _read_file(self, rel: str) -> pa.Table:
        """A whole file, contents included (compaction); not cached."""
        return tableread.read_parquet(self.path / rel).cast(FILE_SCHEMA)

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
        return tableread.history_metadata(self.dt, self.path, "pond_txn")

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
        merged, own = own_rows_first(pa.concat_tables([self._read_file(f) for f in files]), part_id)
        before, seq = self._files_version, self.last_txn_seq()
        version, add = upkeep.compact(
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
                col = tableread.read_parquet(self.path / f, columns=["content_hash"])
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
        if self.version() - tableread.last_checkpoint_version(self.path) >= upkeep.CHECKPOINT_EVERY:
            checkpoints.checkpoint(self.path, archive_key="pond_txn")
