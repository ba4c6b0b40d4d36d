"""Benchmark 24: `pond tlog verify` over N transactions against reading their rows once.

A pond is built through the library with N write transactions (`init` and N - 1 writes,
each one new 1 KiB file, random bytes, round-robin over 100 directories; automatic upkeep
only), so the data table holds every row those transactions wrote, compacted as a
long-lived pond's is, and its log holds N commits. Then, interleaved in one process (each
rep runs both back to back, so background load hits both alike):

24a: `Pond.tlog_verify()`: the control table, every commit's record, every live row
     hashed and the tree rebuilt and compared;
     baseline: reading every row of the data table once (each live Parquet file, every
     column, into Arrow), as any full scan would. Goal ≤ 2×.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from duckpond.pond import Pond
from duckpond.storage import deltalog, tableread, tlogcheck, tlogentries

from .common import Result, Timer, log, ratio_row

REPS = 5


def file_path(i: int) -> str:
    return f"/d{i % 100:03d}/f{i // 100:05d}"


def build(root: Path, n: int) -> None:
    pond = Pond.create(root)
    for i in range(n - 1):
        with pond.transaction(args=["pond", "copy", "host:///x", file_path(i)]) as tx:
            tx.write_bytes(file_path(i), os.urandom(1024), parents=True)
        if (i + 1) % 1000 == 0:
            log(f"tlog: {i + 1} writes")


def read_rows(root: Path) -> int:
    """Every row of the data table's live files, every column: the baseline."""
    data = root / "data"
    snap = deltalog.Snapshot.load(data, stats=False)
    rows = 0
    for f in snap.add_files():
        rows += tableread.read_parquet(data / unquote(f.path)).num_rows
    return rows


def run(work: Path, quick: bool) -> Result:
    n = 1_000 if quick else 10_000
    root = work / "pond"
    log(f"tlog: building a pond of {n} transactions")
    build(root, n)
    return measure(root, n)


def measure(root: Path, n: int) -> Result:
    """24a on a pond `build` made (also one built beforehand: building is most of the
    group's time)."""
    timer = Timer(warmup=1)
    rows = 0
    # how many verifies read the log in a second process (only when a core is idle as it
    # starts: storage/tlogentries.py), so a figure says which path it measured
    started: list[bool] = []
    real = tlogcheck.read_entries_aside

    def noting(*args: Any, **kwargs: Any) -> tlogentries.Aside:
        aside = real(*args, **kwargs)
        started.append(aside.proc is not None)
        return aside

    tlogcheck.read_entries_aside = noting
    try:
        for _ in range(REPS + 1):
            rows = timer.run("read", lambda: read_rows(root))
            report = timer.run("verify", lambda: Pond.open(root).tlog_verify())
            if not report.ok or report.size != n:
                raise RuntimeError(f"tlog verify: {report.problem or report.size}")
    finally:
        tlogcheck.read_entries_aside = real
    files = len(deltalog.Snapshot.load(root / "data", stats=False).add_files())
    row = ratio_row(
        "24a",
        f"`tlog verify`, {n:,} transactions ({rows:,} rows, {files} files)",
        timer.median("verify"),
        timer.median("read"),
        2.0,
        transactions=n,
        rows=rows,
        files=files,
        reps=timer.count("verify"),
        second_process=f"{sum(started[1:])}/{len(started) - 1}",  # the warm-up's left out
    )
    row.baseline += " (read every row once)"
    return Result([row])
