"""The state one `pond fsck` run shares between its checks, and what it reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..storage import logcheck
from ..storage.blobs import BlobStore
from . import fsck_backup, fsck_dirs

LOST_FOUND = "lost+found"
TABLES = ("data", "control")


@dataclass
class Problem:
    """One piece of damage. `paths`: files (relative to the pond) and pond paths affected;
    `versions`: Delta versions of the table; `txn_seqs`: transactions affected."""

    kind: str
    table: str
    message: str
    paths: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    txn_seqs: list[int] = field(default_factory=list)
    repaired: bool = False
    action: str | None = None


@dataclass
class FsckResult:
    problems: list[Problem]
    checked: dict[str, int]
    lost: list[str]  # what the repair discarded, one line each
    repaired: bool  # whether a repair was asked for
    lost_found: str | None  # where damaged files were moved
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(p.repaired for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repaired": self.repaired,
            "checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
            "lost": self.lost,
            "lost_found": self.lost_found,
            "notes": self.notes,
        }


class FsckRun:
    """The state of one fsck run: what was checked, found, repaired and set aside; the
    checks (fsck_log, fsck_files, fsck_agree) add to it."""

    def __init__(self, root: Path, repair: bool) -> None:
        self.root = root
        self.repair = repair
        self.problems: list[Problem] = []
        self.lost: list[str] = []
        self.notes: list[str] = []
        # Every key is present even when a table could not be opened (JSON shape is stable).
        self.checked: dict[str, int] = dict.fromkeys(
            [f"{t}_log_entries" for t in TABLES]
            + [f"{t}_files" for t in TABLES]
            + ["blobs", "transactions"],
            0,
        )
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.moved_any = False
        self.blobs = BlobStore(root / "blobs")
        self.dangling: list[tuple[str, str, str]] = []  # (dir id, name, path)
        self.broken: list[fsck_dirs.BrokenDir] = []
        self.backups = fsck_backup.Backups(root)
        self.scans: dict[str, logcheck.LogScan] = {}
        self.control_rows: pa.Table | None = None
        self.node_paths: dict[str, str] = {}

    @property
    def lost_found(self) -> Path:
        return self.root / LOST_FOUND / self.stamp

    def add(self, p: Problem) -> Problem:
        self.problems.append(p)
        return p

    def set_aside(self, path: Path) -> str:
        self.moved_any = True
        dest = logcheck.set_aside(path, self.lost_found, self.root)
        return str(dest.relative_to(self.root))

    def result(self) -> FsckResult:
        self.notes.extend(self.backups.notes)
        if self.problems and not self.repair:
            self.notes.append("run `pond fsck --repair` to repair what is safe")
        return FsckResult(
            self.problems,
            self.checked,
            self.lost,
            self.repair,
            str(self.lost_found.relative_to(self.root)) if self.moved_any else None,
            self.notes,
        )
