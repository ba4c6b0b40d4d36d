"""Reading the control table: transaction summaries, details, what is unfinished (SPEC §7).

Whole-table work is vectorised with pyarrow so that `pond control recent` and an idle
`pond recover` stay fast however long the history grows.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .control import (
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    FAILED,
    PC_COMPLETED,
    PC_FAILED,
    PC_PENDING,
    PC_STARTED,
    POST_COMMIT,
    WRITE,
    ControlTable,
)

TASK_STATES = {
    PC_PENDING: "pending",
    PC_STARTED: "started",
    PC_COMPLETED: "completed",
    PC_FAILED: "failed",
}


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _eq(table: pa.Table, column: str, value: Any) -> pa.ChunkedArray:
    return pc.fill_null(pc.equal(table[column], value), False)


def unfinished_txn_ids(ctl: pa.Table, transaction_type: str) -> list[str]:
    """txn_ids with a `begin` row and no terminal row, oldest first."""
    is_type = _eq(ctl, "transaction_type", transaction_type)
    begins = ctl.filter(pc.and_(is_type, _eq(ctl, "record_type", BEGIN)))
    terminal = ctl.filter(pc.is_in(ctl["record_type"], pa.array([COMPLETED, FAILED])))
    open_mask = pc.invert(pc.is_in(begins["txn_id"], terminal["txn_id"]))
    ids: list[str] = begins.filter(open_mask)["txn_id"].to_pylist()
    return ids


def task_states(ctl: pa.Table) -> list[dict[str, Any]]:
    """The latest state of every post-commit task (vectorised, then one dict per task)."""
    rows = ctl.filter(pc.is_in(ctl["record_type"], pa.array(list(TASK_STATES))))
    if rows.num_rows == 0:
        return []
    rows = rows.sort_by([("timestamp", "ascending")])
    keys = pc.binary_join_element_wise(
        pc.cast(rows["parent_txn_seq"], pa.string()),
        pc.cast(rows["execution_seq"], pa.string()),
        ":",
    )
    idx = pa.table({"k": keys, "i": pa.array(range(rows.num_rows))})
    last = idx.group_by("k").aggregate([("i", "max")])["i_max"]
    latest: list[dict[str, Any]] = rows.take(last).to_pylist()
    return latest


def unfinished_tasks(ctl: pa.Table) -> list[dict[str, Any]]:
    """Tasks whose latest record is pending or started, with factory and attempt filled."""
    states = [s for s in task_states(ctl) if s["record_type"] in (PC_PENDING, PC_STARTED)]
    return _fill_tasks(ctl, states)


def failed_tasks(ctl: pa.Table) -> list[dict[str, Any]]:
    return _fill_tasks(ctl, [s for s in task_states(ctl) if s["record_type"] == PC_FAILED])


def _fill_tasks(ctl: pa.Table, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not states:
        return []
    parents = pa.array(sorted({s["parent_txn_seq"] for s in states}), pa.int64())
    rel = ctl.filter(pc.fill_null(pc.is_in(ctl["parent_txn_seq"], parents), False)).to_pylist()
    out = []
    for s in states:
        key = (s["parent_txn_seq"], s["execution_seq"])
        mine = [
            r
            for r in rel
            if (r["parent_txn_seq"], r["execution_seq"]) == key
            and r["transaction_type"] == POST_COMMIT
            and r["record_type"] in TASK_STATES
        ]
        pending = next((r for r in mine if r["record_type"] == PC_PENDING), s)
        attempts = [r["attempt"] for r in mine if r["record_type"] == PC_STARTED and r["attempt"]]
        out.append(
            {
                "parent_txn_seq": key[0],
                "execution_seq": key[1],
                "factory_name": pending["factory_name"] or s["factory_name"],
                "config_path": pending["config_path"] or s["config_path"],
                "state": TASK_STATES[s["record_type"]],
                "attempt": max(attempts) if attempts else (s["attempt"] or 1),
                "txn_id": pending["txn_id"],
            }
        )
    return sorted(out, key=lambda t: (t["parent_txn_seq"], t["execution_seq"]))


def summarize(ctl_rows: list[dict[str, Any]], txn_id: str) -> dict[str, Any]:
    """One user transaction as `control recent` shows it."""
    mine = [r for r in ctl_rows if r["txn_id"] == txn_id]
    begin = next(r for r in mine if r["record_type"] == BEGIN)
    seq = begin["txn_seq"]
    terminal = next(
        (
            r
            for r in mine
            if r["record_type"] in (COMPLETED, FAILED)
            and r["transaction_type"] == begin["transaction_type"]
        ),
        None,
    )
    committed = any(r["record_type"] == DATA_COMMITTED for r in mine)
    if terminal is not None:
        status = "completed" if terminal["record_type"] == COMPLETED else "failed"
    else:
        status = "committed" if committed else "incomplete"
    try:
        command = " ".join(json.loads(begin["cli_args"] or "[]"))
    except ValueError:
        command = begin["cli_args"] or ""
    tasks: dict[int, dict[str, Any]] = {}
    for r in mine:
        if r["transaction_type"] != POST_COMMIT or r["record_type"] not in TASK_STATES:
            continue
        t = tasks.setdefault(
            r["execution_seq"],
            {
                "execution_seq": r["execution_seq"],
                "factory_name": None,
                "config_path": None,
                "status": "pending",
                "attempt": 1,
                "duration_ms": None,
                "error_message": None,
                "txn_seq": None,
                "failed_attempts": [],
            },
        )
        t["factory_name"] = t["factory_name"] or r["factory_name"]
        t["config_path"] = t["config_path"] or r["config_path"]
        t["status"] = TASK_STATES[r["record_type"]]
        if r["attempt"]:
            t["attempt"] = max(t["attempt"], r["attempt"])
        if r["record_type"] in (PC_COMPLETED, PC_FAILED):
            t["duration_ms"] = r["duration_ms"]
            t["error_message"] = r["error_message"]
        if r["record_type"] == PC_FAILED:
            t["failed_attempts"].append(
                {
                    "attempt": r["attempt"] or 1,
                    "duration_ms": r["duration_ms"],
                    "error_message": r["error_message"],
                }
            )
        if r["record_type"] == PC_STARTED:
            t["duration_ms"] = None
            t["error_message"] = None
    for r in ctl_rows:  # the tasks' own transactions, linked by (parent, execution_seq)
        if (
            r["transaction_type"] == POST_COMMIT
            and r["record_type"] == DATA_COMMITTED
            and r["parent_txn_seq"] == seq
            and r["execution_seq"] in tasks
        ):
            tasks[r["execution_seq"]]["txn_seq"] = r["txn_seq"]
    return {
        "txn_seq": seq,
        "txn_id": txn_id,
        "transaction_type": begin["transaction_type"],
        "status": status,
        "command": command,
        "started": iso(begin["timestamp"]),
        "ended": iso(terminal["timestamp"]) if terminal else None,
        "duration_ms": terminal["duration_ms"] if terminal else None,
        "error_message": terminal["error_message"] if terminal else None,
        "post_commit": [tasks[k] for k in sorted(tasks)],
    }


def related_rows(ctl: pa.Table, min_seq: int) -> list[dict[str, Any]]:
    mask = pc.or_(
        pc.fill_null(pc.greater_equal(ctl["txn_seq"], min_seq), False),
        pc.fill_null(pc.greater_equal(ctl["parent_txn_seq"], min_seq), False),
    )
    rows: list[dict[str, Any]] = ctl.filter(mask).to_pylist()
    return rows


def recent(ctl: pa.Table, limit: int = 20, load: Any = None) -> list[dict[str, Any]]:
    """The newest `limit` user write transactions, newest last."""
    begins = ctl.filter(
        pc.and_(_eq(ctl, "record_type", BEGIN), _eq(ctl, "transaction_type", WRITE))
    )
    if begins.num_rows == 0 or limit <= 0:
        return []
    # Only the newest `limit` begins matter: select them rather than sort them all.
    tail = begins.take(
        pc.select_k_unstable(
            begins, k=min(limit, begins.num_rows), sort_keys=[("timestamp", "descending")]
        )
    )
    min_seq = int(pc.min(tail["txn_seq"]).as_py())
    # Every row of those writes and their tasks has txn_seq >= min_seq.
    if load is None:
        rows = related_rows(ctl, min_seq)
    else:
        rows = load(min_seq).to_pylist()
    ts_of = {
        r["txn_id"]: r["timestamp"]
        for r in rows
        if r["record_type"] == BEGIN and r["transaction_type"] == WRITE
    }
    ids = sorted(ts_of, key=lambda i: ts_of[i])[-limit:]
    return [summarize(rows, i) for i in ids]


# Read to find where recent history starts: no ids or argv, so cheap at any length.
RECENT_COLUMNS = ["txn_seq", "record_type", "transaction_type", "timestamp"]
# Read to tell whether anything may be unfinished, by counting record types.
COUNT_COLUMNS = ["record_type", "transaction_type", "attempt"]


def nothing_unfinished(control: ControlTable) -> bool:
    """True when the record-type counts prove there is nothing for recover to do; reads
    three small columns only (the idle case of `recover` and `control incomplete`)."""
    return not maybe_unfinished(control.read_all(columns=COUNT_COLUMNS))


def maybe_unfinished(counts: pa.Table) -> bool:
    """False only when nothing can be unfinished, judged by counts alone.

    Each begin gets exactly one terminal row; each task has at most one started row
    without a terminal, and exactly one started row of attempt 1 once it ever ran. So equal
    counts mean every transaction ended and every task that was queued has run and ended.
    """
    rt, tt = counts["record_type"], counts["transaction_type"]

    def n(mask: Any) -> int:
        return int(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)

    for ttype in (WRITE, POST_COMMIT):
        of_type = pc.equal(tt, ttype)
        begun = n(pc.and_(of_type, pc.equal(rt, BEGIN)))
        ended = n(pc.and_(of_type, pc.is_in(rt, pa.array([COMPLETED, FAILED]))))
        if begun != ended:
            return True
    started = n(pc.equal(rt, PC_STARTED))
    if started != n(pc.is_in(rt, pa.array([PC_COMPLETED, PC_FAILED]))):
        return True
    first_runs = n(pc.and_(pc.equal(rt, PC_STARTED), pc.equal(counts["attempt"], 1)))
    return n(pc.equal(rt, PC_PENDING)) != first_runs


def detail(ctl: pa.Table, txn_seq: int) -> dict[str, Any] | None:
    mask = pc.or_(_eq(ctl, "txn_seq", txn_seq), _eq(ctl, "parent_txn_seq", txn_seq))
    records = ctl.filter(mask).sort_by([("timestamp", "ascending")]).to_pylist()
    if not records:
        return None
    user_ids = [
        r["txn_id"] for r in records if r["record_type"] == BEGIN and r["txn_seq"] == txn_seq
    ]
    summaries = [summarize(records, i) for i in user_ids]
    head = summaries[-1] if summaries else {"txn_seq": txn_seq}
    out = dict(head)
    out["transactions"] = summaries
    out["records"] = [
        {k: (iso(v) if k == "timestamp" else v) for k, v in r.items()} for r in records
    ]
    return out


def incomplete(ctl: pa.Table) -> dict[str, Any]:
    """What a crash left unfinished: open transactions (with their tasks) and open tasks."""
    tasks = unfinished_tasks(ctl)
    open_ids = unfinished_txn_ids(ctl, WRITE) + unfinished_txn_ids(ctl, POST_COMMIT)
    ids = list(dict.fromkeys(open_ids + [t["txn_id"] for t in tasks]))
    txns = []
    if ids:
        seqs = ctl.filter(pc.is_in(ctl["txn_id"], pa.array(ids)))["txn_seq"]
        rows = related_rows(ctl, int(pc.min(seqs).as_py()))
        txns = [summarize(rows, i) for i in ids]
    return {
        "transactions": txns,
        "tasks": [
            {
                k: t[k]
                for k in (
                    "parent_txn_seq",
                    "execution_seq",
                    "factory_name",
                    "config_path",
                    "state",
                    "attempt",
                )
            }
            for t in tasks
        ],
    }
