"""The storage layer alone, the way `Steward.transaction` drives it, minus the steward.

No write lock, no control table, no post-commit discovery: refresh the data table, take
the next txn_seq, stage through a `WriteTxn`, commit the rows as one Delta version, then the
data table's automatic upkeep (compaction/checkpoint), which belongs to the storage layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from duckpond import nodes
from duckpond.pond import Pond
from duckpond.storage.staging import StagedTxn
from duckpond.txn import WriteTxn


def storage_write(pond: Pond, body: Callable[[WriteTxn], Any], args: list[str]) -> int | None:
    data = pond.data
    data.refresh()
    seq = data.last_txn_seq() + 1
    txn_id = nodes.uuid7()
    staged = StagedTxn(pond.steward.fs, seq)
    info = {"txn_seq": seq, "txn_id": txn_id, "args": args, "vars": {}}
    body(WriteTxn(staged, info))
    rows = staged.rows()
    if not rows:
        return None
    version = data.commit(rows, info)
    data.auto_maintain({r.part_id for r in rows})
    return version
