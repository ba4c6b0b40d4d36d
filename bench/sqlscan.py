"""Benchmark 2: a SQL aggregate over a series stored as many versions.

The series is written through the pond API, one `write_series` transaction per version.
The baseline directory holds the very same Parquet files (copied from the pond's blob
store), read with DuckDB's `read_parquet` over the directory. Both sides pay for a new
session, registration and the query on every rep (`pond.sql` on an open pond).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from duckpond.pond import Pond

from .common import Result, Timer, log, ratio_row

QUERY = "SELECT count(*), avg(value), max(value) FROM source"
T0_US = 1_700_000_000_000_000  # 2023-11-14


def version_table(k: int, rows: int, rng: np.random.Generator) -> pa.Table:
    start = T0_US + k * rows * 1_000_000  # one row per second, versions back to back
    ts = np.arange(start, start + rows * 1_000_000, 1_000_000, dtype=np.int64)
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "sensor": pa.array(rng.integers(0, 16, rows), pa.int32()),
            "value": pa.array(rng.normal(20.0, 5.0, rows)),
        }
    )


def run(work: Path, quick: bool) -> Result:
    versions, rows_per = (20, 5_000) if quick else (100, 10_000)
    reps = 5 if quick else 21
    rng = np.random.default_rng(42)
    log(f"2: building a series of {versions} versions x {rows_per} rows")
    pond = Pond.create(work / "pond-series")
    for k in range(versions):
        with pond.transaction(args=["bench", "append", str(k)]) as tx:
            tx.write_series("/s/temp", version_table(k, rows_per, rng), parents=True)
    vs = pond.versions("/s/temp")
    assert len(vs) == versions
    base_dir = work / "series-parquet"
    base_dir.mkdir()
    for i, row in enumerate(vs):
        dest = base_dir / f"{i:03d}.parquet"
        if row.in_blob:
            shutil.copyfile(pond.blobs.path_for(row.content_hash or ""), dest)
        else:
            dest.write_bytes(row.content or b"")
    # A window covering 10% of the versions, from the middle.
    lo_v = versions // 2 - versions // 20
    hi_v = lo_v + versions // 10 - 1
    t_start = vs[lo_v].min_event_time
    t_end = vs[hi_v].max_event_time

    def baseline() -> pa.Table:
        con = duckdb.connect()
        con.execute(f"CREATE VIEW source AS SELECT * FROM read_parquet('{base_dir}/*.parquet')")
        table = con.sql(QUERY).to_arrow_table()
        con.close()
        return table

    def full() -> pa.Table:
        return pond.sql(QUERY, path="/s/temp")

    def window() -> pa.Table:
        return pond.sql(QUERY, path="/s/temp", time_start=t_start, time_end=t_end)

    counts = {
        "baseline": baseline().column(0)[0].as_py(),
        "full": full().column(0)[0].as_py(),
        "window": window().column(0)[0].as_py(),
    }
    n = versions * rows_per
    if counts != {"baseline": n, "full": n, "window": n // 10}:
        raise RuntimeError(f"unexpected row counts: {counts}")
    t = Timer(warmup=1)
    log(f"2: {reps} reps of each query (interleaved)")
    for _ in range(reps + 1):
        t.run("baseline", baseline)
        t.run("full", full)
        t.run("window", window)
    label = f"{n:,} rows as {versions} versions"
    rows = [
        ratio_row(
            "2a",
            f"SQL count/avg/max over {label}: pond.sql vs DuckDB dir",
            t.median("full"),
            t.median("baseline"),
            1.3,
        ),
        ratio_row(
            "2b",
            "SQL with time window over 10% of versions vs full pond scan",
            t.median("window"),
            t.median("full"),
            0.3,
        ),
    ]
    return Result(rows, [f"2: row counts checked: {counts}"])
