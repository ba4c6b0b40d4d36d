"""Benchmark 23: a series of many versions read as fast as the same rows in one (issue 19).

23a `pond cat --sql` (a whole process, CSV out) over a series of 1,000 versions x 1,000 rows
    vs the same 1,000,000 rows written as one version, in another pond: interleaved pairs
    (the order alternating), the median of the pair-by-pair ratios. The answers (count,
    an integer sum, min, max) are checked equal first. Warm: the series read cache
    (duckpond/seriescache.py) written by an earlier read, as for every read after the
    first.
23a-cold the same, each read the first after the write: the cache directory removed before
    each sample (not timed), so the read decodes the 1,000 versions and writes the cache.
23a-append 1,000 versions (warm cache) + 1 version appended after the cache was written, vs
    the same 1,001,000 rows in one version.
23a-grow a collector and its dashboard: 1,000 versions (warm cache), then 64 more appended
    one by one, each followed by a read (every 16th writes a segment of the new versions),
    the 64 reads' total time vs 64 reads of the 1-version pond (which holds 1M rows where
    the growing series reaches 1.064M), read by read next to each other, the order
    alternating. The final answer is checked equal to the same rows in one version.
23b the same read limited to a 10 % time window (`--time-start/--time-end`) vs 23a's full
    (warm) read of the many-version series: reported only.

Notes give the in-process cost of locating the 1,000 parts (a fresh `Pond`, median of 9):
the part of 23a the storage layer owns (storage/seriesparts.py); the rest is the engine
opening and scanning 1,000 small Parquet objects.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from duckpond import seriescache
from duckpond.pond import Pond

from .common import POND_BIN, Result, Timer, fmt_s, log, ratio_row, run_process

QUERY = "SELECT count(*) AS n, sum(sensor) AS s, min(value) AS lo, max(value) AS hi FROM source"
T0_US = 1_700_000_000_000_000  # 2023-11-14
SECOND = 1_000_000


def version_table(k: int, rows: int, rng: np.random.Generator) -> pa.Table:
    ts = T0_US + (k * rows + np.arange(rows, dtype=np.int64)) * SECOND
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "sensor": pa.array(rng.integers(0, 16, rows), pa.int32()),
            "value": pa.array(rng.normal(20.0, 5.0, rows)),
        }
    )


def cat(pond: Path, *extra: str) -> list[str]:
    return [str(POND_BIN), "--pond", str(pond), "cat", "--format", "csv", *extra]


def answer(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, check=True)
    return proc.stdout.decode()


@dataclass
class Grown:
    appends: int
    total: float  # the growing series' reads, summed
    baseline: float  # as many reads of the 1-version pond
    samples: list[float]
    written: int  # segment files written by the reads
    bytes_written: int
    chain: int  # segment files in the cache at the end
    chain_bytes: int


def _cache_files(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (root / "cache" / "series").rglob("*.parquet")}


def _grow(
    work: Path,
    many: Path,
    one_argv: list[str],
    tables: list[pa.Table],
    versions: int,
    rows_per: int,
    rng: np.random.Generator,
    appends: int,
) -> Grown:
    """23a-grow: a copy of the warm many-version pond, appended to and read in turns."""
    grown = work / "grown"
    shutil.copytree(many, grown)
    argv = cat(grown, "--sql", QUERY, "/s/temp")
    log(f"23a-grow: {appends} appends, each followed by a read, next to a 1-version read")
    total = baseline = 0.0
    samples: list[float] = []
    seen = set(_cache_files(grown))
    written = bytes_written = 0
    added = []
    for k in range(appends):
        table = version_table(versions + 1 + k, rows_per, rng)
        added.append(table)
        with Pond.open(grown).transaction(args=["bench", "append", str(k)]) as tx:
            tx.write_series("/s/temp", table)
        for name in ("grown", "one") if k % 2 else ("one", "grown"):
            elapsed = run_process(argv if name == "grown" else one_argv)
            if name == "grown":
                total += elapsed
                samples.append(elapsed)
            else:
                baseline += elapsed
        files = _cache_files(grown)
        new = {n: size for n, size in files.items() if n not in seen}
        written += len(new)
        bytes_written += sum(new.values())
        seen |= set(files)
    same = work / "grown_one"
    with Pond.create(same).transaction(args=["bench", "load"]) as tx:
        tx.write_series("/s/temp", pa.concat_tables([*tables, *added]), parents=True)
    if answer(argv) != answer(cat(same, "--sql", QUERY, "/s/temp")):
        raise RuntimeError("23a-grow: the grown series answers otherwise than its rows in one")
    pond = Pond.open(grown)
    loc = pond.fs.require("/s/temp")
    chain = seriescache.lookup(
        seriescache.node_dir(grown, loc.part_id, loc.node_id),
        pond.fs.series_live_versions(loc.part_id, loc.node_id),
    )
    return Grown(
        appends,
        total,
        baseline,
        samples,
        written,
        bytes_written,
        len(chain),
        sum(e.size for e in chain),
    )


def run(work: Path, quick: bool) -> Result:
    versions, rows_per = (100, 1_000) if quick else (1_000, 1_000)
    reps = 3 if quick else 9
    rng = np.random.default_rng(23)
    tables = [version_table(k, rows_per, rng) for k in range(versions)]
    log(f"23: a series of {versions:,} versions x {rows_per:,} rows, and one of 1 version")
    many, one = work / "many", work / "one"
    pond = Pond.create(many)
    for k, table in enumerate(tables):
        with pond.transaction(args=["bench", "append", str(k)]) as tx:
            tx.write_series("/s/temp", table, parents=True)
    single = Pond.create(one)
    with single.transaction(args=["bench", "load"]) as tx:
        tx.write_series("/s/temp", pa.concat_tables(tables), parents=True)
    extra = version_table(versions, rows_per, rng)
    one_plus = work / "one_plus"
    with Pond.create(one_plus).transaction(args=["bench", "load"]) as tx:
        tx.write_series("/s/temp", pa.concat_tables([*tables, extra]), parents=True)
    lo_v = versions // 2 - versions // 20
    start = T0_US + lo_v * rows_per * SECOND
    end = start + versions // 10 * rows_per * SECOND - 1
    window = ["--time-start", str(start), "--time-end", str(end)]
    argv = {
        "many": cat(many, "--sql", QUERY, "/s/temp"),
        "one": cat(one, "--sql", QUERY, "/s/temp"),
        "window": cat(many, "--sql", QUERY, *window, "/s/temp"),
    }
    # the first read writes the cache (its answer checked, as every other); then a copy of
    # the pond gets one more version: its 1,000 first ones read from the cache
    got = {"cold": answer(argv["many"])}
    if not list((many / "cache" / "series").rglob("*.parquet")):
        raise RuntimeError("23: the first read wrote no series cache")
    appended = work / "appended"
    shutil.copytree(many, appended)
    with Pond.open(appended).transaction(args=["bench", "append", "extra"]) as tx:
        tx.write_series("/s/temp", extra)
    argv["appended"] = cat(appended, "--sql", QUERY, "/s/temp")
    argv["one_plus"] = cat(one_plus, "--sql", QUERY, "/s/temp")
    argv["cold"] = argv["many"]
    argv["one_cold"] = argv["one"]
    got.update({name: answer(a) for name, a in argv.items() if name != "cold"})
    if not got["cold"] == got["many"] == got["one"]:
        raise RuntimeError(f"23: the answers differ: {got}")
    if got["appended"] != got["one_plus"]:
        raise RuntimeError(f"23: the appended answers differ: {got}")
    n_window = int(got["window"].splitlines()[1].split(",")[0])
    if n_window != versions // 10 * rows_per:
        raise RuntimeError(f"23: the window holds {n_window} rows")

    t = Timer(warmup=1)
    log(f"23: {reps} reps of each process (interleaved, order alternating)")
    # each figure next to its baseline, the order alternating
    pairs = [("many", "one"), ("window", "one"), ("appended", "one_plus"), ("cold", "one_cold")]
    for rep in range(reps + 1):
        for pair in pairs if rep % 2 else pairs[::-1]:
            for name in pair if rep % 2 else pair[::-1]:
                if pair == ("window", "one") and name == "one":
                    continue  # 23b compares with the warm read
                if name == "cold":  # the state right after the write: no cache
                    shutil.rmtree(many / "cache", ignore_errors=True)
                t.add(name, run_process(argv[name]))
    if answer(argv["many"]) != got["one"]:  # the cache the last cold read wrote
        raise RuntimeError("23: the cache written by a cold read answers otherwise")

    grow = _grow(work, many, argv["one"], tables, versions, rows_per, rng, 16 if quick else 64)

    locate: list[float] = []
    warm: list[float] = []
    for _ in range(9):
        fresh = Pond.open(many)
        loc = fresh.fs.require("/s/temp")
        t0 = time.perf_counter()
        parts = fresh.fs.series_parts(loc.part_id, loc.node_id)
        locate.append(time.perf_counter() - t0)
        assert len(parts) == versions
        fresh = Pond.open(many)
        t0 = time.perf_counter()
        parts = fresh.fs.series_parts(loc.part_id, loc.node_id, cached=True)
        warm.append(time.perf_counter() - t0)
        assert len(parts) == 1 and parts[0].covers == versions
    rows = [
        ratio_row(
            "23a",
            f"`pond cat --sql`, series of {versions:,} versions vs the same rows in 1 (warm)",
            t.median("many"),
            t.median("one"),
            1.3,
            ratio=t.pair_ratio("many", "one"),
        ),
        ratio_row(
            "23a-cold",
            "the same, the first read after the write (writes the cache)",
            t.median("cold"),
            t.median("one_cold"),
            None,
            ratio=t.pair_ratio("cold", "one_cold"),
        ),
        ratio_row(
            "23a-append",
            f"{versions:,} versions (warm) + 1 appended vs the same rows in 1",
            t.median("appended"),
            t.median("one_plus"),
            1.3,
            ratio=t.pair_ratio("appended", "one_plus"),
        ),
        ratio_row(
            "23a-grow",
            f"{versions:,} versions (warm) + {grow.appends} appends, each then read: "
            "the reads' total vs as many reads of 1 version",
            grow.total,
            grow.baseline,
            1.3,
        ),
        ratio_row(
            "23b",
            "the same with a 10% time window vs the full read",
            t.median("window"),
            t.median("many"),
            None,
            ratio=t.pair_ratio("window", "many"),
        ),
    ]
    notes = [
        f"23: answer checked equal: {got['many'].splitlines()[1]}",
        f"23a-grow: {grow.written} segment files written, {grow.bytes_written:,} bytes in all "
        f"(the series' cache at the end: {grow.chain_bytes:,} bytes in {grow.chain} files); "
        f"read samples (s) " + " ".join(f"{x:.2f}" for x in grow.samples),
        f"23: locating the {versions:,} parts in process (fresh Pond): "
        f"{fmt_s(statistics.median(locate))} median of 9; through the cache (1 file, no "
        f"version's content read): {fmt_s(statistics.median(warm))}",
        "23: process samples (s): "
        + "; ".join(f"{k} " + " ".join(f"{x:.2f}" for x in v) for k, v in t.samples.items()),
    ]
    return Result(rows, notes)
