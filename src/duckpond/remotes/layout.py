"""The remote layout: a standard Delta layout, byte-identical copies of the local files.

    URL/pond.json                 {"pond_id": ..., "format": 1} (put-if-absent, first push)
    URL/data/...                  the data table directory (Parquet files, _delta_log/,
    URL/control/...               checkpoints, _last_checkpoint, _pond_archive/)
    URL/blobs/<2 hex>/<sha256>    large contents

Local-only things are never pushed: write.lock, cache/, temp files, remotes/, imports/,
each table's `_pond_vacuumed` mark (storage/checkpoints.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import RemoteError

POND_JSON = "pond.json"
FORMAT = 1
TABLES = ("data", "control")  # in push order: data before control
BLOBS = "blobs"
LOG = "_delta_log"
LAST_CHECKPOINT = "_last_checkpoint"
APP_ID = "pond"  # the `txn` action's appId: its version is the txn_seq
TMP_PREFIX = ".tmp-"
# storage.tableread.ARCHIVE_DIR, not imported: that module loads pyarrow,
# and remote status and configuration must not (start-up time); a test checks they agree.
ARCHIVE_DIR = "_pond_archive"


def entry_name(version: int) -> str:
    return f"{version:020d}.json"


def log_key(table: str, name: str) -> str:
    return f"{table}/{LOG}/{name}"


def entry_key(table: str, version: int) -> str:
    return log_key(table, entry_name(version))


def blob_key(digest: str) -> str:
    return f"{BLOBS}/{digest[:2]}/{digest}"


def marker(pond_id: str) -> bytes:
    return json.dumps({"pond_id": pond_id, "format": FORMAT}, sort_keys=True).encode() + b"\n"


def parse_marker(body: bytes, url: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("pond_id"), str):
        raise RemoteError(f"remote {url} has an unreadable {POND_JSON}")
    if data.get("format") != FORMAT:
        raise RemoteError(
            f"remote {url} has format {data.get('format')!r}; this pond reads {FORMAT}"
        )
    return data


def parse_log_name(name: str) -> tuple[int, str] | None:
    """(version, "json" | "checkpoint") of a `_delta_log` file name; None for others."""
    stem, _, rest = name.partition(".")
    if len(stem) != 20 or not stem.isdigit():
        return None
    if rest == "json":
        return int(stem), "json"
    if rest.startswith("checkpoint") and rest.endswith(".parquet"):
        return int(stem), "checkpoint"
    return None


@dataclass
class LogListing:
    """A table's `_delta_log` (local or remote): entries and checkpoint files by version."""

    entries: dict[int, str] = field(default_factory=dict)  # version -> name
    checkpoints: dict[int, list[str]] = field(default_factory=dict)  # version -> names
    sizes: dict[str, int] = field(default_factory=dict)  # name -> size (remote listings)
    has_last_checkpoint: bool = False

    @property
    def tip(self) -> int:
        return max(self.entries, default=-1)

    @property
    def start(self) -> int:
        return min(self.entries, default=-1)

    def add(self, name: str, size: int = -1) -> None:
        if name == LAST_CHECKPOINT:
            self.has_last_checkpoint = True
            return
        parsed = parse_log_name(name)
        if parsed is None:
            return
        version, kind = parsed
        if kind == "json":
            self.entries[version] = name
        else:
            self.checkpoints.setdefault(version, []).append(name)
        self.sizes[name] = size

    def contiguous_from(self, version: int) -> bool:
        """Whether every entry from `version` to the tip is present."""
        return all(v in self.entries for v in range(version, self.tip + 1))


def local_log(table_dir: Path) -> LogListing:
    out = LogListing()
    try:
        with os.scandir(table_dir / LOG) as it:
            for entry in it:
                out.add(entry.name)
    except FileNotFoundError:
        pass
    return out


@dataclass
class EntryInfo:
    """What a push or pull needs from one log entry."""

    adds: list[str]  # file paths relative to the table directory (decoded)
    txn_seq: int | None  # the pond `txn` action's version
    maintenance: bool  # a pond maintenance commit (compaction): rows copied, no new blobs
    # added files whose statistics show no row large enough to live in a blob
    blob_free: set[str] = field(default_factory=set)
    # added file -> its size in bytes, as the add action states it (a pull's progress total)
    sizes: dict[str, int] = field(default_factory=dict)


def commit_time_ms(body: bytes) -> int | None:
    """The commitInfo timestamp of a log entry (ms), None when it has none. Readers time
    travel by a log entry's modification time, so copies of an entry carry this one."""
    for line in body.splitlines():
        try:
            info = json.loads(line).get("commitInfo") if line.strip() else None
        except (ValueError, AttributeError):
            return None
        if isinstance(info, dict) and isinstance(info.get("timestamp"), int):
            return int(info["timestamp"])
    return None


def parse_entry(body: bytes, where: str, blob_threshold: int | None = None) -> EntryInfo:
    adds: list[str] = []
    blob_free: set[str] = set()
    sizes: dict[str, int] = {}
    txn_seq: int | None = None
    maintenance = False
    changes_data = False
    try:
        for line in body.splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                add = action["add"]
                path = unquote(add["path"])
                adds.append(path)
                if isinstance(add.get("size"), int):
                    sizes[path] = add["size"]
                changes_data = changes_data or add.get("dataChange", True) is not False
                if blob_threshold is not None and _below(add.get("stats"), blob_threshold):
                    blob_free.add(path)
            elif "txn" in action and action["txn"].get("appId") == APP_ID:
                txn_seq = int(action["txn"]["version"])
            elif "commitInfo" in action:
                maintenance = bool(action["commitInfo"].get("pond_maintenance"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RemoteError(f"{where} is not a readable Delta log entry") from None
    for path in adds:
        check_rel(path, where)
    # compaction (dataChange false) rewrites rows already pushed with their blobs
    maintenance = maintenance or (bool(adds) and not changes_data)
    return EntryInfo(adds, txn_seq, maintenance, blob_free, sizes)


def _below(stats: object, threshold: int) -> bool:
    """Whether an add's statistics say every row's `size` is below `threshold`."""
    if not isinstance(stats, str):
        return False
    try:
        top = json.loads(stats).get("maxValues", {}).get("size")
    except (ValueError, AttributeError):
        return False
    return isinstance(top, int) and top < threshold


def check_rel(path: str, where: str) -> str:
    """A file path from a log entry or a listing must stay inside its table directory."""
    parts = path.split("/")
    if path.startswith("/") or "://" in path or any(p in ("", ".", "..") for p in parts):
        raise RemoteError(f"{where} names a file outside its table: {path[:120]!r}")
    return path


def is_table_file(rel: str) -> bool:
    """A file of a table directory that a remote copy holds (not a temp file)."""
    return not any(p.startswith(TMP_PREFIX) for p in rel.split("/"))


def archive_prefix(table: str) -> str:
    return f"{table}/{ARCHIVE_DIR}"
