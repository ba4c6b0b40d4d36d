"""Benchmarks 4 and 5: reading from a pond with a long write history.

Two ponds are built through the pond API: one write transaction per small file, the files
spread round-robin over directories (each directory version is a full snapshot of its
entries, so every write also adds a directory version). The large pond has N files over
100 directories of N/100 files; the small one 100 files over 10 directories of 10. Only the
automatic maintenance that the writes themselves run is allowed (no `pond maintain`).

4: a fresh `Pond.open(root).read_bytes(path)` in-process (a different file each rep).
5: `pond list '/**'` and `pond cat FILE` as whole processes.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from duckpond.pond import Pond

from .common import Result, Timer, dir_size, fmt_s, log, pond_cmd, ratio_row, run_process


def file_path(i: int, ndirs: int) -> str:
    return f"/d{i % ndirs:03d}/f{i // ndirs:05d}"


def build(root: Path, nfiles: int, ndirs: int) -> dict[str, float]:
    pond = Pond.create(root)
    with pond.transaction(args=["bench", "mkdirs"]) as tx:
        for d in range(ndirs):
            tx.mkdir(f"/d{d:03d}")
    times = []
    t0 = time.perf_counter()
    for i in range(nfiles):
        t = time.perf_counter()
        with pond.transaction(args=["pond", "copy", f"host:///f{i}", file_path(i, ndirs)]) as tx:
            tx.write_bytes(file_path(i, ndirs), f"file {i}\n".encode() * 10)
        times.append(time.perf_counter() - t)
        if i and i % 2000 == 0:
            log(f"   {i}/{nfiles} writes, {(time.perf_counter() - t0) / i * 1e3:.1f} ms each")
    k = min(100, nfiles)
    tail = times[-max(k, nfiles // 10) :]
    ordered = sorted(times)
    return {
        "build_s": time.perf_counter() - t0,
        "first_median_s": statistics.median(times[:k]),
        "first_mean_s": statistics.mean(times[:k]),
        "last_median_s": statistics.median(times[-k:]),
        "tail_mean_s": statistics.mean(tail),
        "tail_n": len(tail),
        "p99_s": ordered[int(len(ordered) * 0.99)],
        "max_s": ordered[-1],
    }


def _log_stats(table: Path) -> str:
    log_dir = table / "_delta_log"
    entries = list(log_dir.iterdir())
    size = sum(f.stat().st_size for f in entries)
    actions = "?"
    try:
        actions = json.loads((log_dir / "_last_checkpoint").read_text()).get("size", "?")
    except (OSError, ValueError):
        pass
    return f"{len(entries)} log files, {size / 2**20:.0f} MiB, last checkpoint {actions} actions"


def run(work: Path, quick: bool) -> Result:
    n_big = 1_000 if quick else 10_000
    reps_read = 15 if quick else 41
    reps_proc = 3 if quick else 7
    small, big = work / "pond-100", work / f"pond-{n_big}"
    log(f"4/5: building a pond of 100 write transactions and one of {n_big}")
    info_small = build(small, 100, 10)
    info_big = build(big, n_big, 100)
    log(f"   built in {info_big['build_s']:.0f} s; reading")
    rnd = random.Random(1)
    t = Timer(warmup=1)
    for _ in range(reps_read + 1):
        i_small, i_big = rnd.randrange(100), rnd.randrange(n_big)
        got_s = t.run("small", lambda i=i_small: Pond.open(small).read_bytes(file_path(i, 10)))
        got_b = t.run("big", lambda i=i_big: Pond.open(big).read_bytes(file_path(i, 100)))
        assert got_s == f"file {i_small}\n".encode() * 10
        assert got_b == f"file {i_big}\n".encode() * 10
    for _ in range(reps_proc + 1):
        for name, root, path in (
            ("small", small, file_path(7, 10)),
            ("big", big, file_path(n_big // 2 + 7, 100)),
        ):
            t.add(f"list_{name}", run_process(pond_cmd(root, "list", "/**")))
            t.add(f"cat_{name}", run_process(pond_cmd(root, "cat", path)))
    t.add("startup", run_process(pond_cmd(small, "--help")))
    for _ in range(reps_proc):
        t.add("startup", run_process(pond_cmd(small, "--help")))
    rows = [
        ratio_row(
            "4",
            f"read 1 small file, fresh Pond.open, after {n_big:,} txns vs 100",
            t.median("big"),
            t.median("small"),
            1.5,
        ),
        ratio_row(
            "4w",
            f"write txn while building: mean of last {info_big['tail_n']:,} vs first 100",
            info_big["tail_mean_s"],
            info_small["first_mean_s"],
            None,
        ),
        ratio_row(
            "5a",
            f"`pond list '/**'` process, {n_big:,} files vs 100",
            t.median("list_big"),
            t.median("list_small"),
            None,
        ),
        ratio_row(
            "5b",
            f"`pond cat FILE` process, {n_big:,} files vs 100",
            t.median("cat_big"),
            t.median("cat_small"),
            None,
        ),
    ]
    notes = [
        f"4/5: building {n_big:,} writes took {info_big['build_s']:.0f} s; a write cost "
        f"median {fmt_s(info_big['first_median_s'])} over the first 100 and "
        f"{fmt_s(info_big['last_median_s'])} over the last 100; mean of the last "
        f"{info_big['tail_n']:,} {fmt_s(info_big['tail_mean_s'])}; p99 "
        f"{fmt_s(info_big['p99_s'])}, max {fmt_s(info_big['max_s'])} (automatic upkeep)",
        f"4/5: {n_big:,}-txn pond: data/ {dir_size(big / 'data') / 2**20:.0f} MiB "
        f"({_log_stats(big / 'data')}); control/ {dir_size(big / 'control') / 2**20:.0f} MiB "
        f"({_log_stats(big / 'control')})",
        f"4/5: pond sizes: {dir_size(big) / 2**20:.1f} MiB ({n_big:,} files), "
        f"{dir_size(small) / 2**20:.2f} MiB (100 files); data/_delta_log entries: "
        f"{len(list((big / 'data' / '_delta_log').iterdir()))} vs "
        f"{len(list((small / 'data' / '_delta_log').iterdir()))}; data files: "
        f"{len(list((big / 'data').rglob('*.parquet')))} vs "
        f"{len(list((small / 'data').rglob('*.parquet')))} (on disk, incl. compacted-away)",
        f"5: `pond --help` (interpreter + imports) takes {fmt_s(t.median('startup'))}",
    ]
    return Result(rows, notes)
