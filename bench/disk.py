"""Benchmark 13: disk use of a pond under automatic maintenance only.

A pond is built through the library with N write transactions, each writing one new
1 KiB file (random bytes, so compression does not flatter the figures), round-robin over
100 directories; the retention window is set to its minimum (0) first, and no
`pond maintain` runs. Measured:

14a: bytes on disk under `$POND` / live bytes, where live bytes are the Parquet files of
     both tables' latest snapshots plus the blobs they reference (the Delta log,
     checkpoints and the commit archive count as overhead).
14b: bytes written per 1 KiB write, amortised over all N writes and the upkeep they ran
     (`wchar` of /proc/self/io: every byte passed to write(2), files later deleted
     included), against the same figure measured on the code before this work.
14c: files created per write: names that appear under `$POND` during each of the last 20
     writes (upkeep included), mean.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path

from duckpond.pond import Pond

from .common import Result, Row, log

# Measured with this group (10,000 writes) on commit 712dd85, before issue 7's disk work:
# see bench/RESULTS.md. The quick run's 1,000 writes cost less each (smaller directories).
BASELINE_BYTES_PER_WRITE = 43_200.0


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def file_path(i: int, ndirs: int) -> str:
    return f"/d{i % ndirs:03d}/f{i // ndirs:05d}"


def names(root: Path) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


def disk_usage(root: Path) -> tuple[int, int]:
    total = count = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            total += os.stat(os.path.join(dirpath, f)).st_size
            count += 1
    return total, count


def live_bytes(root: Path) -> int:
    from deltalake import DeltaTable

    from duckpond.storage import tableread

    total = 0
    for name in ("data", "control"):
        actions = tableread.add_actions(DeltaTable(str(root / name)))
        total += sum(actions.column("size_bytes").to_pylist())
    pond = Pond.open(root)
    seen: set[str] = set()
    for part in pond.data.partitions():
        # the index holds no contents: a hash with a blob file is a row stored as a blob
        for h in pond.data.partition_index(part).index.column("content_hash").to_pylist():
            if h and h not in seen:
                seen.add(h)
                p = pond.blobs.path_for(h)
                if p.exists():
                    total += p.stat().st_size
    return total


def set_min_retention(pond: Pond) -> bool:
    setter = getattr(pond, "set_retention", None)
    if setter is None:
        return False  # code before the retention setting: nothing to set
    setter(0)
    # Log entries kept for other readers' time travel (`delta.logRetentionDuration`, which
    # set_retention(0) sets to 0 now; older code: 7 days, at most ~500 versions): also at
    # their minimum, the prune behind the previous checkpoint.
    for table in (pond.data, pond.control):
        table.dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    return True


def run(work: Path, quick: bool) -> Result:
    n = 1_000 if quick else 10_000
    ndirs = 100
    root = work / "pond"
    pond = Pond.create(root)
    had_setting = set_min_retention(pond)
    with pond.transaction(args=["bench", "mkdirs"]) as tx:
        for d in range(ndirs):
            tx.mkdir(f"/d{d:03d}")
    rnd = random.Random(7)
    log(f"14: {n:,} one-file writes (1 KiB each) over {ndirs} directories")
    t0 = time.perf_counter()
    w0 = wchar()
    new_files: list[int] = []
    for i in range(n):
        track = i >= n - 20
        if track:
            before = names(root)
        with pond.transaction(args=["pond", "copy", f"host:///f{i}", file_path(i, ndirs)]) as tx:
            tx.write_bytes(file_path(i, ndirs), rnd.randbytes(1024))
        if track:
            new_files.append(len(names(root) - before))
        if i and i % 2000 == 0:
            log(f"   {i}/{n} writes, {(time.perf_counter() - t0) / i * 1e3:.1f} ms each")
    written = wchar() - w0
    build_s = time.perf_counter() - t0
    disk, nfiles = disk_usage(root)
    live = live_bytes(root)
    ratio = disk / live
    per_write = written / n
    files_per_write = statistics.mean(new_files)
    pw_ratio = per_write / BASELINE_BYTES_PER_WRITE
    rows = [
        Row(
            "14a",
            f"disk / live bytes after {n:,} txns, automatic upkeep, minimum retention",
            f"{disk / 2**20:.1f} MiB",
            f"{live / 2**20:.1f} MiB live",
            f"{ratio:.2f}×",
            "≤ 1.5×",
            "yes" if ratio <= 1.5 else "no",
            {"disk": disk, "live": live, "files_on_disk": nfiles, "ratio": ratio},
        ),
        Row(
            "14b",
            "bytes written per 1 KiB write (amortised, upkeep included) vs before",
            f"{per_write / 1000:.1f} KB",
            f"{BASELINE_BYTES_PER_WRITE / 1000:.1f} KB before",
            f"{pw_ratio:.2f}×",
            "≤ 0.5×",
            "yes" if pw_ratio <= 0.5 else "no",
            {"bytes_per_write": per_write, "baseline": BASELINE_BYTES_PER_WRITE},
        ),
        Row(
            "14c",
            "files created per write (last 20 writes, upkeep included)",
            f"{files_per_write:.2f}",
            "—",
            "—",
            "—",
            "n/a",
            {"files_per_write": files_per_write},
        ),
    ]
    notes = [
        f"14: {n:,} writes took {build_s:.0f} s ({build_s / n * 1e3:.1f} ms each); "
        f"{nfiles:,} files on disk, {disk / 2**20:.1f} MiB for {live / 2**20:.1f} MiB live; "
        f"{written / 2**20:.0f} MiB written in all; retention setting "
        f"{'set to 0' if had_setting else 'absent (old code)'}",
    ]
    return Result(rows, notes)
