"""`pond rebuild-control`: reconstruct the control table from the data table's history.

Every data commit carries `pond_txn` (seq, id, argv, vars, and for a post-commit task its
parent and execution_seq), so each committed transaction and each task that wrote data can
be recorded again with the same identity. What left no data commit (failed or no-op writes,
tasks that wrote nothing, durations) cannot be recovered, and the report says so.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import AlreadyExistsError, NotFoundError
from ..lock import WriteLock
from ..storage.datatable import DataTable
from .control import (
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    PC_COMPLETED,
    PC_PENDING,
    PC_STARTED,
    POST_COMMIT,
    WRITE,
    ControlTable,
    Record,
)


def rebuild_control(root: Path, force: bool = False, wait: float = 0.0) -> dict[str, Any]:
    root = Path(root).absolute()
    if not DataTable.is_table(root / "data"):
        raise NotFoundError(f"no pond at {root}")
    messages: list[str] = []
    with WriteLock(root / "write.lock", wait):
        target = root / "control"
        if target.exists():
            if not force:
                raise AlreadyExistsError(
                    f"{target} exists; use --force to move it aside and rebuild"
                )
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = root / f"control.bak-{stamp}"
            n = 1
            while aside.exists():  # never move into (or over) an earlier backup
                n += 1
                aside = root / f"control.bak-{stamp}-{n}"
            shutil.move(str(target), str(aside))
            messages.append(f"moved the old control table to {aside}")
        data = DataTable.open(root / "data")
        try:
            identity = json.loads(data.description() or "{}").get("pond", {})
        except ValueError:
            identity = {}
        commits = sorted(data.commit_history())
        records = _lifecycle_order(commits)
        oldest = min((v for v, _, _ in commits), default=0)
        # The first data commit (init, txn_seq 1) is Delta version 1; a later oldest means
        # entries were lost without being archived.
        oldest = 0 if oldest <= 1 else oldest
        control = ControlTable.create(target, identity)
        if records:
            control.append(records)
        seqs = sorted(p["txn_seq"] for _, _, p in commits)
        messages.append(f"rebuilt {len(commits)} committed transaction(s) into {target}")
        if oldest > 0:
            messages.append(
                f"data log before Delta version {oldest} was cleaned up: transactions "
                "committed before it are not in the rebuilt table"
            )
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs)) if seqs else []
        if missing:
            messages.append(f"no data commit for txn_seq {_ranges(missing)}")
        messages.append(
            "not recoverable from data: failed and no-op writes, post-commit tasks that wrote "
            "nothing, task failures, durations"
        )
    return {"transactions": len(commits), "messages": messages}


def _lifecycle_order(commits: list[tuple[int, int, dict[str, Any]]]) -> list[Record]:
    """Each write's rows with its tasks' rows inside them, in the SPEC §5 order (begin,
    data_committed, every pending, each task's rows, completed), timestamps strictly rising."""
    groups: list[list[Record]] = []
    writes: dict[int, list[Record]] = {}
    for version, ts_ms, p in commits:
        recs = _records_for(version, ts_ms * 1000, p)
        parent = p.get("parent_txn_seq")
        host = writes.get(int(parent)) if parent is not None else None
        if host is None:  # a user write, or a task whose parent's commit is gone
            groups.append(recs)
            if parent is None:
                writes[int(p["txn_seq"])] = recs
            continue
        at = 2 + sum(r.record_type == PC_PENDING for r in host)
        host[at:at] = [r for r in recs if r.record_type == PC_PENDING]
        host[-1:-1] = [r for r in recs if r.record_type != PC_PENDING]
    out = [r for recs in groups for r in recs]
    last = 0
    for r in out:
        r.timestamp = last = max(r.timestamp, last + 1)
    return out


def _records_for(version: int, ts: int, p: dict[str, Any]) -> list[Record]:
    seq, txn_id = int(p["txn_seq"]), str(p["txn_id"])
    args = json.dumps(p.get("args", []))
    vars = json.dumps(p.get("vars", {}), sort_keys=True)
    parent = p.get("parent_txn_seq")
    if parent is None:
        return [
            Record(seq, txn_id, BEGIN, WRITE, timestamp=ts, cli_args=args, vars=vars),
            Record(seq, txn_id, DATA_COMMITTED, WRITE, timestamp=ts + 1, data_fs_version=version),
            Record(seq, txn_id, COMPLETED, WRITE, timestamp=ts + 2),
        ]
    link = {
        "parent_txn_seq": int(parent),
        "execution_seq": p.get("execution_seq"),
        "attempt": p.get("attempt", 1),
    }
    task = {"factory_name": p.get("factory_name"), "config_path": p.get("config_path"), **link}
    parent_id = p.get("parent_txn_id") or txn_id
    return [
        Record(int(parent), parent_id, PC_PENDING, POST_COMMIT, timestamp=ts - 3, **task),
        Record(int(parent), parent_id, PC_STARTED, POST_COMMIT, timestamp=ts - 2, **task),
        Record(seq, txn_id, BEGIN, POST_COMMIT, timestamp=ts, cli_args=args, vars=vars, **link),
        Record(
            seq,
            txn_id,
            DATA_COMMITTED,
            POST_COMMIT,
            timestamp=ts + 1,
            data_fs_version=version,
            **link,
        ),
        Record(seq, txn_id, COMPLETED, POST_COMMIT, timestamp=ts + 2, **link),
        Record(int(parent), parent_id, PC_COMPLETED, POST_COMMIT, timestamp=ts + 3, **task),
    ]


def _ranges(values: list[int]) -> str:
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)
