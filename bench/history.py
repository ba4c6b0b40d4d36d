"""Benchmark 9: cost of the steward's work with a long recorded history.

Building 100,000 real write transactions would take most of an hour, so the large pond's
history is built through the library in three steps:

1. synthetic history: `ControlTable.append` of whole recorded transactions in bulk
   (1,000 transactions per call, i.e. one Delta commit of ~3,300 rows): each one `begin` ->
   `data_committed` -> `completed`, and every 10th with one post-commit task
   (`post_commit_pending` -> `started` -> `completed`). The control table's own automatic
   upkeep (tiered compaction, checkpoints) runs as it would.
2. one real storage-layer data commit carrying the last synthetic txn_seq, so the data
   table's sequence (the authority for the next txn_seq) continues after the history;
3. 100 real writes through `pond.transaction` (the newest transactions, which is what
   `pond control recent` shows).

The small pond has 100 transactions: `init` and 99 real writes. Then: one more write
(in-process and as a `pond copy` process), `pond control recent` and `pond recover`
(nothing to do) as whole processes, interleaved between the two ponds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from duckpond import nodes
from duckpond.pond import Pond
from duckpond.steward.control import (
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    PC_COMPLETED,
    PC_PENDING,
    PC_STARTED,
    POST_COMMIT,
    WRITE,
    Record,
)
from duckpond.storage import tableread
from duckpond.storage.staging import StagedTxn
from duckpond.txn import WriteTxn

from .common import Result, Row, Timer, fmt_s, log, pond_cmd, ratio_row, run_process

PAYLOAD = b"y" * 1024
REAL_WRITES = 100
PER_APPEND = 1_000


def synthetic_txn(seq: int) -> list[Record]:
    txn_id = nodes.uuid7()
    args = json.dumps(["pond", "copy", f"host:///in/{seq}.csv", f"/in/{seq}"])
    out = [
        Record(seq, txn_id, BEGIN, WRITE, cli_args=args, vars="{}"),
        Record(seq, txn_id, DATA_COMMITTED, WRITE, data_fs_version=seq),
    ]
    if seq % 10 == 0:
        task = {
            "parent_txn_seq": seq,
            "execution_seq": 1,
            "factory_name": "test-executor",
            "config_path": "/etc/system.d/10-t",
            "attempt": 1,
        }
        out += [
            Record(seq, txn_id, PC_PENDING, POST_COMMIT, **task),
            Record(seq, txn_id, PC_STARTED, POST_COMMIT, **task),
            Record(seq, txn_id, PC_COMPLETED, POST_COMMIT, duration_ms=3, **task),
        ]
    out.append(Record(seq, txn_id, COMPLETED, WRITE, duration_ms=8))
    return out


def _write(pond: Pond, path: str) -> None:
    with pond.transaction(args=["pond", "copy", "host:///x", path]) as tx:
        tx.write_bytes(path, PAYLOAD, parents=True)


def build_large(root: Path, total: int) -> dict[str, float]:
    t0 = time.perf_counter()
    pond = Pond.create(root)  # txn 1
    last_synthetic = total - REAL_WRITES  # synthetic seqs 2..last_synthetic
    seq = 2
    while seq < last_synthetic:
        end = min(seq + PER_APPEND, last_synthetic)
        records = [r for s in range(seq, end) for r in synthetic_txn(s)]
        pond.control.append(records)
        seq = end
    # The last synthetic transaction is a real data commit: the sequence continues from it.
    txn_id = nodes.uuid7()
    info = {"txn_seq": last_synthetic, "txn_id": txn_id, "args": ["bench"], "vars": {}}
    staged = StagedTxn(pond.steward.fs, last_synthetic)
    WriteTxn(staged, info).write_bytes("/h/bridge", PAYLOAD, parents=True)
    version = pond.data.commit(staged.rows(), info)
    pond.control.append(
        [
            Record(last_synthetic, txn_id, BEGIN, WRITE, cli_args='["bench"]', vars="{}"),
            Record(last_synthetic, txn_id, DATA_COMMITTED, WRITE, data_fs_version=version),
            Record(last_synthetic, txn_id, COMPLETED, WRITE, duration_ms=1),
        ]
    )
    synth_s = time.perf_counter() - t0
    for i in range(REAL_WRITES):
        _write(pond, f"/h/f{i}")
    assert pond.data.last_txn_seq() == total
    return {"synthetic_s": synth_s, "build_s": time.perf_counter() - t0}


def build_small(root: Path, total: int) -> None:
    pond = Pond.create(root)
    for i in range(total - 1):
        _write(pond, f"/h/f{i}")
    assert pond.data.last_txn_seq() == total


def run(work: Path, quick: bool) -> Result:
    total = 5_000 if quick else 100_000
    reps_in = 15 if quick else 41
    reps_proc = 3 if quick else 11
    small, large = work / "pond-h100", work / f"pond-h{total}"
    log(f"9: building a pond with {total:,} recorded transactions and one with 100")
    build_small(small, 100)
    info = build_large(large, total)
    log(f"   built in {info['build_s']:.0f} s; measuring")
    ponds = {"small": Pond.open(small), "large": Pond.open(large)}
    for name, p in ponds.items():
        report = p.recover()
        if report:
            raise RuntimeError(f"{name} pond had something to recover: {report}")
    ctl_rows = ponds["large"].control.read_all().num_rows
    ctl_files = tableread.add_actions(ponds["large"].control.dt).num_rows
    host = work / "one-kib.bin"
    host.write_bytes(PAYLOAD)
    t = Timer(warmup=1)
    for i in range(reps_in + 1):
        for name, p in ponds.items():
            t.run(f"write_{name}", lambda p=p, i=i: _write(p, f"/h/n{i}"))
    for i in range(reps_proc + 1):
        for name, root in (("small", small), ("large", large)):
            copy = pond_cmd(root, "copy", f"host://{host}", f"/h/p{i}")
            t.add(f"copy_{name}", run_process(copy))
            t.add(f"recent_{name}", run_process(pond_cmd(root, "control", "recent")))
            t.add(f"recover_{name}", run_process(pond_cmd(root, "recover")))
    label = f"{total:,} txns vs 100"
    recent = t.median("recent_large")
    rows = [
        ratio_row(
            "9a",
            f"one more write, in-process, {label}",
            t.median("write_large"),
            t.median("write_small"),
            1.2,
        ),
        ratio_row(
            "9b",
            f"one more write, `pond copy` process, {label}",
            t.median("copy_large"),
            t.median("copy_small"),
            1.2,
        ),
        ratio_row(
            "9c", f"`pond control recent` process, {label}", recent, t.median("recent_small"), 1.2
        ),
        Row(
            "9d",
            f"`pond control recent` process, {total:,} txns",
            fmt_s(recent),
            "—",
            "—",
            "< 1 s",
            "yes" if recent < 1.0 else "no",
            {"figure_s": recent},
        ),
        ratio_row(
            "9e",
            f"`pond recover` (nothing to do) process, {label}",
            t.median("recover_large"),
            t.median("recover_small"),
            1.2,
        ),
    ]
    notes = [
        f"9: history built in {info['build_s']:.0f} s ({info['synthetic_s']:.0f} s of bulk "
        f"control appends); control table then held {ctl_rows:,} rows in {ctl_files} files"
    ]
    return Result(rows, notes)
