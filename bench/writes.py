"""Benchmarks 1, 7, 8: small write transactions in-process.

1: a 1 KiB file write and a mkdir through the storage layer alone (StagedTxn +
   DataTable.commit) and through the full pond API, against one bare
   `deltalake.write_deltalake(dt, tbl, mode="append")` of a 1-row table to an open table.
7: the same write with the steward (pond.transaction) / through the storage layer alone.
8: a write whose post-commit phase runs one test-executor task / the same write on a pond
   without the task plus running the factory directly.
All operations are interleaved rep by rep so that background noise hits each alike.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from duckpond import nodes
from duckpond.factories import base as factory_base
from duckpond.factories import registry
from duckpond.pond import Pond
from duckpond.storage.dataschema import DATA_SCHEMA
from duckpond.storage.staging import StagedTxn
from duckpond.txn import WriteTxn

from .common import Result, Timer, log, ratio_row
from .layers import storage_write

PAYLOAD = bytes(range(256)) * 4  # 1 KiB
TASK_CONFIG = b"message: hi\n"


def one_row_table(i: int) -> pa.Table:
    """One row shaped like a pond data row (the same 1 KiB payload inline)."""
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "part_id": ["p"],
            "node_id": [nodes.uuid7()],
            "file_type": ["file:data:physical"],
            "version": [1],
            "timestamp": [now],
            "content": [PAYLOAD],
            "content_hash": ["0" * 64],
            "size": [len(PAYLOAD)],
            "min_event_time": [None],
            "max_event_time": [None],
            "extended_attributes": [None],
            "factory": [None],
            "txn_seq": [i],
        },
        schema=DATA_SCHEMA,
    )


class DeltaBaseline:
    """`write_deltalake(dt, one_row, mode="append")` on an open, partitioned table.

    delta-rs' append costs grow with the number of files in the table (~5 ms with a few
    files, ~30 ms with 300 here, checkpoints or not), and a pond keeps its partitions
    compacted, so the baseline is kept small too: a fresh table every ROTATE appends (made
    outside the timing), i.e. 1..ROTATE files. That is the cheapest Delta append, which
    makes the ratio conservative.
    """

    ROTATE = 25

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0
        self.dt: DeltaTable | None = None

    def append(self, t: Timer, i: int) -> None:
        if self.dt is None or self.n % self.ROTATE == 0:
            path = str(self.root / f"t{self.n // self.ROTATE}")
            write_deltalake(path, one_row_table(0), partition_by=["part_id"])
            self.dt = DeltaTable(path)
        table = one_row_table(i)
        dt_ = self.dt
        t.run("delta", lambda: write_deltalake(dt_, table, mode="append"))
        self.n += 1


def run(work: Path, quick: bool) -> Result:
    reps = 40 if quick else 200
    warm = 5
    notes: list[str] = []

    # -- baseline: a bare Delta append to an open table --------------------------------------
    baseline = DeltaBaseline(work / "delta-baseline")

    # -- benchmark 1 / 7 --------------------------------------------------------------------
    pond = Pond.create(work / "pond-writes")
    with pond.transaction(args=["bench", "setup"]) as tx:
        for d in ("/s", "/p", "/sm", "/pm"):
            tx.mkdir(d)
    t = Timer(warmup=warm)
    log(f"1/7: small writes, {reps} reps each (interleaved)")
    for i in range(reps + warm):
        baseline.append(t, i)
        t.run(
            "storage_write",
            lambda i=i: storage_write(
                pond, lambda tx: tx.write_bytes(f"/s/f{i}", PAYLOAD), ["bench"]
            ),
        )
        t.run("pond_write", lambda i=i: _pond_write(pond, f"/p/f{i}"))
        t.run(
            "storage_mkdir",
            lambda i=i: storage_write(pond, lambda tx: tx.mkdir(f"/sm/d{i}"), ["bench"]),
        )
        t.run("pond_mkdir", lambda i=i: _pond_mkdir(pond, f"/pm/d{i}"))
    delta = t.median("delta")
    rows = [
        ratio_row(
            "1a",
            "small write: 1 KiB file, storage layer vs write_deltalake",
            t.median("storage_write"),
            delta,
            2.0,
        ),
        ratio_row(
            "1b",
            "small write: mkdir, storage layer vs write_deltalake",
            t.median("storage_mkdir"),
            delta,
            2.0,
        ),
        ratio_row(
            "1c",
            "small write: 1 KiB file, full pond.transaction vs write_deltalake",
            t.median("pond_write"),
            delta,
            None,
        ),
        ratio_row(
            "1d",
            "small write: mkdir, full pond.transaction vs write_deltalake",
            t.median("pond_mkdir"),
            delta,
            None,
        ),
        ratio_row(
            "7a",
            "steward overhead: 1 KiB write, pond.transaction vs storage layer",
            t.median("pond_write"),
            t.median("storage_write"),
            2.0,
        ),
        ratio_row(
            "7b",
            "steward overhead: mkdir, pond.transaction vs storage layer",
            t.median("pond_mkdir"),
            t.median("storage_mkdir"),
            2.0,
        ),
    ]
    notes.append(f"1/7: {t.count('delta')} reps per operation after {warm} warm-up reps")
    notes.append(
        "1/7: means (incl. upkeep spikes): "
        + ", ".join(f"{k} {t.mean(k) * 1e3:.2f} ms" for k in t.samples)
    )

    # -- benchmark 8 ------------------------------------------------------------------------
    with_task = Pond.create(work / "pond-task")
    with_task.mknod("test-executor", "/etc/system.d/10-t", TASK_CONFIG)
    with_task.steward  # noqa: B018 - build the steward outside the timings
    plain = Pond.create(work / "pond-plain")
    for p in (with_task, plain):
        with p.transaction(args=["bench", "setup"]) as tx:
            tx.mkdir("/p")
    fac = registry.get("test-executor")
    t8 = Timer(warmup=warm)
    log(f"8: post-commit overhead, {reps} reps each (interleaved)")
    for i in range(reps + warm):
        t8.run("with_task", lambda i=i: _pond_write(with_task, f"/p/f{i}"))
        t8.run("plain", lambda i=i: _pond_write(plain, f"/p/f{i}"))
        t8.run("factory", lambda: _run_factory_directly(plain, fac))
    failed = with_task.steward.failed_tasks
    if failed:
        raise RuntimeError(f"the post-commit task failed: {failed[0][1]}")
    alone = t8.median("plain") + t8.median("factory")
    rows.append(
        ratio_row(
            "8",
            "post-commit: write + 1 test-executor task vs write alone + factory run",
            t8.median("with_task"),
            alone,
            1.8,
            write_alone_s=t8.median("plain"),
            factory_s=t8.median("factory"),
        )
    )
    notes.append(
        f"8: write alone {t8.median('plain') * 1e3:.2f} ms + factory run directly "
        f"{t8.median('factory') * 1e3:.3f} ms (medians); means: with task "
        f"{t8.mean('with_task') * 1e3:.2f} ms, write alone {t8.mean('plain') * 1e3:.2f} ms"
    )
    return Result(rows, notes)


def _pond_write(pond: Pond, path: str) -> None:
    with pond.transaction(args=["bench", "write"]) as tx:
        tx.write_bytes(path, PAYLOAD)


def _pond_mkdir(pond: Pond, path: str) -> None:
    with pond.transaction(args=["bench", "mkdir"]) as tx:
        tx.mkdir(path)


def _run_factory_directly(pond: Pond, fac: factory_base.Factory) -> None:
    """What the task does, as `Steward.load_factory` + `run_task` do it, minus the steward."""
    raw = factory_base.parse_config(TASK_CONFIG, "the config")
    fac.validate(raw)
    staged = StagedTxn(pond.steward.fs, pond.data.last_txn_seq() + 1)
    ctx = factory_base.RunContext(
        WriteTxn(staged, {}), pond_path=str(pond.root), label="10-t", args=["bench"]
    )
    fac.run(factory_base.expand_env(raw), ctx)
