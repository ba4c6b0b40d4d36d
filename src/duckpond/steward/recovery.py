"""`pond recover`: finish what a crash interrupted (SPEC §6). Idempotent: the second run
finds nothing to do. The data table's `pond_txn` commit metadata is the authority on what
committed; the control table only says what was being attempted."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..factories import process
from .control import (
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    FAILED,
    PC_COMPLETED,
    PC_PENDING,
    PC_STARTED,
    POST_COMMIT,
    WRITE,
    Record,
)
from .steward import Steward, Task
from .summaries import (
    failed_tasks,
    nothing_unfinished,
    unfinished_tasks,
    unfinished_txn_ids,
)

INTERRUPTED = "interrupted before data commit"

log = logging.getLogger("pond")


def _rows_of(ctl: pa.Table, txn_id: str) -> list[dict[str, Any]]:
    return ctl.filter(pc.fill_null(pc.equal(ctl["txn_id"], txn_id), False)).to_pylist()


def _begin(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if r["record_type"] == BEGIN)


def _args_vars(begin: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    try:
        args = json.loads(begin.get("cli_args") or "[]")
    except ValueError:
        args = []
    try:
        vars = json.loads(begin.get("vars") or "{}")
    except ValueError:
        vars = {}
    return args, vars


def _since_ms(ts: Any) -> int:
    return max(0, int(time.time() * 1000 - ts.timestamp() * 1000))


def _end_earlier_attempts(ctl: pa.Table, key: tuple[int, int]) -> None:
    """End the process group of every recorded attempt of task `key` still running (a job
    that outlived a crashed pond); raises PondError if one cannot be ended."""
    if "pid" not in ctl.column_names:
        return
    mask = pc.and_(
        pc.and_(_eq(ctl, "parent_txn_seq", key[0]), _eq(ctl, "execution_seq", key[1])),
        pc.and_(_eq(ctl, "record_type", PC_STARTED), pc.is_valid(ctl["pid"])),
    )
    for r in ctl.filter(mask).to_pylist():
        if process.end_group(r["pid"], r["pid_starttime"]):
            log.warning(
                "ended process group %d left running by attempt %s of task %d/%d",
                r["pid"],
                r["attempt"],
                key[0],
                key[1],
            )


def _eq(table: pa.Table, column: str, value: Any) -> pa.ChunkedArray:
    return pc.fill_null(pc.equal(table[column], value), False)


def recover(steward: Steward, retry_failed: bool = False) -> dict[str, Any]:
    """Finish interrupted work; returns a report of every action taken."""
    report: dict[str, Any] = {"transactions": [], "tasks": []}
    with steward.locked():
        steward.data.refresh()
        if not retry_failed and nothing_unfinished(steward.control):
            return report  # the common case: three small columns read, nothing to do
        ctl = steward.control.read_all()
        open_writes = unfinished_txn_ids(ctl, WRITE)
        open_task_txns = unfinished_txn_ids(ctl, POST_COMMIT)
        todo = unfinished_tasks(ctl)
        retry = failed_tasks(ctl) if retry_failed else []
        if not (open_writes or open_task_txns or todo or retry):
            return report
        committed = {p["txn_id"]: (v, p) for v, p in steward.data.pond_txns()}

        # 1. A task's own transaction that was interrupted: its data either committed or not.
        finished_by_data: set[tuple[int, int]] = set()
        for txn_id in open_task_txns:
            rows = _rows_of(ctl, txn_id)
            b = _begin(rows)
            link = {
                "parent_txn_seq": b["parent_txn_seq"],
                "execution_seq": b["execution_seq"],
                "attempt": b["attempt"],
            }
            if txn_id in committed:
                version = committed[txn_id][0]
                steward.record(
                    [
                        Record(
                            b["txn_seq"],
                            txn_id,
                            DATA_COMMITTED,
                            POST_COMMIT,
                            data_fs_version=version,
                            **link,
                        ),
                        Record(b["txn_seq"], txn_id, COMPLETED, POST_COMMIT, duration_ms=0, **link),
                    ]
                )
                finished_by_data.add((b["parent_txn_seq"], b["execution_seq"]))
                action = "task transaction committed: recorded data_committed"
            else:
                steward.record(
                    [
                        Record(
                            b["txn_seq"],
                            txn_id,
                            FAILED,
                            POST_COMMIT,
                            error_message=INTERRUPTED,
                            **link,
                        )
                    ]
                )
                action = "task transaction rolled back: recorded failed"
            report["transactions"].append(
                {"txn_seq": b["txn_seq"], "txn_id": txn_id, "action": action}
            )

        # 2. User writes with no terminal row.
        to_close: dict[str, dict[str, Any]] = {}
        for txn_id in open_writes:
            rows = _rows_of(ctl, txn_id)
            b = _begin(rows)
            seq = b["txn_seq"]
            if txn_id not in committed:
                steward.record(
                    [
                        Record(
                            seq,
                            txn_id,
                            FAILED,
                            WRITE,
                            error_message=INTERRUPTED,
                            duration_ms=_since_ms(b["timestamp"]),
                        )
                    ]
                )
                report["transactions"].append(
                    {"txn_seq": seq, "txn_id": txn_id, "action": "not committed: recorded failed"}
                )
                continue
            if not any(r["record_type"] == DATA_COMMITTED for r in rows):
                version = committed[txn_id][0]
                tasks = steward.discover(seq, txn_id)
                steward.record(
                    [
                        Record(seq, txn_id, DATA_COMMITTED, WRITE, data_fs_version=version),
                        *[steward.task_record(t, PC_PENDING, attempt=1) for t in tasks],
                    ]
                )
                todo.extend(
                    {
                        "parent_txn_seq": seq,
                        "execution_seq": t.execution_seq,
                        "factory_name": t.factory_name,
                        "config_path": t.config_path,
                        "state": "pending",
                        "attempt": 1,
                        "txn_id": txn_id,
                    }
                    for t in tasks
                )
                report["transactions"].append(
                    {
                        "txn_seq": seq,
                        "txn_id": txn_id,
                        "action": "committed: recorded data_committed",
                    }
                )
            to_close[txn_id] = b

        # 3. Tasks: pending never started, started never finished, failed on request.
        for t in sorted([*todo, *retry], key=lambda t: (t["parent_txn_seq"], t["execution_seq"])):
            task = Task(
                t["parent_txn_seq"],
                t["txn_id"],
                t["execution_seq"],
                t["factory_name"],
                t["config_path"],
            )
            parent_rows = _rows_of(ctl, t["txn_id"]) if t["txn_id"] not in to_close else []
            begin = to_close.get(t["txn_id"]) or _begin(parent_rows)
            args, vars = _args_vars(begin)
            key = (task.parent_txn_seq, task.execution_seq)
            attempt = t["attempt"] + 1 if t["state"] in ("started", "failed") else t["attempt"]
            if key in finished_by_data:
                attempt = t["attempt"]  # not run again: the attempt whose data committed
                steward.record(
                    [steward.task_record(task, PC_COMPLETED, attempt=t["attempt"], duration_ms=0)]
                )
                outcome = "completed (its data had committed)"
            else:
                # At most one attempt at a time: what an earlier one left running ends first.
                _end_earlier_attempts(ctl, key)
                ok = steward.run_task(task, args, vars, attempt)
                outcome = "completed" if ok else "failed"
            done = {
                "parent_txn_seq": key[0],
                "execution_seq": key[1],
                "factory_name": task.factory_name,
                "config_path": task.config_path,
                "attempt": attempt,
                "outcome": outcome,
            }
            if outcome == "failed":
                done["error"] = steward.failed_tasks[-1][1]  # recorded redacted, one line
            report["tasks"].append(done)
            if t["txn_id"] not in to_close and begin["transaction_type"] == WRITE:
                if t["txn_id"] in open_writes:
                    to_close[t["txn_id"]] = begin

        # 4. Close every committed write whose tasks are now all finished.
        for txn_id, b in to_close.items():
            steward.record(
                [
                    Record(
                        b["txn_seq"],
                        txn_id,
                        COMPLETED,
                        WRITE,
                        duration_ms=_since_ms(b["timestamp"]),
                    )
                ]
            )
            report["transactions"].append(
                {"txn_seq": b["txn_seq"], "txn_id": txn_id, "action": "recorded completed"}
            )
    return report
