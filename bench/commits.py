"""Benchmark 6: Delta commits per operation on the data and control tables.

New `_delta_log/NNN.json` entries are counted before/after each operation. A commit whose
commitInfo is a compaction (operation OPTIMIZE or `pond_maintenance`) is upkeep, counted
apart: the goal is on the other ("operation") commits. Checkpoints write no JSON entry.
Each scenario runs several times on its own pond; the table shows the most seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from duckpond.pond import Pond

from .common import Result, Row, log

PAYLOAD = b"x" * 1024


@dataclass
class Counts:
    data: int = 0
    control: int = 0
    data_upkeep: int = 0
    control_upkeep: int = 0


def _log_versions(table: Path) -> set[str]:
    return {p.name for p in (table / "_delta_log").glob("*.json")}


def _is_upkeep(entry: Path) -> bool:
    with open(entry) as f:
        for line in f:
            obj = json.loads(line)
            info = obj.get("commitInfo")
            if info is not None:
                return info.get("operation") == "OPTIMIZE" or "pond_maintenance" in info
    return False


def count(root: Path, op: Callable[[], object]) -> Counts:
    before = {t: _log_versions(root / t) for t in ("data", "control")}
    op()
    c = Counts()
    for t in ("data", "control"):
        for name in _log_versions(root / t) - before[t]:
            upkeep = _is_upkeep(root / t / "_delta_log" / name)
            attr = f"{t}_upkeep" if upkeep else t
            setattr(c, attr, getattr(c, attr) + 1)
    return c


def _write(pond: Pond, path: str) -> Callable[[], None]:
    def op() -> None:
        with pond.transaction(args=["bench", "write"]) as tx:
            tx.write_bytes(path, PAYLOAD, parents=True)

    return op


def _noop(pond: Pond) -> Callable[[], None]:
    def op() -> None:
        with pond.transaction(args=["bench", "mkdir", "-p"]) as tx:
            tx.mkdir("/w", parents=True)

    return op


def _reads(root: Path) -> Callable[[], None]:
    def op() -> None:
        p = Pond.open(root)
        p.read_bytes("/w/f0")
        p.list("/**")
        p.describe("/w/f0")
        p.sql("SELECT count(*) FROM source", path="/t")
        p.control_recent()
        p.control_incomplete()

    return op


def run(work: Path, quick: bool) -> Result:
    reps = 5 if quick else 20
    log(f"6: commit counts, {reps} reps per scenario")
    import pyarrow as pa

    def fresh(name: str, tasks: list[bytes]) -> Pond:
        p = Pond.create(work / name)
        for i, cfg in enumerate(tasks):
            p.mknod("test-executor", f"/etc/system.d/{10 + i}-t", cfg)
        with p.transaction(args=["bench", "setup"]) as tx:
            tx.mkdir("/w")
            tx.write_bytes("/w/f0", PAYLOAD)
            tx.write_table("/t", pa.table({"a": [1, 2, 3]}))
        return p

    scenarios: list[tuple[str, str, Pond, Callable[[int], Callable[[], None]], tuple[int, int]]]
    plain = fresh("c-plain", [])
    one = fresh("c-one", [b"message: hi\n"])
    two = fresh("c-two", [b"message: hi\n", b"message: ho\n"])
    writer = fresh("c-writer", [b"message: hi\nwrite_path: /out/t\n"])
    scenarios = [
        ("6a", "write, no tasks", plain, lambda i: _write(plain, f"/w/a{i}"), (1, 3)),
        ("6b", "no-op write (mkdir -p of an existing dir)", plain, lambda i: _noop(plain), (0, 2)),
        (
            "6c",
            "reads (read_bytes, list, describe, sql, control)",
            plain,
            lambda i: _reads(plain.root),
            (0, 0),
        ),
        ("6d", "write + 1 task (no data)", one, lambda i: _write(one, f"/w/a{i}"), (1, 5)),
        ("6e", "write + 2 tasks (no data)", two, lambda i: _write(two, f"/w/a{i}"), (1, 7)),
        (
            "6f",
            "write + 1 task that writes data",
            writer,
            lambda i: _write(writer, f"/w/a{i}"),
            (2, 6),
        ),
    ]
    rows: list[Row] = []
    notes: list[str] = []
    for key, name, pond, make, (goal_data, goal_ctl) in scenarios:
        seen = [count(pond.root, make(i)) for i in range(reps)]
        data = max(c.data for c in seen)
        data_min = min(c.data for c in seen)
        ctl = max(c.control for c in seen)
        upkeep_d = sum(c.data_upkeep for c in seen)
        upkeep_c = sum(c.control_upkeep for c in seen)
        exact_data = "0" if goal_data == 0 else str(goal_data)
        goal = f"{exact_data} data + ≤{goal_ctl} control" if goal_ctl else "0 data + 0 control"
        met = data == data_min == goal_data and ctl <= goal_ctl
        figure = f"{data} data + {ctl} control"
        if data != data_min:
            figure = f"{data_min}-{data} data + {ctl} control"
        rows.append(
            Row(
                key,
                f"commits per op: {name}",
                figure,
                f"upkeep: {upkeep_d} data + {upkeep_c} ctl in {reps} ops",
                "n/a",
                goal,
                "yes" if met else "no",
                {
                    "data_max": data,
                    "control_max": ctl,
                    "data_upkeep_total": upkeep_d,
                    "control_upkeep_total": upkeep_c,
                    "reps": reps,
                    "control_each": [c.control for c in seen],
                },
            )
        )
    notes.append(
        "6: the 'baseline' column of the commit-count rows shows the compaction (upkeep) "
        "commits seen over all reps, which the goal excludes"
    )
    return Result(rows, notes)
