"""Benchmark 15: data factories (issue 9).

15a temporal-reduce of a year of one-minute data (525,600 rows) at 1h/6h/1d/7d through the
    resolver (no result cache) vs the same four GROUP BY queries written by hand and run
    through the query layer's own functions (`sql.make_context`, `register_parts`,
    `run_sql`: the engine pond uses, whichever it is) over the very same Parquet file, a
    fresh context each rep on both sides.
15b the second read of the same four reduced series (a fresh resolver, as a new command
    would, with the on-disk result cache filled) vs the first read with an empty cache.
15c a sql-derived-series over 100 series nodes (10 versions each) read with a time window
    covering 10% of the versions vs the full scan (no result cache), through one
    long-lived Pond: 14 MB of inline versions, more than its content cache holds, so both
    sides read contents from disk; the window reads only its versions' (issue 19).

Every figure is the median of pair-by-pair ratios (each pair back to back, the order
alternating) after one warm-up of each operation, with the garbage collector run before
and held off during each timed operation: run to run the ratios moved by up to 2x before
(load bursts hitting one median, GC pauses, the first rep paying for imports).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from duckpond.dynamic import Resolver
from duckpond.pond import Pond
from duckpond.query import relations, sql

from .common import Result, Timer, log, ratio_row

T0 = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
MINUTE = 60_000_000
RESOLUTIONS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "7d": 7 * 86400}


def minute_year(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    ts = T0 + np.arange(rows, dtype=np.int64) * MINUTE
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.normal(10.0, 3.0, rows)),
        }
    )


def bucket_sql(secs: int) -> str:
    """The start of the `secs`-wide bucket of `timestamp`, in the engine's own dialect
    (the query layer's helper, as temporal-reduce builds it)."""
    return sql.time_bucket_sql(secs * 1_000_000, "timestamp", pa.timestamp("us", tz="UTC"))


def timed(t: Timer, name: str, fn: Callable[[], Any]) -> Any:
    """One timed run of `fn`, the garbage collector run before and held off during it."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        t.add(name, time.perf_counter() - t0)
    finally:
        gc.enable()
    return out


def pairs(t: Timer, reps: int, ops: dict[str, Callable[[], Any]]) -> None:
    """reps + 1 rounds of every op (the first one a warm-up), the order reversed every
    other round so that neither side always runs first."""
    names = list(ops)
    for rep in range(reps + 1):
        for name in names if rep % 2 == 0 else reversed(names):
            timed(t, name, ops[name])


def run(work: Path, quick: bool) -> Result:
    rows = 52_560 if quick else 525_600
    reps = 3 if quick else 15
    log(f"15: a series of {rows:,} one-minute rows")
    pond = Pond.create(work / "pond-factories")
    with pond.transaction(args=["bench", "load"]) as tx:
        tx.write_series("/raw/minute", minute_year(rows), parents=True)
    reduce_cfg = {
        "in_pattern": "series:///raw/*",
        "out_pattern": "$0",
        "resolutions": list(RESOLUTIONS),
        "aggregations": [{"type": "avg", "columns": ["value"]}, {"type": "max"}],
    }
    pond.mknod("temporal-reduce", "/reduced", yaml.safe_dump(reduce_cfg).encode())
    row = pond.versions("/raw/minute")[0]
    base_dir = work / "minute-parquet"
    base_dir.mkdir()
    src = base_dir / "000.parquet"
    if row.in_blob:
        shutil.copyfile(pond.blobs.path_for(row.content_hash or ""), src)
    else:
        src.write_bytes(row.content or b"")

    queries = [
        f"SELECT {bucket_sql(secs)} AS t, avg(value) AS a, max(value) AS m "
        "FROM source GROUP BY 1 ORDER BY 1"
        for secs in RESOLUTIONS.values()
    ]

    def baseline() -> list[int]:
        ctx = sql.make_context()
        relations.register_parts(ctx, [relations.Part(path=str(src))])
        return [sql.run_sql(ctx, q).num_rows for q in queries]

    def reduce(cache: bool) -> list[int]:
        pond.refresh()
        r = Resolver.for_pond(pond, cache=cache)
        return [r.require(f"/reduced/minute/res={k}.series").scan().num_rows for k in RESOLUTIONS]

    cache_dir = pond.root / "cache"

    def cold() -> list[int]:
        shutil.rmtree(cache_dir, ignore_errors=True)
        return reduce(True)

    def warm() -> list[int]:
        return reduce(True)

    want = baseline()
    got = {"nocache": reduce(False), "cold": cold(), "warm": warm()}
    if any(v != want for v in got.values()):
        raise RuntimeError(f"row counts differ: baseline {want}, pond {got}")

    t = Timer(warmup=1)
    log(f"15a/b: {reps} reps (interleaved)")
    pairs(t, reps, {"baseline": baseline, "reduce": lambda: reduce(False)})
    pairs(t, reps, {"cold": cold, "warm": warm})

    # 15c: 100 series x 10 versions; the window covers one version of each
    nodes, versions = (20, 10) if quick else (100, 10)
    per = 200 if quick else 1_000
    log(f"15c: {nodes} series x {versions} versions x {per} rows")
    rng = np.random.default_rng(3)
    for v in range(versions):
        with pond.transaction(args=["bench", "append", str(v)]) as tx:
            for n in range(nodes):
                start = T0 + v * per * MINUTE
                ts = start + np.arange(per, dtype=np.int64) * MINUTE
                tx.write_series(
                    f"/many/s{n:03d}",
                    pa.table(
                        {
                            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                            "value": pa.array(rng.normal(0.0, 1.0, per)),
                        }
                    ),
                    parents=True,
                )
    derived = {"patterns": {"m": "series:///many/*"}, "query": "SELECT * FROM m WHERE value > 0"}
    pond.mknod("sql-derived-series", "/derived/positive", yaml.safe_dump(derived).encode())
    w0 = T0 + (versions // 2) * per * MINUTE
    w1 = w0 + per * MINUTE - 1

    def scan(window: bool) -> int:
        pond.refresh()
        node = Resolver.for_pond(pond, cache=False).require("/derived/positive")
        table = node.scan(w0, w1) if window else node.scan()
        return table.num_rows

    full_rows, window_rows = scan(False), scan(True)
    if not 0 < window_rows * versions < full_rows * 1.5:
        raise RuntimeError(f"15c: window {window_rows} rows vs full {full_rows}")
    pairs(t, reps, {"full": lambda: scan(False), "window": lambda: scan(True)})

    rows_out = [
        ratio_row(
            "15a",
            f"temporal-reduce {rows:,} rows at 1h/6h/1d/7d vs by hand in pond's engine",
            t.median("reduce"),
            t.median("baseline"),
            1.0,
            ratio=t.pair_ratio("reduce", "baseline"),
        ),
        ratio_row(
            "15b",
            "second read of the 4 reduced series (result cache) vs the first",
            t.median("warm"),
            t.median("cold"),
            0.1,
            ratio=t.pair_ratio("warm", "cold"),
        ),
        ratio_row(
            "15c",
            f"sql-derived-series over {nodes} series, 10% time window vs full scan",
            t.median("window"),
            t.median("full"),
            0.3,
            ratio=t.pair_ratio("window", "full"),
        ),
    ]
    notes = [
        f"15: bucket counts checked against the hand-written queries: {want}",
        f"15c: {full_rows:,} rows full, {window_rows:,} in the window",
    ]
    return Result(rows_out, notes)
