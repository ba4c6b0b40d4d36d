"""Benchmark 22 (issue 19 goal 1): `pond cat --sql` against a DuckDB one-liner.

The same query over the same Parquet file, as whole processes: `pond cat host+table:///x
--sql Q --format csv` and `python -c "import duckdb; duckdb.sql(Q).write_csv(...)"`, both
writing CSV to a discarded stdout. Pairs are interleaved (15; 3 in --quick), the time ratio
is taken pair by pair (median reported); peak RSS is each child's VmHWM sampled from /proc
(ru_maxrss would count the parent's pages at fork). Goals: time <= 1.3x, peak RSS <= 1.5x DuckDB's.
Each case also reports CPU time (user + sys of the child, from wait4's rusage), pair by
pair: under a shared machine's load the wall time of a 0.2 s process moves by ±50 %, its
CPU time much less, so the CPU row shows a fixed cost the wall row hides in noise.

The pond's modules are byte-compiled first, as an installed package's are: with
PYTHONDONTWRITEBYTECODE set (as in these sessions' shells) an editable install would
otherwise compile every module in every `pond` process (~0.1 s), which DuckDB's installed
modules never do.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import POND_BIN, Result, Row, log

T0_US = 1_700_000_000_000_000
TIME_GOAL = 1.3
RSS_GOAL = 1.5


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


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(argv: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS bytes, CPU seconds: user + sys) of one whole process;
    raises if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "POND"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _hwm(proc.pid))
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{argv[:3]}... exited {code}: {err[-500:]}")
    return elapsed, peak, usage.ru_utime + usage.ru_stime


def duckdb_argv(path: Path, query: str) -> list[str]:
    q = query.replace("source", f"read_parquet('{path}')")
    code = f"import duckdb; duckdb.sql({q!r}).write_csv('/dev/stdout')"
    return [sys.executable, "-c", code]


def pond_argv(path: Path, query: str) -> list[str]:
    return [str(POND_BIN), "cat", f"host+table://{path}", "--sql", query, "--format", "csv"]


def _rss_row(key: str, name: str, pond: int, duck: int) -> Row:
    ratio = pond / duck if duck else float("inf")
    return Row(
        key,
        name,
        f"{pond / 2**20:.0f} MB",
        f"{duck / 2**20:.0f} MB",
        f"{ratio:.2f}×",
        f"≤ {RSS_GOAL:g}×",
        "yes" if ratio <= RSS_GOAL else "no",
        {"pond_rss": pond, "duckdb_rss": duck, "ratio": ratio},
    )


def byte_compile() -> None:
    """Write the bytecode of the duckpond package (a no-op where it is up to date)."""
    import duckpond

    compileall.compile_dir(Path(duckpond.__file__).parent, quiet=1)


def run(work: Path, quick: bool) -> Result:
    byte_compile()
    sizes = [100_000] if quick else [1_000_000, 10_000_000]
    reps = 3 if quick else 15
    rows: list[Row] = []
    notes: list[str] = []
    letter = iter("abcdefgh")
    for n in sizes:
        path = work / f"rows-{n}.parquet"
        log(f"22: writing {n:,} rows of Parquet")
        make_parquet(path, n)
        lo = T0_US + n * 450_000  # 10 % of the rows, from the middle
        hi = lo + n * 100_000
        cases = {
            "GROUP BY": "SELECT sensor, count(*) AS n, avg(value) AS a, min(value) AS lo, "
            "max(value) AS hi FROM source GROUP BY sensor ORDER BY sensor",
            "10 % time window": "SELECT count(*) AS n, avg(value) AS a FROM source WHERE "
            f"epoch_us(timestamp) >= {lo} AND epoch_us(timestamp) < {hi}",
        }
        for label, query in cases.items():
            times: list[tuple[float, float]] = []
            peaks: list[tuple[int, int]] = []
            cpus: list[tuple[float, float]] = []
            for _ in range(reps):
                pt, pr, pc = run_measured(pond_argv(path, query))
                dt, dr, dc = run_measured(duckdb_argv(path, query))
                times.append((pt, dt))
                peaks.append((pr, dr))
                cpus.append((pc, dc))
            ratios = [p / d for p, d in times]
            ratio = statistics.median(ratios)
            pond_t = statistics.median(p for p, _ in times)
            duck_t = statistics.median(d for _, d in times)
            key = next(letter)
            rows.append(
                Row(
                    f"22{key}",
                    f"`pond cat --sql` {label}, {n:,} rows: time vs DuckDB process",
                    f"{pond_t:.3f} s",
                    f"{duck_t:.3f} s",
                    f"{ratio:.2f}×",
                    f"≤ {TIME_GOAL:g}×",
                    "yes" if ratio <= TIME_GOAL else "no",
                    {"pairs": times, "pair_ratios": ratios, "ratio": ratio},
                )
            )
            cpu_ratios = [p / d for p, d in cpus]
            cpu_ratio = statistics.median(cpu_ratios)
            rows.append(
                Row(
                    f"22{key}-cpu",
                    f"`pond cat --sql` {label}, {n:,} rows: CPU time vs DuckDB process",
                    f"{statistics.median(p for p, _ in cpus):.3f} s",
                    f"{statistics.median(d for _, d in cpus):.3f} s",
                    f"{cpu_ratio:.2f}×",
                    "—",
                    "n/a",
                    {"pairs": cpus, "pair_ratios": cpu_ratios, "ratio": cpu_ratio},
                )
            )
            rows.append(
                _rss_row(
                    f"22{key}-rss",
                    f"`pond cat --sql` {label}, {n:,} rows: peak RSS vs DuckDB process",
                    max(p for p, _ in peaks),
                    max(d for _, d in peaks),
                )
            )
            notes.append(f"22{key}: pair ratios {', '.join(f'{r:.2f}' for r in ratios)}")
    return Result(rows, notes)
