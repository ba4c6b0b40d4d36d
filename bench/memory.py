"""Benchmark 12: memory of a long-lived `Pond`.

One `Pond` handle, opened once; each step is one write transaction (a new 1 KiB file,
round-robin over 10 directories) and one read (a random earlier file, checked). Peak RSS
(`ru_maxrss`, the group runs in its own spawned process) after 10,000 steps against after
1,000 steps.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from pathlib import Path

# As an embedder would (docs/developer/process-settings.md): mimalloc purges freed
# pages at once, set before pyarrow loads (this group runs in its own spawned process).
PYARROW_LOADED_FIRST = "pyarrow" in sys.modules
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

from duckpond.pond import Pond  # noqa: E402 - after the setting above

from .common import Result, Row, log  # noqa: E402

PAYLOAD = bytes(range(256)) * 4


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def path_of(i: int) -> str:
    return f"/m/d{i % 10}/f{i:05d}"


def run(work: Path, quick: bool) -> Result:
    first, last = (200, 2_000) if quick else (1_000, 10_000)
    if PYARROW_LOADED_FIRST:
        log("memory: pyarrow was loaded before MIMALLOC_PURGE_DELAY could be set")
    pond = Pond.create(work / "pond")
    rnd = random.Random(7)
    marks: dict[int, float] = {}
    caches: dict[int, str] = {}
    t0 = time.perf_counter()
    for i in range(last):
        with pond.transaction(args=["bench", "step", str(i)]) as tx:
            tx.write_bytes(path_of(i), PAYLOAD + i.to_bytes(4, "big"), parents=True)
        j = rnd.randrange(i + 1)
        assert pond.read_bytes(path_of(j)) == PAYLOAD + j.to_bytes(4, "big")
        if i + 1 in (first, last):
            marks[i + 1] = peak_rss_mb()
            sizer = getattr(pond.data, "cache_size", None)
            caches[i + 1] = str(sizer()) if sizer else "n/a"
            log(f"12: {i + 1:,} steps, peak RSS {marks[i + 1]:.0f} MB, caches {caches[i + 1]}")
        if i and i % 2000 == 0:
            log(f"12: {i:,} steps, {(time.perf_counter() - t0) / i * 1e3:.1f} ms each")
    ratio = marks[last] / marks[first]
    rows = [
        Row(
            "12",
            f"peak RSS of a long-lived Pond, {last:,} write+read steps vs {first:,}",
            f"{marks[last]:.0f} MB",
            f"{marks[first]:.0f} MB",
            f"{ratio:.2f}×",
            "≤ 1.2×",
            "yes" if ratio <= 1.2 else "no",
            {"figure_mb": marks[last], "baseline_mb": marks[first], "ratio": ratio},
        )
    ]
    notes = [f"12: caches after {k:,} steps: {v}" for k, v in caches.items()]
    notes.append(f"12: {last:,} steps took {time.perf_counter() - t0:.0f} s")
    return Result(rows, notes)
