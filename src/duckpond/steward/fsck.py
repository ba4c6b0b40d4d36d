"""`pond fsck`: find damage in a pond and, with `repair`, do what is safe about it.

Checks: every log entry of both tables parses and the versions are contiguous; every
checkpoint is readable; every live Parquet file exists with its recorded size; every blob
exists and matches its sha256 and size (inline contents match their hash too); the data
table's `pond_txn` history agrees with the control table; no txn_seq was committed twice;
every reachable directory can be rebuilt from its rows and no node version is stored twice
(steward/fsck_dirs.py).

Repairs, safest first (each says what it did, and anything discarded is listed in `lost`):
1. a garbage checkpoint is set aside and readers fall back to an older one (or the full log);
2. a damaged log entry is set aside and replaced by one that keeps the versions contiguous
   and the txn_seq taken: when the transaction's Parquet files are still on disk (they are
   written and synced before the entry) they are linked again and nothing is lost;
3. a missing or damaged file (a Parquet file, a blob, a log entry) is fetched from a
   backup of this pond and checked against the log before it is put in place
   (steward/fsck_backup.py);
4. last resort: missing or damaged files are removed from the live table, versions whose
   blob is missing or corrupt are dropped, and directory entries left without rows are
   unlinked in one recorded write transaction, so everything else is readable again; in
   the same transaction a directory that cannot be rebuilt gets a snapshot of what is left.
A node version stored twice is reported, never repaired.
Damaged files are never deleted: they are moved to `$POND/lost+found/<time>/`.

The checks share one run's state (fsck_run.py) and live by what they check: logs and
checkpoints (fsck_log.py), Parquet files and blobs (fsck_files.py), the two tables agreeing
and the directory tree (fsck_agree.py, fsck_dirs.py, fsck_tree.py).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NotFoundError
from ..lock import WriteLock
from ..storage import logcheck
from ..storage.datatable import DataTable
from .control import ControlTable
from .fsck_agree import AgreementChecks
from .fsck_files import FileChecks
from .fsck_run import LOST_FOUND, TABLES, FsckResult, Problem

__all__ = ["LOST_FOUND", "TABLES", "FsckResult", "Problem", "fsck"]


def fsck(root: Path, repair: bool = False, wait: float = 0.0) -> FsckResult:
    root = Path(root).absolute()
    if not (root / "data" / "_delta_log").is_dir():
        raise NotFoundError(f"no pond at {root}")
    run = _Fsck(root, repair)
    with WriteLock(root / "write.lock", wait):
        run.check()
    if repair and (run.dangling or run.broken):
        run.repair_tree()
    return run.result()


class _Fsck(AgreementChecks, FileChecks):
    """All the checks, in the order that lets each trust what the previous one checked."""

    # -- the whole check ---------------------------------------------------------------------
    def check(self) -> None:
        control_dir = self.root / "control"
        has_control = (control_dir / "_delta_log").is_dir()
        for table in TABLES if has_control else ("data",):
            self.check_log(table)
        if not has_control:
            self.add(Problem("missing_table", "control", "the control table is missing"))
            self.notes.append("`pond rebuild-control` rebuilds it from the data table")
        data_damaged = self.check_checkpoints("data")
        control_damaged = self.check_checkpoints("control") if has_control else True
        if data_damaged:
            return  # the data table cannot be opened: nothing more can be checked
        data = DataTable(self.root / "data", logcheck.open_table(self.root / "data"))
        control = None
        if not control_damaged:
            control = ControlTable(control_dir, logcheck.open_table(control_dir))
            self.control_rows = self.read_control(control)
        rows = self.check_data_files(data)
        self.check_blobs(data, rows)
        self.check_agreement(data, control)
        self.check_dirs(rows)
        self.find_dangling(rows)
