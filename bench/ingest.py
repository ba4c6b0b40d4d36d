"""Benchmark 3: ingest a large CSV as a table.

Pond: `tx.write_csv_file(path, csv)` in one `pond.transaction` (CSV -> Parquet, stored as a
content-addressed blob, committed). Baseline: `pyarrow.csv.read_csv` then
`pyarrow.parquet.write_table` straight to a file (pyarrow defaults). The CSV is generated
once and is in the page cache for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from duckpond.pond import Pond

from .common import Result, Timer, log, ratio_row

T0_US = 1_700_000_000_000_000
CHUNK = 100_000


def _chunk(k: int, rng: np.random.Generator) -> pa.Table:
    start = T0_US + k * CHUNK * 1_000_000
    ts = np.arange(start, start + CHUNK * 1_000_000, 1_000_000, dtype=np.int64)
    sensors = np.array([f"sensor-{i:02d}" for i in range(32)])
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "sensor": pa.array(sensors[rng.integers(0, 32, CHUNK)]),
            "value": pa.array(np.round(rng.normal(20.0, 5.0, CHUNK), 4)),
            "count": pa.array(rng.integers(0, 100_000, CHUNK)),
            "ok": pa.array(rng.random(CHUNK) < 0.9),
        }
    )


def make_csv(path: Path, target_bytes: int) -> int:
    """Write a CSV of about `target_bytes`; returns its row count."""
    rng = np.random.default_rng(7)
    rows = 0
    first = _chunk(0, rng)
    with pcsv.CSVWriter(str(path), first.schema) as w:
        w.write_table(first)
        rows += first.num_rows
        k = 1
        while path.stat().st_size < target_bytes:
            w.write_table(_chunk(k, rng))
            rows += CHUNK
            k += 1
    return rows


def run(work: Path, quick: bool) -> Result:
    target = 10 * 2**20 if quick else 100 * 2**20
    reps = 3 if quick else 3
    csv = work / "big.csv"
    nrows = make_csv(csv, target)
    size = csv.stat().st_size
    log(f"3: CSV of {size / 2**20:.0f} MiB, {nrows:,} rows; {reps} reps each (interleaved)")
    pond = Pond.create(work / "pond-ingest")
    out = work / "baseline.parquet"

    def baseline() -> None:
        pq.write_table(pcsv.read_csv(csv), out)

    def ingest(i: int) -> None:
        with pond.transaction(args=["bench", "ingest"]) as tx:
            tx.write_csv_file(f"/ingest/t{i}", csv, parents=True)

    t = Timer(warmup=1)
    for i in range(reps + 1):
        t.run("baseline", baseline)
        t.run("pond", lambda i=i: ingest(i))
    got = pond.sql("SELECT count(*) FROM source", path="/ingest/t0").column(0)[0].as_py()
    if got != nrows:
        raise RuntimeError(f"ingested {got} rows, expected {nrows}")
    blob = pond.versions("/ingest/t0")[-1]
    notes = [
        f"3: CSV {size / 2**20:.1f} MiB, {nrows:,} rows; pond Parquet {blob.size / 2**20:.1f} "
        f"MiB, baseline Parquet {out.stat().st_size / 2**20:.1f} MiB"
    ]
    rows = [
        ratio_row(
            "3",
            f"ingest {size / 2**20:.0f} MiB CSV as a table vs read_csv + write_table",
            t.median("pond"),
            t.median("baseline"),
            1.5,
        )
    ]
    return Result(rows, notes)
