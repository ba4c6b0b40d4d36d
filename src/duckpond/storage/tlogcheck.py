"""Recompute the tamper-evident log (storage/tlog.py) from a pond's tables and check it.

Three independent records are compared, each of which another Delta writer (or a hand
that edits files) would have to rewrite consistently to go unnoticed:

- the rows of the data table: each transaction's leaf is recomputed from the rows that
  carry its txn_seq, in the live snapshot, whatever files they are in now;
- the data log: the order of the data commits, their `pond_txn` (seq, id) and the leaf
  and tree head each recorded when it committed (the archive keeps those of pruned entries);
- the control table: its `data_committed` rows name each committed transaction, its id and
  its data version, so a data log cut short or rearranged disagrees with it.

The answer is the first transaction (lowest txn_seq) whose content, order or presence
changed, as one line; or the size and root of the tree when everything agrees.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import PondError
from ..records import DATA_COMMITTED
from . import deltalog, tableread
from .dataschema import PARTITION
from .tlog import Recorded, Tree, leaf_hash
from .tlogentries import (
    TLOG_KEY,
    Entry,
    NotJson,
    Written,
    frontier_items,
    read_entries_aside,
    written_archived,
)
from .tlogrows import row_digests_by_txn

LOG = "_delta_log"


class Commit:
    """One data commit of the log that carries `pond_txn`: one leaf of the tree. Its
    record is kept as read and parsed only when asked for: an intact record is compared
    as the text the pond wrote (`written`: no JSON decoded at all), or as the hex text of
    its parsed `tlog` value (`raw`) when spelled otherwise."""

    __slots__ = ("version", "txn_seq", "txn_id", "_raw", "written", "_parsed")

    def __init__(
        self, version: int, txn_seq: int, txn_id: str, raw: Any, written: Written | None = None
    ) -> None:
        self.version = version
        self.txn_seq = txn_seq
        self.txn_id = txn_id
        self._raw = raw  # pond_txn's `tlog` value; None: committed before the log was kept
        self.written = written  # (.., size, leaf, root, frontier) as the pond wrote them
        self._parsed: tuple[Recorded | None, bool] | None = None

    @classmethod
    def of_written(cls, version: int, written: Written) -> Commit:
        return cls(version, written[0], written[1], None, written)

    @property
    def raw(self) -> Any:
        """The `tlog` value as JSON would decode it."""
        w = self.written
        if w is not None and self._raw is None:
            # the grammar `written` matched is exactly this JSON (NotJson: it is not)
            frontier = frontier_items(w[5])
            self._raw = {"frontier": frontier, "leaf": w[3], "root": w[4], "size": w[2]}
        return self._raw

    def _parse(self) -> tuple[Recorded | None, bool]:
        if self._parsed is None:
            try:
                self._parsed = Recorded.of({TLOG_KEY: self.raw}), False
            except PondError:
                self._parsed = None, True
        return self._parsed

    @property
    def recorded(self) -> Recorded | None:
        """None: committed before the log was kept (or damaged)."""
        return self._parse()[0]

    @property
    def damaged(self) -> bool:
        """A record that does not parse."""
        return self._parse()[1]


@dataclass(frozen=True)
class TlogLeaf:
    """One leaf as `pond tlog show` lists it (hashes hex; None: not recorded)."""

    index: int  # 1-based: the tree's size after it
    txn_seq: int
    txn_id: str
    data_version: int
    leaf: str | None
    root: str | None


@dataclass(frozen=True)
class TlogShow:
    """The recorded log: its head (the newest recorded) and every leaf."""

    size: int
    root: str
    leaves: list[TlogLeaf]
    unrecorded: int  # data commits not (yet) covered by a recorded head

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root,
            "unrecorded": self.unrecorded,
            "leaves": [leaf.__dict__ for leaf in self.leaves],
        }


@dataclass(frozen=True)
class TlogReport:
    """The answer of `pond tlog verify`."""

    source: str  # the pond's directory or the remote's URL
    size: int  # leaves whose recorded head was reproduced
    root: str  # hex root of the tree of that size
    first_bad: int | None = None  # txn_seq of the first changed transaction
    problem: str | None = None  # one line naming it
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "size": self.size,
            "root": self.root,
            "first_bad_txn_seq": self.first_bad,
            "problem": self.problem,
            "notes": self.notes,
        }


# -- reading the records --------------------------------------------------------------------
def _log_versions(log: Path) -> tuple[list[int], int]:
    """The versions of the JSON entries present, and the newest version any entry or
    checkpoint names (-1: none)."""
    entries: list[int] = []
    tip = -1
    try:
        names = os.listdir(log)
    except FileNotFoundError:
        return [], -1
    for name in names:
        stem, _, rest = name.partition(".")
        if len(stem) != 20 or not stem.isdigit():
            continue
        if rest == "json":
            entries.append(int(stem))
        if rest == "json" or rest.startswith("checkpoint."):
            tip = max(tip, int(stem))
    return sorted(entries), tip


class LogEntries:
    """The data log's JSON entries at most version `upto` (`listed`: their versions as
    the snapshot at `upto` listed them, else the log is listed here), to be read: with
    `aside`, by a second process started now when there are many (`read_entries_aside`),
    so the caller can read the rows meanwhile; else when `commits()` asks."""

    def __init__(
        self,
        table_dir: Path,
        upto: int | None = None,
        listed: list[int] | None = None,
        as_written: bool = True,
        aside: bool = False,
    ) -> None:
        if listed is not None and upto is not None:
            self.versions, self.tip = sorted(v for v in listed if v <= upto), upto
        else:
            self.versions, self.tip = _log_versions(table_dir / LOG)
            if upto is not None:
                self.versions = [v for v in self.versions if v <= upto]
                self.tip = min(self.tip, upto)
        self.table_dir, self.upto, self.as_written = table_dir, upto, as_written
        log = f"{table_dir / LOG}"
        self.reading = read_entries_aside(log, self.versions, as_written, start=aside)

    def close(self) -> None:
        self.reading.close()

    def commits(self) -> tuple[list[Commit], list[int]]:
        """The commits that carry `pond_txn` and the versions missing (see `commits`)."""
        entered: list[Entry] = self.reading.result()
        table_dir, upto, as_written = self.table_dir, self.upto, self.as_written
        entries, tip = self.versions, self.tip
        # what each entry read holds: the rest of its pond_txn is dropped as it is read
        read: dict[int, Commit | None] = {}
        for v, (exists, pond_txn, written) in zip(entries, entered, strict=True):
            if written is not None:  # the pond's own spelling: nothing decoded
                read[v] = Commit.of_written(v, written)
            elif exists:  # else pruned meanwhile: archived first
                read[v] = _commit(v, pond_txn)
        archived = {v: raw for v, _, raw in tableread.archived_metadata(table_dir) if v not in read}
        missing = (
            [v for v in range(entries[0], tip + 1) if v not in read and v not in archived]
            if entries
            else []
        )
        out: list[Commit] = []
        for v in sorted(read.keys() | archived.keys()):
            if upto is not None and v > upto:
                continue
            if v in read:
                c = read[v]
            elif as_written and (written := written_archived(archived[v])) is not None:
                c = Commit.of_written(v, written)
            else:
                c = _commit(v, json.loads(archived[v]))
            if c is not None:
                out.append(c)
        return out, missing


def commits(
    table_dir: Path,
    upto: int | None = None,
    listed: list[int] | None = None,
    as_written: bool = True,
) -> tuple[list[Commit], list[int]]:
    """The data commits that carry `pond_txn`, in log order (the archive's, then the
    live log's), at most version `upto`, and the versions missing from the live log (gaps
    between its first entry and its newest version). `listed`: the JSON entries' versions
    as the snapshot at `upto` listed them (else the log is listed here). `as_written`:
    the pond's own records are read as the text it wrote (a `Commit.raw` of one may then
    raise NotJson: read them again without)."""
    entries = LogEntries(table_dir, upto, listed, as_written)
    try:
        return entries.commits()
    finally:
        entries.close()


def _commit(version: int, pond_txn: dict[str, Any] | None) -> Commit | None:
    """The leaf a data commit's `pond_txn` names; None: not a transaction's commit."""
    if not pond_txn or "txn_seq" not in pond_txn:
        return None
    seq, tid = int(pond_txn["txn_seq"]), str(pond_txn.get("txn_id"))
    return Commit(version, seq, tid, pond_txn.get(TLOG_KEY))


def show(table_dir: Path) -> TlogShow:
    """The log as recorded (no rows read): every leaf and the newest recorded head."""
    try:
        return _show(table_dir, as_written=True)
    except NotJson:  # a record the text reading cannot decide: all read as JSON
        return _show(table_dir, as_written=False)


def _show(table_dir: Path, as_written: bool) -> TlogShow:
    found, _ = commits(table_dir, as_written=as_written)
    leaves = []
    size, root, unrecorded = 0, Tree().root().hex(), 0
    for i, c in enumerate(found, start=1):
        rec = c.recorded
        leaves.append(
            TlogLeaf(
                i,
                c.txn_seq,
                c.txn_id,
                c.version,
                rec.leaf.hex() if rec else None,
                rec.root.hex() if rec else None,
            )
        )
        if rec is not None:
            size, root, unrecorded = rec.size, rec.root.hex(), 0
        else:
            unrecorded += 1
    return TlogShow(size, root, leaves, unrecorded)


def live_files(table_dir: Path) -> tuple[list[tuple[str, str]], int, list[int] | None]:
    """(path, part_id) of the live files, the version they are live at and the versions
    of the log's JSON entries listed (None: not listed), replaying the entries there are
    when some are missing (a removed entry must not hide what is left)."""
    try:
        snap = deltalog.Snapshot.load(table_dir, stats=False, gaps=True)
        files = [(f.path, f.partition_values.get(PARTITION) or "") for f in snap.add_files()]
        return files, snap.version, snap.listed
    except deltalog.Unsupported as e:
        if "deletion vectors" in str(e):  # rows deleted without rewriting their files
            raise PondError(
                "the data table has deletion vectors (another Delta writer deleted rows "
                "without rewriting their files): its rows cannot be checked"
            ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    from deltalake import DeltaTable

    dt = DeltaTable(str(table_dir))
    actions = tableread.add_actions(dt)
    parts = actions.column(f"partition.{PARTITION}").to_pylist()
    files = list(zip(actions.column("path").to_pylist(), parts, strict=True))
    return files, dt.version(), None


def control_commits(control_dir: Path) -> dict[int, tuple[str, int | None]]:
    """txn_seq -> (txn_id, data version) of the control table's `data_committed` rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    snap = deltalog.Snapshot.load(control_dir, stats=False, gaps=True)
    out: dict[int, tuple[str, int | None]] = {}
    want = ["txn_seq", "txn_id", "data_fs_version"]
    tables = [
        tableread.read_parquet(control_dir / unquote(f.path), columns=[*want, "record_type"])
        for f in snap.add_files()
    ]
    try:  # filtered and converted once, not per file
        tables = [pa.concat_tables(tables, promote_options="default")] if tables else []
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # files of other schemas (another writer's): one by one
    for t in tables:
        # a third of the rows: filtered by Arrow before any becomes a Python object
        t = t.filter(pc.equal(t.column("record_type"), DATA_COMMITTED))
        for seq, tid, version in zip(*(t.column(c).to_pylist() for c in want), strict=True):
            if seq is not None:
                out[int(seq)] = (str(tid), None if version is None else int(version))
    return out


# -- checking -------------------------------------------------------------------------------
Problem = tuple[int, str]  # (txn_seq, one line)


def _order(found: list[Commit], missing: list[int]) -> Problem | None:
    """The first transaction missing from, repeated in, or out of its place in the data
    log: seqs must run 1, 2, 3, ... in log order (each is the last committed + 1)."""
    expected, prev_version = 1, -1
    for c in found:
        if c.txn_seq == expected:
            expected, prev_version = expected + 1, c.version
            continue
        where: dict[int, list[int]] = {}  # only once something is out of place
        for other in found:
            where.setdefault(other.txn_seq, []).append(other.version)
        if c.txn_seq < expected:
            return c.txn_seq, (
                f"txn {c.txn_seq}: committed twice (data log versions "
                f"{', '.join(map(str, where[c.txn_seq]))})"
            )
        later = [v for v in where.get(expected, []) if v > c.version]
        if later:
            return expected, (
                f"txn {expected}: order changed: its data commit (version {later[0]}) now "
                f"comes after txn {c.txn_seq}'s (version {c.version})"
            )
        gone = [v for v in missing if prev_version < v < c.version]
        because = f"; data log version {gone[0]} is missing" if gone else ""
        return expected, (
            f"txn {expected}: missing: no data commit holds it (the data log goes from txn "
            f"{expected - 1} to txn {c.txn_seq}{because})"
        )
    return None


def _against_control(
    found: list[Commit], control: dict[int, tuple[str, int | None]]
) -> Problem | None:
    """The first transaction the control table recorded as committed that the data log
    lacks, holds under another id, or holds at another version."""
    by_seq = {c.txn_seq: c for c in found}
    last = max(by_seq, default=0)
    for seq in sorted(control):
        tid, version = control[seq]
        c = by_seq.get(seq)
        if c is not None and c.txn_id == tid and (version is None or c.version == version):
            continue  # as recorded
        at = f" at data version {version}" if version is not None else ""
        if c is None:
            lost = (
                f"the data log ends at txn {last} (the data log was cut short)"
                if seq > last
                else "no data commit holds it"
            )
            return (
                seq,
                f"txn {seq}: missing: the control table records it committed{at}, but {lost}",
            )
        if c.txn_id != tid:
            return seq, (
                f"txn {seq}: replaced: its data commit has txn_id {c.txn_id}, the control "
                f"table recorded {tid}"
            )
        if version is not None and c.version != version:
            return seq, (
                f"txn {seq}: order changed: its data commit is at version {c.version}, the "
                f"control table recorded version {version}"
            )
    return None


def _content(
    found: list[Commit], by_txn: dict[int, list[bytes]]
) -> tuple[Problem | None, int, str, list[int]]:
    """Rebuild the tree from the rows (taking each commit's rows out of `by_txn`) and
    compare it with each commit's record: (the first problem, the size and hex root of
    the last head reproduced, the seqs after it that recorded none)."""
    tree = Tree()
    size, root = 0, tree.root().hex()
    unrecorded: list[int] = []  # seqs since the last recorded head (written before the log)
    problem: Problem | None = None
    frontier_hex: list[str] = []  # tree.frontier as the records spell it
    for c in found:
        leaf = leaf_hash(c.txn_seq, c.txn_id, by_txn.pop(c.txn_seq, []))
        merged = tree.append(leaf)
        if merged:
            del frontier_hex[-merged:]
        frontier_hex.append(tree.frontier[-1].hex())
        written = c.written
        if written is not None:
            # the common case: the record as the pond wrote it, compared as that text
            if (
                problem is None
                and written[2] == tree.size
                and written[3] == leaf.hex()
                and written[5] == '\\"' + '\\", \\"'.join(frontier_hex) + '\\"'
                and written[4] == tree.root().hex()  # last: log2(size) hashes
            ):
                size, root, unrecorded = tree.size, written[4], []
                continue
            raw = None
        else:
            raw = c.raw
        if problem is None and type(raw) is dict and raw.get("size") == tree.size:
            # the common case, compared as text: an intact record as the pond writes it
            now_hex = tree.root().hex()
            if (
                raw.get("leaf") == leaf.hex()
                and raw.get("root") == now_hex
                and raw.get("frontier") == frontier_hex
            ):
                size, root, unrecorded = tree.size, now_hex, []
                continue
        rec = c.recorded
        if c.damaged and problem is None:
            problem = c.txn_seq, f"txn {c.txn_seq}: its record in the data log is unreadable"
        if rec is None:
            unrecorded.append(c.txn_seq)
            continue
        if problem is not None:
            continue  # the rest of the rows are still taken: stray rows are not reported twice
        seq = c.txn_seq
        now = tree.root()  # once per commit: each is log2(size) hashes
        if rec.leaf != leaf:
            problem = seq, f"txn {seq}: content changed: its rows are not the ones it committed"
        elif rec.size != tree.size:
            problem = (
                seq,
                (
                    f"txn {seq}: order changed: it was leaf {rec.size} of the log, it is leaf "
                    f"{tree.size} now"
                ),
            )
        elif rec.root != now and unrecorded:
            span = f"{unrecorded[0]}..{unrecorded[-1]}" if len(unrecorded) > 1 else ""
            problem = (
                unrecorded[0],
                (
                    f"txn {span or unrecorded[0]}: content changed: written before the log was "
                    f"kept, they no longer match the tree head txn {seq} recorded"
                ),
            )
        elif rec.root != now or list(rec.frontier) != tree.frontier:
            problem = seq, f"txn {seq}: the tree head it recorded was changed"
        else:
            size, root, unrecorded = tree.size, now.hex(), []
    return problem, size, root, unrecorded


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector paused: a check allocates a record (dicts, lists) per commit,
    none of them in a cycle, and the collector's passes over them all cost a tenth of
    checking 10,000 commits; what is garbage is freed by reference counting as ever."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check(data_dir: Path, control_dir: Path | None, source: str) -> TlogReport:
    """Recompute the tree from `data_dir` and compare it with every record.

    Reads take no lock, so the order matters: the control table first (its
    `data_committed` rows follow their data commits), then the data table's live files,
    then the commits up to that version (a write committing meanwhile is not seen)."""
    with _no_cyclic_gc():
        try:
            return _check(data_dir, control_dir, source, as_written=True)
        except NotJson:  # a record the text reading cannot decide: all read as JSON
            return _check(data_dir, control_dir, source, as_written=False)


def _check(data_dir: Path, control_dir: Path | None, source: str, as_written: bool) -> TlogReport:
    problems: list[Problem] = []
    notes: list[str] = []
    control: dict[int, tuple[str, int | None]] | None = None
    if control_dir is not None:
        try:
            control = control_commits(control_dir)
        except (PondError, deltalog.Unsupported, OSError, ValueError) as e:
            notes.append(f"the control table could not be read ({e}): presence not cross-checked")
    files, version, listed = live_files(data_dir)
    # the log's entries are read by a second process (when many) while this one reads the
    # rows: a verify reads every row and every entry, and threads would share one core
    entries = LogEntries(data_dir, version, listed, as_written, aside=True)
    try:
        by_txn = row_digests_by_txn(data_dir, files, notes)
        found, missing = entries.commits()
    finally:
        entries.close()
    if (p := _order(found, missing)) is not None:
        problems.append(p)
    if control is not None and (p := _against_control(found, control)) is not None:
        problems.append(p)
    p, size, root, unrecorded = _content(found, by_txn)
    if p is not None:
        problems.append(p)
    stray = sorted(by_txn)  # _content took the rows of every commit
    if stray:
        seq = stray[0]
        problems.append((seq, f"txn {seq}: rows carry txn_seq {seq} but no data commit wrote them"))
    if unrecorded and not problems:
        notes.append(
            f"{len(unrecorded)} transaction(s) from txn {unrecorded[0]} on are not in the log "
            "yet (written before it was kept); the next write records them"
        )
    if problems:
        seq, line = min(problems, key=lambda p: p[0])
        return TlogReport(source, size, root, seq, line, notes)
    return TlogReport(source, size, root, notes=notes)


def adopt(data_dir: Path) -> Tree:
    """The tree over every data commit so far, recomputed from the rows as they are now:
    how a pond whose newest commit records no head starts (or resumes) its log."""
    files, version, listed = live_files(data_dir)
    found, _ = commits(data_dir, upto=version, listed=listed, as_written=False)  # seqs, ids
    by_txn = row_digests_by_txn(data_dir, files, [])
    tree = Tree()
    for c in found:
        tree.append(leaf_hash(c.txn_seq, c.txn_id, by_txn.pop(c.txn_seq, [])))
    return tree
