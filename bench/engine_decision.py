"""Issue 19, step 1: DuckDB 1.5 against DataFusion tuned as far as it goes, as whole processes.

`python -m bench.engine_decision [--quick]` (not a `make bench` group: it is the measurement
behind the engine decision, kept so that it can be repeated). Each engine runs in its own
`python -c` child on the same Parquet file; pairs are interleaved (duckdb, datafusion,
duckdb, ...) so background load hits both alike; time is wall time of the whole process, peak
RSS is the child's ru_maxrss (os.wait4). The limits cases run each engine under a 200 MiB
memory limit with a 20 s timeout, and a watchdog that kills a child above 2 GiB RSS.

DataFusion "tuned": no numpy/pandas import, target partitions = cores, fair spill pool,
results streamed batch by batch (never collected), CSV written with pyarrow's streaming writer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0_US = 1_700_000_000_000_000
CEILING = 2 << 30
LIMIT = "200MiB"
LIMIT_BYTES = 200 << 20

DUCKDB = """
import sys, duckdb
con = duckdb.connect(config={{'memory_limit': '{limit}', 'threads': 2,
                              'temp_directory': {spill!r}}})
con.execute("CREATE VIEW source AS SELECT * FROM read_parquet({path!r})")
rel = con.sql({query!r})
reader = rel.fetch_record_batch(65536)
import pyarrow.csv as pcsv
with open({out!r}, 'wb') as f:
    w = None
    for b in reader:
        if w is None:
            w = pcsv.CSVWriter(f, b.schema)
        w.write_batch(b)
"""

DATAFUSION = """
import sys
from datafusion import SessionContext, SessionConfig, RuntimeEnvBuilder
cfg = SessionConfig().with_target_partitions(2)
rt = RuntimeEnvBuilder().with_disk_manager_specified({spill!r}).with_fair_spill_pool({limit_b})
ctx = SessionContext(cfg, rt)
ctx.register_parquet('source', {path!r})
stream = ctx.sql({query!r}).execute_stream()
import pyarrow.csv as pcsv
with open({out!r}, 'wb') as f:
    w = None
    for b in stream:
        b = b.to_pyarrow()
        if w is None:
            w = pcsv.CSVWriter(f, b.schema)
        w.write_batch(b)
"""


def make_parquet(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    ts = np.arange(T0_US, T0_US + rows * 1_000_000, 1_000_000, dtype=np.int64)
    table = pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "sensor": pa.array(rng.integers(0, 16, rows), pa.int32()),
            "value": pa.array(rng.normal(20.0, 5.0, rows)),
        }
    )
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)


def status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in bytes; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def run_child(code: str, timeout: float) -> tuple[float, int, int, str]:
    """(wall s, peak RSS bytes, exit code, stderr tail); killed above CEILING or after timeout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    killed = ""
    peak = 0
    while True:
        pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        # VmHWM (the peak since exec): ru_maxrss would count the parent's pages at fork
        rss, hwm = status_kb(proc.pid)
        peak = max(peak, hwm)
        if rss > CEILING or time.perf_counter() - t0 > timeout:
            killed = "KILLED above 2 GiB" if rss > CEILING else "KILLED at timeout"
            proc.kill()
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    tail = killed or (err.strip().splitlines() or [""])[-1][:160]
    return wall, peak, proc.returncode, tail


def code_for(engine: str, path: str, query: str, spill: str, out: str) -> str:
    template = DUCKDB if engine == "duckdb" else DATAFUSION
    return template.format(
        path=path, query=query, spill=spill, out=out, limit=LIMIT, limit_b=LIMIT_BYTES
    )


def speed(work: Path, reps: int, sizes: list[int]) -> None:
    for rows in sizes:
        path = work / f"data-{rows}.parquet"
        if not path.exists():
            make_parquet(path, rows)
        lo = T0_US + rows * 450_000  # 10 % of the rows, from the middle
        hi = lo + rows * 100_000
        cases = {
            "group by": "SELECT sensor, count(*) AS n, avg(value) AS a, min(value) AS lo, "
            "max(value) AS hi FROM source GROUP BY sensor ORDER BY sensor",
            "10% window": "SELECT count(*) AS n, avg(value) AS a FROM source WHERE "
            f"timestamp >= make_ts({lo}) AND timestamp < make_ts({hi})",
        }
        for name, query in cases.items():
            times: dict[str, list[float]] = {"duckdb": [], "datafusion": []}
            rss: dict[str, list[int]] = {"duckdb": [], "datafusion": []}
            for _ in range(reps):
                for engine in ("duckdb", "datafusion"):
                    q = query.replace(
                        "make_ts(",
                        "make_timestamp(" if engine == "duckdb" else "to_timestamp_micros(",
                    )
                    with tempfile.TemporaryDirectory() as spill:
                        code = code_for(engine, str(path), q, spill, os.devnull)
                        wall, peak, rc, tail = run_child(code, 120)
                    assert rc == 0, (engine, tail)
                    times[engine].append(wall)
                    rss[engine].append(peak)
            ratios = [f / d for f, d in zip(times["datafusion"], times["duckdb"], strict=True)]
            print(
                f"{name:11s} {rows:>10,} rows: duckdb {statistics.median(times['duckdb']):.3f} s "
                f"{max(rss['duckdb']) >> 20} MB | datafusion "
                f"{statistics.median(times['datafusion']):.3f} s "
                f"{max(rss['datafusion']) >> 20} MB | datafusion/duckdb median pair ratio "
                f"{statistics.median(ratios):.2f}x",
                flush=True,
            )


LIMIT_CASES = {
    "cross join -> /dev/null": (
        "SELECT a.range AS x, b.range AS y FROM range(100000) a, range(100000) b",
        os.devnull,
    ),
    "cross join -> CSV": (
        "SELECT a.range AS x, b.range AS y FROM range(100000) a, range(100000) b",
        "csv",
    ),
    "huge strings": (
        "SELECT max(length(repeat('x', 1000000) || CAST(range AS VARCHAR))) AS m FROM range(3000)",
        os.devnull,
    ),
    "big aggregation": (
        "SELECT range % 20000000 AS k, count(*) AS n FROM range(40000000) "
        "GROUP BY 1 ORDER BY n DESC LIMIT 3",
        os.devnull,
    ),
    "sort": (
        "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY range DESC) AS r "
        "FROM range(20000000))",
        os.devnull,
    ),
}


def limits(work: Path) -> None:
    for name, (query, out) in LIMIT_CASES.items():
        for engine in ("duckdb", "datafusion"):
            q = query
            if engine == "datafusion":
                q = q.replace(".range", ".value").replace("(range", "(value")
                q = q.replace("BY range", "BY value").replace("SELECT range", "SELECT value")
                q = q.replace("CAST(range", "CAST(value")
            target = str(work / "out.csv") if out == "csv" else out
            with tempfile.TemporaryDirectory() as spill:
                code = code_for(engine, str(work / "data-1000000.parquet"), q, spill, target)
                wall, peak, rc, tail = run_child(code, 20)
                left = sum(len(f) for _, _, f in os.walk(spill))
            if out == "csv" and os.path.exists(target):
                os.unlink(target)
            print(
                f"{name:24s} {engine:10s} exit {rc:>3} {wall:6.1f} s peak {peak >> 20:>5} MB "
                f"spill files left {left}: {tail}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="engine-decision-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    make_parquet(work / "data-1000000.parquet", 1_000_000)
    if not args.skip_speed:
        speed(work, 3 if args.quick else 7, sizes)
    limits(work)


if __name__ == "__main__":
    main()
