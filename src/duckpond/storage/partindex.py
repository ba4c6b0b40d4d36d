"""A partition's index: every row of one partition of the data table, without contents,
as one Arrow table, with the node lookups, directory tails and latest rows read from it.
The files' rows come from the table handle (PartFiles), which reads and caches them."""

from __future__ import annotations

import bisect
import json
import sys
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import pyarrow as pa

from ..nodes import NodeRow
from .dataschema import INDEX_SCHEMA, KEY_COLUMNS, KEY_SCHEMA, PARTITION


@dataclass
class FileMeta:
    """One immutable data file: its rows without contents (the key columns first, the
    rest on first use), and its row-group offsets."""

    keys: pa.Table
    group_starts: list[int]  # first row of each row group
    index: pa.Table | None = None  # every column but contents; None = not read yet

    @classmethod
    def of(cls, index: pa.Table, group_starts: list[int]) -> FileMeta:
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


class PartFiles(Protocol):
    """What a partition index reads of the data table's files (DataTable): each file
    read once and cached there, as files are immutable."""

    def span(self, rel: str) -> tuple[int, int | None, int | None]: ...
    def file_meta(self, rel: str) -> FileMeta: ...
    def file_index(self, rel: str) -> pa.Table: ...
    def key_groups(self, rel: str, node_id: str) -> list[tuple[int, pa.Table]]: ...
    def content(self, rel: str, row: int) -> bytes | None: ...
    def value(self, rel: str, row: int, column: str) -> Any: ...


class PartIndex:
    """Every row of one partition, without contents, as one Arrow table.

    Looking a node up filters the table once (no Python object per row) and remembers
    where its rows are; listing builds the latest row of every node once. When a commit
    only adds files, the next index takes both over and adds the new files' rows, so a
    write into a big directory never rescans it. Rows come out as NodeRows whose content
    loads on use.
    """

    def __init__(
        self, table: PartFiles, part_id: str, files: tuple[str, ...], prev: PartIndex | None
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
            at += table.span(f)[0]
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
            t, start = self._table.file_meta(self.files[i]).keys, self._starts[i]
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
            keys = [self._table.file_meta(f).keys for f in self.files]
            self._keys = pa.concat_tables(keys) if keys else KEY_SCHEMA.empty_table()
        return self._keys

    @property
    def index(self) -> pa.Table:
        """Every row of the partition, every column but contents (reads what is unread)."""
        if self._index is None:
            tables = [self._table.file_index(f) for f in self.files]
            self._index = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
        return self._index

    def _rows_at(self, positions: list[int]) -> list[NodeRow]:
        if not positions:
            return []
        return self._make_rows(positions, self.columns_at(positions, _ROW_COLUMNS))

    def columns_at(self, positions: list[int], names: list[str]) -> list[list[Any]]:
        """The values of the index columns `names` at `positions`, one list per column."""
        if len(positions) * 4 >= self.num_rows and len(positions) > 64:
            # most rows (listing a directory): whole columns, picked in Python
            whole = [self.index.column(name).to_pylist() for name in names]
            return [[col[p] for p in positions] for col in whole]
        if len(positions) > 64 and self._index is not None:  # one gather over the index
            picked = self.index.take(pa.array(positions, pa.int64()))
        elif positions:  # slice them out of their files' tables (read only those files)
            slices = []
            for pos in positions:
                rel, row = self.file_row(pos)
                slices.append(self._table.file_index(rel).slice(row, 1))
            picked = pa.concat_tables(slices)
        else:
            return [[] for _ in names]
        return [picked.column(name).to_pylist() for name in names]

    def file_row(self, pos: int) -> tuple[str, int]:
        """(file, row in it) of a position in the partition."""
        i = bisect.bisect_right(self._starts, pos) - 1
        return self.files[i], pos - self._starts[i]

    def _make_rows(self, positions: list[int], cols: list[list[Any]]) -> list[NodeRow]:
        starts, files, load = self._starts, self.files, self._table.content
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

    def rows_of_txns(self, first: int, last: int | None = None) -> list[NodeRow]:
        """The rows written with a txn_seq from `first` to `last` (None: no bound), in
        stored order (`pond revert`, `diff`, `log`: reads the key columns only)."""
        seqs = self.keys.column("txn_seq").to_pylist()
        hits = [i for i, s in enumerate(seqs) if s >= first and (last is None or s <= last)]
        return self._rows_at(hits)

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
            content = self._table.content(rel, row)
            if content is not None:
                out.append((content, None))
            else:
                out.append((None, self._table.value(rel, row, "content_hash")))
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
        spans = [self._table.span(f) for f in self.files]
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
            for offset, keys in self._table.key_groups(self.files[i], node_id):
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


def _trim_tail(found: NodeVersions, incomplete: Collection[str | None]) -> NodeVersions:
    """`found` (sorted) from its newest row whose attributes are not in `incomplete` on."""
    for i in range(len(found) - 1, -1, -1):
        if found[i][2] not in incomplete:
            return found[i:]
    return found
