"""The data log is pruned behind checkpoints, but no transaction's history is lost.

Entries are kept for `delta.logRetentionDuration` (the retention window, see
tests/test_delta_citizen.py): these tables get 0 seconds, so the prune behind the previous
checkpoint is what is tested."""

from __future__ import annotations

import shutil
from pathlib import Path

from deltalake import DeltaTable

from duckpond import Pond
from duckpond.steward.rebuild import rebuild_control


def create_without_log_retention(root: Path) -> Pond:
    Pond.create(root)
    for name in ("data", "control"):
        DeltaTable(str(root / name)).alter.set_table_properties(
            {"delta.logRetentionDuration": "interval 0 seconds"}
        )
    return Pond.open(root)


def test_pruned_log_keeps_history_for_recovery_and_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond = create_without_log_retention(root)
    writes = 260  # past two automatic checkpoints, so one prune has run
    for i in range(writes):
        with pond.transaction(["pond", "w", str(i)]) as tx:
            tx.write_bytes(f"/f{i % 20}", b"v%d" % i)
    log_entries = list((root / "data" / "_delta_log").glob("*.json"))
    assert len(log_entries) < writes  # the log was pruned
    assert list((root / "data" / "_pond_archive").glob("*.parquet"))

    history = Pond.open(root).data.commit_history()
    seqs = sorted(p["txn_seq"] for _, _, p in history)
    assert seqs == list(range(1, writes + 2))  # init + every write, none lost

    reopened = Pond.open(root)
    assert reopened.read_bytes("/f3", version=1) == b"v3"  # node versions stay readable
    assert len(reopened.versions("/f3")) == writes // 20

    shutil.rmtree(root / "control")
    report = rebuild_control(root)
    assert report["transactions"] == writes + 1
    rebuilt = Pond.open(root)
    assert len(rebuilt.control_recent(limit=writes + 10)) == writes + 1
    assert not rebuilt.recover()


def test_a_handle_left_behind_pruned_entries_catches_up(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    create_without_log_retention(root)
    early = Pond.open(root)
    assert early.list() == []
    writer = Pond.open(root)
    for i in range(260):  # the log behind `early`'s version is pruned meanwhile
        with writer.transaction(["pond", "w", str(i)]) as tx:
            tx.write_bytes(f"/f{i % 10}", b"v%d" % i)
    assert not (root / "data" / "_delta_log" / f"{1:020d}.json").exists()
    early.refresh()
    assert early.read_bytes("/f9") == b"v259"
    assert len(early.list()) == 10
