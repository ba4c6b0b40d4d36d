"""Benchmarks 10 and 11: cost that must stay flat as one directory grows.

Three ponds, each with one directory `/d` of N = 100, 10,000 and 100,000 small files
(32 bytes each), built through the pond API in transactions of up to 1,000 files (N/1,000
directory versions; only the automatic upkeep the writes run themselves).

10: one more 1 KiB file written into `/d` (a new name each rep): in-process on a long-lived
    `Pond` (time and bytes added to the pond directory), and as a `pond copy` process.
    Reps interleaved between the three ponds; medians.
11: `pond list '/**' --format json` and `pond cat /d/FILE` as whole processes.
"""

from __future__ import annotations

import time
from pathlib import Path

from duckpond.pond import Pond

from .common import (
    Result,
    Row,
    Timer,
    dir_size,
    fmt_s,
    log,
    median,
    pond_cmd,
    ratio_row,
    run_process,
)

PAYLOAD = bytes(range(256)) * 4  # 1 KiB
PER_TXN = 1_000


def build(root: Path, n: int) -> float:
    t0 = time.perf_counter()
    pond = Pond.create(root)
    with pond.transaction(args=["bench", "mkdir"]) as tx:
        tx.mkdir("/d")
    for start in range(0, n, PER_TXN):
        with pond.transaction(args=["bench", "fill", str(start)]) as tx:
            for i in range(start, min(n, start + PER_TXN)):
                tx.write_bytes(f"/d/f{i:06d}", b"%031d\n" % i)
    return time.perf_counter() - t0


def bytes_row(key: str, name: str, figure: float, baseline: float, goal: float | None) -> Row:
    ratio = figure / baseline if baseline > 0 else float("inf")
    met = "n/a" if goal is None else ("yes" if ratio <= goal else "no")
    return Row(
        key,
        name,
        f"{figure / 1024:.3g} KiB",
        f"{baseline / 1024:.3g} KiB",
        f"{ratio:.2f}×",
        "—" if goal is None else f"≤ {goal:g}×",
        met,
        {"figure_bytes": figure, "baseline_bytes": baseline, "ratio": ratio},
    )


def run(work: Path, quick: bool) -> Result:
    sizes = [100, 1_000, 10_000] if quick else [100, 10_000, 100_000]
    reps = 5 if quick else 15
    roots = {n: work / f"pond-{n}" for n in sizes}
    notes = []
    for n, root in roots.items():
        log(f"10/11: building a directory of {n:,} files")
        secs = build(root, n)
        notes.append(f"10/11: built the {n:,}-file directory in {secs:.1f} s")
    payload = work / "payload.bin"
    payload.write_bytes(PAYLOAD)
    ponds = {n: Pond.open(root) for n, root in roots.items()}
    t = Timer(warmup=1)
    added: dict[str, list[int]] = {}
    log("10: one more write, in-process and as a process")
    for rep in range(reps + 1):
        for n, root in roots.items():
            pond = ponds[n]
            before = dir_size(root)

            def write(p: Pond = pond, r: int = rep) -> None:
                with p.transaction(args=["bench", "one-more"]) as tx:
                    tx.write_bytes(f"/d/lib{r:04d}", PAYLOAD)

            t.run(f"lib{n}", write)
            added.setdefault(f"lib{n}", []).append(dir_size(root) - before)
            before = dir_size(root)
            cmd = pond_cmd(root, "copy", f"host://{payload}", f"/d/proc{rep:04d}")
            t.add(f"proc{n}", run_process(cmd))
            added.setdefault(f"proc{n}", []).append(dir_size(root) - before)
            pond.refresh()
    log("11: list and cat as processes")
    for rep in range(reps + 1):
        for n, root in roots.items():
            t.add(f"list{n}", run_process(pond_cmd(root, "list", "/**", "--format", "json")))
            t.add(f"cat{n}", run_process(pond_cmd(root, "cat", f"/d/f{(rep * 37) % n:06d}")))
    small, mid, big = sizes

    def b(name: str) -> float:
        return median(added[name][1:])

    rows = [
        ratio_row("10a", f"one more 1 KiB write, in-process, {mid:,}-entry dir vs {small}",
                  t.median(f"lib{mid}"), t.median(f"lib{small}"), None),
        ratio_row("10b", f"one more 1 KiB write, in-process, {big:,}-entry dir vs {small}",
                  t.median(f"lib{big}"), t.median(f"lib{small}"), 1.2),
        bytes_row("10c", f"bytes written by that write, in-process, {mid:,} vs {small}",
                  b(f"lib{mid}"), b(f"lib{small}"), None),
        bytes_row("10d", f"bytes written by that write, in-process, {big:,} vs {small}",
                  b(f"lib{big}"), b(f"lib{small}"), 1.2),
        ratio_row("10e", f"one more 1 KiB `pond copy` process, {mid:,}-entry dir vs {small}",
                  t.median(f"proc{mid}"), t.median(f"proc{small}"), None),
        ratio_row("10f", f"one more 1 KiB `pond copy` process, {big:,}-entry dir vs {small}",
                  t.median(f"proc{big}"), t.median(f"proc{small}"), 1.2),
        bytes_row("10g", f"bytes written by `pond copy`, {big:,} vs {small}",
                  b(f"proc{big}"), b(f"proc{small}"), 1.2),
        ratio_row("11a", f"`pond list '/**' --format json` process, {mid:,} files vs {small}",
                  t.median(f"list{mid}"), t.median(f"list{small}"), 1.5),
        Row("11b", f"`pond list '/**' --format json` process, {big:,} files",
            fmt_s(t.median(f"list{big}")), "—", "—", "< 2 s",
            "yes" if t.median(f"list{big}") < 2 else "no", {"figure_s": t.median(f"list{big}")}),
        ratio_row("11c", f"`pond cat /d/FILE` process, {big:,}-entry dir vs {small}",
                  t.median(f"cat{big}"), t.median(f"cat{small}"), None),
    ]  # fmt: skip
    for name in ("lib", "proc"):
        for n in sizes:
            xs = added[f"{name}{n}"][1:]
            notes.append(
                f"10: {name} write into {n:,}: bytes added median {median(xs):,.0f}, "
                f"mean {sum(xs) / len(xs):,.0f}, max {max(xs):,}"
            )
    mib = ", ".join(f"{dir_size(r) / 2**20:.1f} MiB" for r in roots.values())
    files = ", ".join(str(len(list((r / "data").rglob("*.parquet")))) for r in roots.values())
    notes.append(f"10: pond sizes {mib}; Parquet files under data/ {files}")
    return Result(rows, notes)
