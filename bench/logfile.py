"""Benchmark 20: `logfile-ingest` cost follows new bytes, not the log's size (issue 20).

20a `pond run NODE` (a whole process, as cron runs it) after one new line in an active
    log of 1 GB already in the pond, vs the same run on a 1 KB log. Each rep appends one
    line to both host logs and runs both ingests back to back (interleaved, so machine
    load hits both alike); the figure is the median. Goal ≤ 1.2×.
The logs are written in the group's temporary directory (1 GB on disk, and its copy in
the pond's blob store); `--quick` uses 64 MB.
"""

from __future__ import annotations

from pathlib import Path

from duckpond.pond import Pond

from .common import Result, Timer, log, pond_cmd, ratio_row, run_process

NODE = "/etc/jobs/logs"
LINE = b"2026-01-01T00:00:00.000Z INFO request served in 12 ms path=/api/v1/items status=200\n"


def _write_log(path: Path, size: int) -> None:
    block = LINE * max(1, (1 << 20) // len(LINE))
    with path.open("wb") as f:
        left = size
        while left >= len(block):
            f.write(block)
            left -= len(block)
        f.write(LINE * max(1, left // len(LINE)))


def _pond_with_log(work: Path, name: str, size: int) -> tuple[Path, Path]:
    host = work / f"host-{name}"
    host.mkdir()
    active = host / "app.log"
    _write_log(active, size)
    root = work / f"pond-{name}"
    pond = Pond.create(root)
    cfg = f"archived_pattern: {host}/app.log.*\nactive_pattern: {active}\npond_path: /logs/app\n"
    pond.mknod("logfile-ingest", NODE, cfg.encode())
    log(f"20: first ingest of the {name} log ({active.stat().st_size:,} bytes)")
    run_process(pond_cmd(root, "run", NODE))  # the whole log: setup, not timed
    return root, active


def run(work: Path, quick: bool) -> Result:
    big_size = (64 << 20) if quick else (1 << 30)
    reps = 5 if quick else 15
    big = _pond_with_log(work, "big", big_size)
    small = _pond_with_log(work, "small", 1024)

    def one_line(root: Path, active: Path) -> float:
        with active.open("ab") as f:
            f.write(LINE)
        return run_process(pond_cmd(root, "run", NODE))

    t = Timer(warmup=1)
    log(f"20a: {reps} reps (interleaved)")
    for _ in range(reps + 1):
        t.add("big", one_line(*big))
        t.add("small", one_line(*small))
    for name, (root, active) in (("big", big), ("small", small)):
        pond = Pond.open(root)
        stored = pond.describe("/logs/app/app.log").size
        if stored != active.stat().st_size:
            raise RuntimeError(f"20a: the {name} pond log holds {stored} bytes, host {active}")
    label = "64 MB" if quick else "1 GB"
    return Result(
        [
            ratio_row(
                "20a",
                f"logfile-ingest run, +1 line: {label} log vs 1 KB log",
                t.median("big"),
                t.median("small"),
                1.2,
                reps=t.count("big"),
                big_bytes=big[1].stat().st_size,
            )
        ]
    )
