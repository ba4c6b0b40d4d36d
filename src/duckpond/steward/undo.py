"""`pond revert`, `diff` and `log`: what earlier transactions did, read back from the rows
they wrote (storage/history.py), and a new transaction that undoes one of them.

A revert never deletes a row: it writes the entries the transaction changed back as they
were, an earlier version back as a new version, and for a series append a selection
version (seriesview.live_rows) that keeps every version but the reverted one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from .. import nodes, paths, seriesview
from ..errors import InvalidPathError, NotFoundError, PondError
from ..nodes import NodeRow
from ..storage import history
from ..storage.direntries import Entry
from ..storage.fs import Located, PondFS
from ..storage.staging import StagedTxn

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PATH_DEPTH = 4096  # naming a removed node through removed parents: no loop


@dataclass(frozen=True)
class EntryDiff:
    """One name's change: `kind` is added, removed, moved or replaced."""

    kind: str
    path: str
    file_type: str
    from_path: str | None = None  # a move's old path


@dataclass(frozen=True)
class VersionDiff:
    """A version a transaction added to a node (rows: of a table/series version)."""

    path: str
    version: int
    txn_seq: int
    file_type: str
    size: int
    rows: int | None
    reverts: list[int] | None = None  # a revert's series selection: the versions it dropped


@dataclass(frozen=True)
class TxnDiff:
    start: int
    end: int
    entries: list[EntryDiff]
    versions: list[VersionDiff]


@dataclass(frozen=True)
class RevertResult:
    txn_seq: int  # the new transaction
    reverted: int
    entries: list[EntryDiff]
    versions: list[VersionDiff]


@dataclass(frozen=True)
class LogEntry:
    txn_seq: int
    time: str | None
    command: list[str]
    changes: list[str] = field(default_factory=list)
    post_commit_of: int | None = None  # a job's write: the user transaction that ran it


# -------------------------------------------------------------------------------------------
# the transactions a pond committed


def commits(fs: PondFS) -> dict[int, tuple[int, dict[str, Any]]]:
    """txn_seq -> (commit time ms, pond_txn) of every data commit."""
    return {int(p["txn_seq"]): (ts, p) for _, ts, p in fs.table.commit_history() if p}


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _command(pond_txn: dict[str, Any]) -> str:
    return " ".join(str(a) for a in pond_txn.get("args") or []) or "?"


def check_user_write(fs: PondFS, seq: int) -> dict[str, Any]:
    """The pond_txn of user transaction `seq`, or why it cannot be reverted."""
    found = commits(fs)
    if seq not in found:
        last = fs.table.last_txn_seq()
        if seq < 1 or seq > last:
            raise NotFoundError(f"no transaction {seq} (the newest is {last})")
        raise PondError(f"transaction {seq} committed no data: there is nothing to revert")
    pond_txn = found[seq][1]
    if pond_txn.get("parent_txn_seq") is not None:
        raise PondError(
            f"transaction {seq} is not a user write: post-commit job "
            f"{pond_txn.get('config_path', '?')} wrote it after transaction "
            f"{pond_txn['parent_txn_seq']} (revert that one, or `pond rm` the job)"
        )
    if seq == min(found):
        raise PondError(f"transaction {seq} created the pond: it cannot be reverted")
    return pond_txn


# -------------------------------------------------------------------------------------------
# paths of nodes, now or as the changes named them


class _Paths:
    def __init__(self, fs: PondFS, changes: list[history.EntryChange]) -> None:
        self.where = history.tree(fs)
        # nodes no longer reachable: the (directory, name) a change last gave them
        self.named: dict[str, tuple[str, str]] = {}
        for c in changes:
            for e in (c.before, c.after):
                if e is not None and e.node_id not in self.where:
                    self.named[e.node_id] = (c.dir_id, c.name)

    def node(self, node_id: str, depth: int = 0) -> str:
        loc = self.where.get(node_id)
        if loc is not None:
            return loc.path
        named = self.named.get(node_id)
        if named is None or depth > MAX_PATH_DEPTH:
            return f"(removed node {node_id})"
        return paths.join(self.node(named[0], depth + 1), named[1])

    def entry(self, dir_id: str, name: str) -> str:
        return paths.join(self.node(dir_id), name)


def _entry_diffs(
    changes: list[history.EntryChange], where: _Paths, reverse: bool = False
) -> list[EntryDiff]:
    """Net entry changes (first `before`, last `after` of each name), moves paired up."""
    net: dict[tuple[str, str], tuple[Entry | None, Entry | None]] = {}
    for c in changes:
        key = (c.dir_id, c.name)
        first = net[key][0] if key in net else c.before
        net[key] = (first, c.after)
    removed: dict[str, tuple[str, Entry]] = {}
    added: dict[str, tuple[str, Entry]] = {}
    out: list[EntryDiff] = []
    for (dir_id, name), (before, after) in net.items():
        if reverse:
            before, after = after, before
        path = where.entry(dir_id, name)
        if before is not None and after is not None and before.node_id == after.node_id:
            if before != after:
                out.append(EntryDiff("replaced", path, after.file_type))
            continue
        if before is not None:
            removed[before.node_id] = (path, before)
        if after is not None:
            added[after.node_id] = (path, after)
    for node_id, (path, e) in added.items():
        if node_id in removed:
            out.append(EntryDiff("moved", path, e.file_type, from_path=removed.pop(node_id)[0]))
        else:
            out.append(EntryDiff("added", path, e.file_type))
    out.extend(EntryDiff("removed", path, e.file_type) for path, e in removed.values())
    return sorted(out, key=lambda d: (d.path, d.kind))


def _row_count(fs: PondFS, row: NodeRow) -> int | None:
    if not (nodes.is_table(row.file_type) or nodes.is_series(row.file_type)):
        return None
    if nodes.is_dynamic(row.file_type) or nodes.is_series_selection(row):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    source: Any = fs.blob_path(row) or pa.BufferReader(row.content or b"")
    try:
        return int(pq.read_metadata(source).num_rows)
    except (pa.ArrowException, OSError):
        return None


def _version_diff(fs: PondFS, row: NodeRow, path: str, versions: list[NodeRow]) -> VersionDiff:
    """`row` as a diff line; `versions`: its node's versions (a selection's drops)."""
    reverts = None
    if nodes.is_series_selection(row):
        live = seriesview.live_rows([r for r in versions if r.version < row.version])
        kept = set(row.extended_attributes.get(nodes.SERIES_KEEP_KEY) or [])
        reverts = [r.version for r in live if r.version not in kept]
    return VersionDiff(
        path, row.version, row.txn_seq, row.file_type, row.size, _row_count(fs, row), reverts
    )


def _file_rows(rows: list[NodeRow]) -> list[NodeRow]:
    """Rows of nodes other than physical directories (whose versions are entry changes)."""
    return [r for r in rows if r.file_type != nodes.DIR_PHYSICAL]


def diff(fs: PondFS, start: int, end: int | None = None) -> TxnDiff:
    """What the transactions after `start` up to `end` (None: the newest) changed."""
    last = fs.table.last_txn_seq()
    end = last if end is None else end
    for seq in (start, end):
        if seq < 0 or seq > last:
            raise NotFoundError(f"no transaction {seq} (the newest is {last})")
    if start > end:
        raise InvalidPathError(f"diff {start} {end}: the first transaction must come first")
    rows = history.rows_between(fs, start + 1, end) if end > start else []
    changes = history.entry_changes(fs, rows)
    where = _Paths(fs, changes)
    versions: list[VersionDiff] = []
    for row in _file_rows(rows):
        all_versions = fs.versions(row.part_id, row.node_id)
        versions.append(_version_diff(fs, row, where.node(row.node_id), all_versions))
    versions.sort(key=lambda v: (v.path, v.version))
    return TxnDiff(start, end, _entry_diffs(changes, where), versions)


# -------------------------------------------------------------------------------------------
# pond log


def log(fs: PondFS, path: str) -> list[LogEntry]:
    """The transactions that touched `path`'s node (its versions, its name), newest first."""
    path = paths.normalize(path)
    loc = fs.lookup(path, follow=False)
    if loc is None:
        raise NotFoundError(f"no such file or directory: {path}")
    what: dict[int, list[str]] = {}
    for row in fs.versions(loc.part_id, loc.node_id):
        if row.file_type == nodes.DIR_PHYSICAL:
            what.setdefault(row.txn_seq, []).append(f"directory version {row.version}")
        elif nodes.is_series_selection(row):
            what.setdefault(row.txn_seq, []).append(f"version {row.version} (revert)")
        else:
            what.setdefault(row.txn_seq, []).append(f"version {row.version} ({row.size} B)")
    if path != "/":
        parent = fs.require(paths.parent(path))
        parent_rows = fs.versions(parent.node_id, parent.node_id)
        for c in history.entry_changes(fs, parent_rows):
            b = c.before.node_id if c.before else None
            a = c.after.node_id if c.after else None
            if loc.node_id not in (a, b) or a == b:
                continue
            name = paths.join(parent.path, c.name)
            what.setdefault(c.txn_seq, []).append(
                f"named {name}" if a == loc.node_id else f"{name} removed"
            )
    found = commits(fs)
    out = []
    for seq in sorted(what, reverse=True):
        ts, pond_txn = found.get(seq, (None, {}))
        parent_seq = pond_txn.get("parent_txn_seq")
        out.append(
            LogEntry(
                seq,
                _iso_ms(ts),
                [str(a) for a in pond_txn.get("args") or []],
                what[seq],
                int(parent_seq) if parent_seq is not None else None,
            )
        )
    return out


# -------------------------------------------------------------------------------------------
# pond revert


def _conflicts(
    fs: PondFS,
    seq: int,
    rows: list[NodeRow],
    changes: list[history.EntryChange],
) -> tuple[dict[int, set[str]], _Paths]:
    """Later transactions that changed a node or a name `seq` changed, or removed a
    directory it changed: txn -> paths (and the paths of nodes, later names included)."""
    later = history.rows_between(fs, seq + 1)
    later_changes = history.entry_changes(fs, later)
    where = _Paths(fs, [*changes, *later_changes])
    touched = {r.node_id for r in _file_rows(rows)}
    names = {(c.dir_id, c.name) for c in changes}
    gone = {c.dir_id for c in changes if c.dir_id not in where.where}
    out: dict[int, set[str]] = {}
    for r in _file_rows(later):
        if r.node_id in touched:
            out.setdefault(r.txn_seq, set()).add(where.node(r.node_id))
    for c in later_changes:
        removed_dir = c.before is not None and nodes.is_dir(c.before.file_type) and bool(gone)
        if (c.dir_id, c.name) in names or (removed_dir and c.after is None):
            out.setdefault(c.txn_seq, set()).add(where.entry(c.dir_id, c.name))
    return out, where


def revert(staged: StagedTxn, seq: int, force: bool = False) -> RevertResult:
    """Stage in `staged` what undoes user transaction `seq` (refused, with the list of them,
    when later transactions changed the same nodes, unless `force`)."""
    fs = staged.fs
    check_user_write(fs, seq)
    rows = history.rows_between(fs, seq, seq)
    changes = history.entry_changes(fs, rows)
    later, where = _conflicts(fs, seq, rows, changes)
    if later and not force:
        found = commits(fs)
        listed = "; ".join(
            f"txn {s} ({_command(found[s][1]) if s in found else '?'}): {', '.join(sorted(p))}"
            for s, p in sorted(later.items())
        )
        raise PondError(
            f"cannot revert transaction {seq}: later transactions changed the same nodes: "
            f"{listed} (revert those first, or use --force)"
        )
    for c in reversed(changes):
        if c.dir_id != nodes.ROOT_ID and c.dir_id not in where.where:
            continue  # (--force) its directory is gone since
        staged.set_entry(c.dir_id, c.name, c.before)
    versions = []
    for row in _file_rows(rows):
        if row.version == 1:
            continue  # created by `seq`: its entry is removed above
        if row.extended_attributes.get(nodes.APPEND_LOG_KEY) == nodes.APPEND_LOG_MARK:
            raise PondError(
                f"cannot revert transaction {seq}: it appended to the log "
                f"{where.node(row.node_id)}, and an appended log cannot be reverted"
            )
        loc = where.where.get(row.node_id)
        if loc is None:
            continue  # (--force) removed since
        new = _undo_version(staged, loc, row)
        before = fs.versions(loc.part_id, loc.node_id)
        versions.append(_version_diff(fs, new, loc.path, [*before, new]))
    entries = _entry_diffs(changes, where, reverse=True)
    return RevertResult(staged.txn_seq, seq, entries, versions)


def _undo_version(staged: StagedTxn, loc: Located, row: NodeRow) -> NodeRow:
    """A new version of `loc`'s node that undoes version `row.version`."""
    versions = staged.fs.versions(loc.part_id, loc.node_id)
    if row.file_type == nodes.FILE_SERIES and loc.file_type == nodes.FILE_SERIES:
        kept = seriesview.live_rows([r for r in versions if r.version != row.version])
        attrs: dict[str, Any] = {
            nodes.SERIES_SELECT_KEY: nodes.SERIES_SELECT_MARK,
            nodes.SERIES_KEEP_KEY: [r.version for r in kept],
        }
        time_column = loc.row.extended_attributes.get("time_column")
        if time_column is not None:
            attrs["time_column"] = time_column
        lows = [r.min_event_time for r in kept if r.min_event_time is not None]
        highs = [r.max_event_time for r in kept if r.max_event_time is not None]
        marker = loc.row.with_changes(
            content=b"",
            content_hash=EMPTY_SHA256,
            size=0,
            min_event_time=min(lows) if lows else None,
            max_event_time=max(highs) if highs else None,
        )
        return staged.stage_version(loc.part_id, marker, attrs)
    before = [r for r in versions if r.version < row.version]
    if not before:
        raise PondError(f"{loc.path} has no version before {row.version}")
    prev = before[-1]
    return staged.stage_version(loc.part_id, prev, dict(prev.extended_attributes))
