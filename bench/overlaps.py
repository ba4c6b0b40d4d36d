"""Benchmark 25: `pond detect-overlaps` over a series of 1,000 versions.

Collector runs append one version each, back to back in time; every 100th run re-ingests
the run before it (the overlaps to find). Detecting them uses the per-version min/max
event times the pond keeps and reads rows only of the versions that meet, so it should
cost no more than reading every row once: the baseline is `pond cat --sql` summing a
column over the same series. Both are whole `pond` processes, interleaved.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa

from duckpond.pond import Pond

from .common import Result, Timer, log, pond_cmd, ratio_row, run_process

T0_US = 1_700_000_000_000_000  # 2023-11-14
MINUTE = 60_000_000


def version_table(k: int, rows: int) -> pa.Table:
    start = T0_US + k * rows * MINUTE  # one row a minute, versions back to back
    ts = np.arange(start, start + rows * MINUTE, MINUTE, dtype=np.int64)
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "v": pa.array(np.arange(rows, dtype=np.float64) + k),
        }
    )


def run(work: Path, quick: bool) -> Result:
    runs, rows_per = (100, 100) if quick else (1_000, 100)
    reps = 5 if quick else 11
    root = work / "pond-overlaps"
    log(f"25: building a series of {runs} versions x {rows_per} rows")
    pond = Pond.create(root)
    k = 0
    for i in range(runs):
        # every 100th run repeats the one before it
        k = k if i % 100 == 99 else i
        with pond.transaction(args=["bench", "append", str(i)]) as tx:
            tx.write_series("/s/x", version_table(k, rows_per), parents=True)
    found = subprocess.run(
        pond_cmd(root, "detect-overlaps", "/s/x", "--format", "json"),
        capture_output=True,
        check=True,
    )
    report = json.loads(found.stdout)
    want = runs // 100
    if report["overlaps"] != want or report["series"][0]["overlapping_rows"] != 2 * want * rows_per:
        raise RuntimeError(f"unexpected overlaps: {report['overlaps']} (want {want})")
    detect = pond_cmd(root, "detect-overlaps", "/s/x", "--format", "summary")
    scan = pond_cmd(root, "cat", "/s/x", "--sql", "SELECT sum(v) FROM source", "--format", "csv")
    t = Timer(warmup=1)
    log(f"25: {reps} reps of each (interleaved)")
    for _ in range(reps + 1):
        t.add("detect", run_process(detect))
        t.add("scan", run_process(scan))
    rows = [
        ratio_row(
            "25",
            f"detect-overlaps over {runs:,} versions ({want} overlaps) vs cat --sql of its rows",
            t.median("detect"),
            t.median("scan"),
            1.5,
        )
    ]
    return Result(rows, [f"25: {report['overlaps']} overlaps found, as built"])
