"""The control table as the library reports it (`Pond.control_recent`, `control_detail`,
`control_incomplete`, `control_status`): summaries.py's rows turned into typed reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pyarrow as pa

from ..errors import NotFoundError
from ..reports import IncompleteReport, IncompleteTask, TxnDetail, TxnSummary
from ..storage.datatable import DataTable
from . import summaries
from .control import ControlTable

# The data table, opened only when a view needs it (most never do).
DataOpener = Callable[[], DataTable]


def recent(control: ControlTable, limit: int) -> list[TxnSummary]:
    state = control.read_all(columns=summaries.RECENT_COLUMNS, ordered=False)
    txns = summaries.recent(state, limit, load=lambda s: control.read_all(min_seq=s))
    return [TxnSummary.from_dict(t) for t in txns]


def detail(control: ControlTable, txn_seq: int) -> TxnDetail:
    d = summaries.detail(control.read_all(), txn_seq)
    if d is None:
        raise NotFoundError(f"no transaction with txn_seq {txn_seq}")
    txns = [TxnSummary.from_dict(t) for t in d["transactions"]]
    return TxnDetail(
        txn_seq=txn_seq,
        summary=txns[-1] if txns else None,
        transactions=txns,
        records=d["records"],
    )


def incomplete(control: ControlTable, data: DataOpener) -> IncompleteReport:
    if summaries.nothing_unfinished(control):
        return IncompleteReport([], [])
    return _incomplete(control.read_all(), data)


def status(
    control: ControlTable, data: DataOpener, limit: int
) -> tuple[list[TxnSummary], IncompleteReport]:
    """`recent` and `incomplete` together, reading the control table twice rather than
    three or four times: a few columns of every row decide both where recent history starts
    and whether anything may be unfinished; then all columns of the recent rows, or of every
    row when something may be unfinished."""
    head = control.read_all(
        columns=list(dict.fromkeys(summaries.RECENT_COLUMNS + summaries.COUNT_COLUMNS)),
        ordered=False,
    )
    if summaries.maybe_unfinished(head):
        full = control.read_all()
        txns = summaries.recent(full, limit)
        report = _incomplete(full, data)
    else:
        txns = summaries.recent(head, limit, load=lambda s: control.read_all(min_seq=s))
        report = IncompleteReport([], [])
    return [TxnSummary.from_dict(t) for t in txns], report


def _incomplete(ctl: pa.Table, data: DataOpener) -> IncompleteReport:
    report = summaries.incomplete(ctl)
    txns = [TxnSummary.from_dict(t) for t in report["transactions"]]
    # The control table may not know yet that a commit landed (a crash right after the
    # data commit): the data table's pond_txn metadata is the authority. A read only.
    if any(t.status == "incomplete" for t in txns):
        committed = {p.get("txn_id") for _, p in data().pond_txns()}
        txns = [
            replace(t, status="committed")
            if t.status == "incomplete" and t.txn_id in committed
            else t
            for t in txns
        ]
    tasks = [
        IncompleteTask(
            parent_txn_seq=int(t["parent_txn_seq"]),
            execution_seq=int(t["execution_seq"]),
            factory_name=t["factory_name"],
            config_path=t["config_path"],
            state=str(t["state"]),
            attempt=int(t["attempt"]),
        )
        for t in report["tasks"]
    ]
    return IncompleteReport(txns, tasks)
