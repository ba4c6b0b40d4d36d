"""Benchmark 26: temporal-reduce's sealed buckets (issue 21 item 4).

26a a reduction read (temporal-reduce at 1h, default allowed_lateness 1d, a fresh resolver
    without result cache, as a new command) after one version was appended to a series of
    1,000 versions vs the same read after one version was appended to a 10-version series.
    A version is a day of 15-minute points (a collector's daily run), so both reads
    recompute the same open day; the long series adds only its sealed rows (24 per day)
    to read back (the read lists only the versions since the seal and opens the ones
    reaching the open buckets by number: factories/reduce_sealed.py).
26b the same read on the 1,000-version series with its seals dropped (`rebuild`: a full
    recompute) vs 26a's read: what sealing saves (reported only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from duckpond.dynamic import Resolver
from duckpond.pond import Pond

from .common import Result, Timer, log, ratio_row

T0 = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
Q = 15 * 60_000_000
PER_DAY = 96
OUT = "/reduced/s/res=1h.series"


def day(d: int) -> pa.Table:
    ts = T0 + (d * PER_DAY + np.arange(PER_DAY, dtype=np.int64)) * Q
    rng = np.random.default_rng(d)
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.normal(10.0, 3.0, PER_DAY)),
        }
    )


def make(root: Path, versions: int) -> Pond:
    pond = Pond.create(root)
    for d in range(versions):
        with pond.transaction(args=["bench", "append", str(d)]) as tx:
            tx.write_series("/raw/s", day(d), parents=True)
    cfg = {
        "in_pattern": "series:///raw/*",
        "resolutions": ["1h"],
        "aggregations": [{"type": "avg"}, {"type": "max"}, {"type": "count"}],
    }
    pond.mknod("temporal-reduce", "/reduced", yaml.safe_dump(cfg).encode())
    return pond


def read(pond: Pond) -> int:
    pond.refresh()
    return Resolver.for_pond(pond, cache=False).require(OUT).scan().num_rows


def append(pond: Pond) -> None:
    n = len(pond.versions("/raw/s"))
    with pond.transaction(args=["bench", "append", str(n)]) as tx:
        tx.write_series("/raw/s", day(n), parents=True)


def run(work: Path, quick: bool) -> Result:
    long_n = 200 if quick else 1_000
    reps = 5 if quick else 11
    log(f"26: series of {long_n:,} and 10 versions ({PER_DAY} rows each)")
    long = make(work / "pond-long", long_n)
    short = make(work / "pond-short", 10)
    for p in (long, short):
        read(p)  # the first read seals everything older than a day

    t = Timer(warmup=1)
    log(f"26a: {reps} reps (interleaved, one append before each read)")
    for _ in range(reps + 1):
        append(long)
        append(short)
        rows_long = t.run("long", lambda: read(long))
        rows_short = t.run("short", lambda: read(short))
    if rows_long != 24 * len(long.versions("/raw/s")):
        raise RuntimeError(f"26: {rows_long} buckets for {len(long.versions('/raw/s'))} days")
    if rows_short != 24 * len(short.versions("/raw/s")):
        raise RuntimeError(f"26: {rows_short} buckets for the short series")

    sealed = long.root / "sealed"
    for _ in range(max(3, reps // 3) + 1):

        def full() -> int:
            shutil.rmtree(sealed, ignore_errors=True)
            return read(long)

        t.run("full", full)

    rows = [
        ratio_row(
            "26a",
            f"reduce read after 1 append: {long_n:,} versions vs 10",
            t.median("long"),
            t.median("short"),
            1.2,
        ),
        ratio_row(
            "26b",
            f"reduce read of {long_n:,} versions: seals dropped (full recompute) vs sealed",
            t.median("full"),
            t.median("long"),
            None,
        ),
    ]
    notes = [f"26: {rows_long:,} vs {rows_short:,} output buckets"]
    return Result(rows, notes)
