"""Checks of a Delta table's `_delta_log`: is every entry whole, are the versions
contiguous, is every checkpoint readable. Pure storage: `pond fsck` builds on these, and
a write checks the newest entry (`check_tip`) before it takes the next sequence number.

A pond-written entry ends with a newline and says in `commitInfo.pond_lines` how many lines
it has, so an entry cut at a line boundary is caught too (older entries lack the count: an
entry of theirs that carries `pond_txn` must still hold its `txn` and an `add`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from ..errors import PondError
from .durability import fsync_dir, fsync_file, replace_synced

if TYPE_CHECKING:
    from deltalake import DeltaTable

ACTIONS = {"commitInfo", "txn", "add", "remove", "metaData", "protocol", "cdc", "domainMetadata"}
CLIENT = "duckpond"


class DamagedTableError(PondError):
    """A table's log is damaged: nothing may be written until `pond fsck` has run."""


@dataclass
class Entry:
    """What could be read of one log entry."""

    version: int
    problem: str | None = None
    info: dict[str, Any] | None = None  # commitInfo
    txn_version: int | None = None  # the `txn` action's version (the pond's txn_seq)
    adds: list[dict[str, Any]] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)


@dataclass
class LogScan:
    entries: dict[int, Entry]  # every json entry present, by version
    checkpoints: list[int]  # versions with a readable checkpoint, oldest first
    bad_checkpoints: list[int]
    last_checkpoint: int | None  # what `_last_checkpoint` names (None: absent or garbage)
    last_checkpoint_garbage: bool
    gaps: list[int]  # versions missing between the oldest and the newest entry

    @property
    def tip(self) -> int:
        return max(self.entries, default=-1)


def entry_name(version: int) -> str:
    return f"{version:020d}.json"


def read_entry(path: Path, version: int) -> Entry:
    """Parse one entry; `problem` says why it is not whole."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return Entry(version, problem=f"unreadable ({e.strerror or e})")
    return parse_entry(raw, version)


def parse_entry(raw: bytes, version: int) -> Entry:
    """Parse one entry's bytes (a local file's, or a remote copy's)."""
    entry = Entry(version)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kinds: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            action = json.loads(line)
        except ValueError:
            entry.problem = f"line {n} of {len(lines)} is not JSON (torn write)"
            return entry
        if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in ACTIONS:
            entry.problem = f"line {n} is not a Delta action"
            return entry
        kind, body = next(iter(action.items()))
        kinds.append(kind)
        if kind == "commitInfo":
            entry.info = body
        elif kind == "txn":
            entry.txn_version = int(body.get("version", -1))
        elif kind == "add":
            entry.adds.append(body)
        elif kind == "remove":
            entry.removes.append(str(body.get("path")))
    info = entry.info or {}
    if info.get("clientVersion") == CLIENT:
        expected = info.get("pond_lines")
        if not raw.endswith(b"\n"):
            entry.problem = "ends in the middle of a line (torn write)"
        elif expected is not None and int(expected) != len(lines):
            entry.problem = f"holds {len(lines)} of its {expected} lines (torn write)"
        elif (
            expected is None
            and info.get("pond_txn")
            and (entry.txn_version is None or not entry.adds)
        ):
            entry.problem = "a data commit without its actions (torn write)"
    elif version == 0 and not {"protocol", "metaData"} <= set(kinds):
        entry.problem = "the table's first entry lacks its protocol or metadata"
    elif not kinds:
        entry.problem = "empty"
    return entry


def scan_log(table_dir: Path) -> LogScan:
    log = table_dir / "_delta_log"
    entries: dict[int, Entry] = {}
    checkpoints: list[int] = []
    bad: list[int] = []
    for item in os.scandir(log):
        stem, _, rest = item.name.partition(".")
        if not stem.isdigit():
            continue
        if rest == "json":
            entries[int(stem)] = read_entry(Path(item.path), int(stem))
        elif rest == "checkpoint.parquet":
            try:
                pq.ParquetFile(item.path).metadata  # noqa: B018 - reads the footer
                checkpoints.append(int(stem))
            except Exception:  # noqa: BLE001 - any unreadable checkpoint is damage
                bad.append(int(stem))
    last: int | None = None
    garbage = False
    lc = log / "_last_checkpoint"
    if lc.exists():
        try:
            last = int(json.loads(lc.read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            garbage = True
    gaps: list[int] = []
    if entries:
        present = set(entries)
        gaps = [v for v in range(min(present), max(present)) if v not in present]
    return LogScan(entries, sorted(checkpoints), sorted(bad), last, garbage, gaps)


def tip_problem(table_dir: Path, version: int) -> str | None:
    """Why the table's newest entry (at or after `version`) cannot be trusted, or None.

    Cheap enough for every write: a stat per newer entry and one small file read."""
    log = f"{table_dir}/_delta_log/"
    while os.path.exists(log + entry_name(version + 1)):
        version += 1
    path = Path(log + entry_name(version))
    if not os.path.exists(path):
        return f"log entry {table_dir.name}/_delta_log/{entry_name(version)} is missing"
    problem = read_entry(path, version).problem
    if problem:
        return f"log entry {table_dir.name}/_delta_log/{entry_name(version)} is damaged: {problem}"
    return None


def check_tip(table_dir: Path, version: int) -> None:
    problem = tip_problem(table_dir, version)
    if problem:
        raise DamagedTableError(f"{problem}; run `pond fsck` (writes refused until repaired)")


def open_table(table_dir: Path) -> DeltaTable:
    """Open a Delta table; a damaged log gives one line naming the damage, not delta-rs's."""
    from deltalake import DeltaTable

    try:
        return DeltaTable(str(table_dir))
    except Exception as e:  # noqa: BLE001 - translated when the log explains it
        problem = describe_damage(table_dir)
        if problem is None:
            raise
        raise DamagedTableError(f"{problem}; run `pond fsck`") from e


def describe_damage(table_dir: Path) -> str | None:
    """The first damage a scan of the log finds, in one line, or None."""
    name = table_dir.name
    try:
        scan = scan_log(table_dir)
    except OSError:
        return None
    for v in scan.bad_checkpoints:
        return f"checkpoint {name}/_delta_log/{v:020d}.checkpoint.parquet is unreadable"
    for v, e in sorted(scan.entries.items()):
        if e.problem:
            return f"log entry {name}/_delta_log/{entry_name(v)} is damaged: {e.problem}"
    if scan.gaps:
        return f"log entry {name}/_delta_log/{entry_name(scan.gaps[0])} is missing"
    return None


# -- repairs (under the write lock) ------------------------------------------------------------
def set_aside(path: Path, lost_found: Path, root: Path) -> Path:
    """Move a damaged file into `lost_found`, keeping its path relative to `root`."""
    dest = lost_found / path.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    fsync_dir(path.parent)
    return dest


def write_entry(table_dir: Path, version: int, actions: list[dict[str, Any]]) -> None:
    """Put a (replacement) log entry at `version`: synced, put-if-absent."""
    info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    info["pond_lines"] = len(actions)
    body = "".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions).encode()
    log = table_dir / "_delta_log"
    tmp = log / f".tmp-fsck-{os.getpid()}-{os.urandom(6).hex()}.json"
    tmp.write_bytes(body)
    fsync_file(tmp)
    try:
        os.link(tmp, log / entry_name(version))
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(log)


def write_last_checkpoint(table_dir: Path, version: int | None) -> None:
    """Point `_last_checkpoint` at checkpoint `version`, or remove it (readers then list)."""
    lc = table_dir / "_delta_log" / "_last_checkpoint"
    if version is None:
        lc.unlink(missing_ok=True)
    else:
        path = table_dir / "_delta_log" / f"{version:020d}.checkpoint.parquet"
        rows = pq.ParquetFile(path).metadata.num_rows
        hint = json.dumps({"version": version, "size": rows})
        replace_synced(lc, lambda tmp: tmp.write_text(hint))
    fsync_dir(lc.parent)
