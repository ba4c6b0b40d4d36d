"""The steward's transactions and post-commit phase, through the library API (SPEC §4-6)."""

from __future__ import annotations

import json

import pytest
from steward_helpers import (
    control_rows,
    control_version,
    data_version,
    make_pond,
    mknod,
    pond_txns,
    rows_of_seq,
    task_rows,
    write_file,
)

from duckpond.errors import PondError
from duckpond.pond import Pond

LIFECYCLE = [
    ("begin", None),
    ("data_committed", None),
    ("post_commit_pending", 1),
    ("post_commit_pending", 2),
    ("post_commit_started", 1),
    ("post_commit_completed", 1),
    ("post_commit_started", 2),
    ("post_commit_completed", 2),
    ("completed", None),
]


def test_two_factories_lifecycle_rows_in_order(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-validate", {"message": "v"}), ("20-notify", {"message": "n"})])
    seq = write_file(pond, "/data/x.txt", b"hello", args=["pond", "copy", "x"])
    rows = control_rows(root)
    mine = rows_of_seq(rows, seq)
    assert [(r["record_type"], r["execution_seq"]) for r in mine] == LIFECYCLE
    txn_ids = {r["txn_id"] for r in mine}
    assert len(txn_ids) == 1

    begin, committed, p1, p2, s1, c1, s2, c2, done = mine
    assert begin["transaction_type"] == "write"
    assert json.loads(begin["cli_args"]) == ["pond", "copy", "x"]
    assert begin["parent_txn_seq"] is None and begin["execution_seq"] is None
    # data_fs_version is the Delta version of the data table that holds the write.
    assert committed["data_fs_version"] is not None
    versions = {p["txn_seq"]: v for v, p in Pond.open(root).data.pond_txns()}
    assert committed["data_fs_version"] == versions[seq]
    for r, (name, path) in (
        (p1, ("test-executor", "/etc/system.d/10-validate")),
        (p2, ("test-executor", "/etc/system.d/20-notify")),
    ):
        assert (r["factory_name"], r["config_path"]) == (name, path)
    for r in (p1, p2, s1, c1, s2, c2):
        assert r["transaction_type"] == "post_commit"
        assert r["txn_seq"] == r["parent_txn_seq"] == seq
        assert r["attempt"] == 1
    for r in (c1, c2, done):
        assert r["duration_ms"] is not None and r["duration_ms"] >= 0
    assert done["transaction_type"] == "write"
    assert done["error_message"] is None
    # timestamps are in recorded order
    ts = [r["timestamp"] for r in mine]
    assert ts == sorted(ts)
    # the tasks wrote nothing: no transaction of their own
    assert Pond.open(root).data.last_txn_seq() == seq


def test_noop_write_is_begin_completed_without_data_version(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-a", {"message": "a"})])
    with pond.transaction(["pond", "mkdir", "-p", "/d"]) as tx:
        tx.mkdir("/d", parents=True)
    before = data_version(root)
    with pond.transaction(["pond", "mkdir", "-p", "/d"]) as tx:
        tx.mkdir("/d", parents=True)
        seq = tx.txn_seq
    assert data_version(root) == before
    mine = rows_of_seq(control_rows(root), seq)
    assert [r["record_type"] for r in mine] == ["begin", "completed"]
    assert all(r["data_fs_version"] is None for r in mine)
    # no post-commit task ran for it
    assert not [r for r in control_rows(root) if r["parent_txn_seq"] == seq]


def test_failed_write_is_begin_failed_and_data_untouched(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-a", {"message": "a"})])
    before = data_version(root)
    last = pond.data.last_txn_seq()
    with pytest.raises(PondError):
        with pond.transaction(["pond", "copy", "bad"]) as tx:
            tx.write_bytes("/fresh/file.txt", b"staged, never committed", parents=True)
            tx.mkdir("/no/such/parent")  # fails: no -p
    assert data_version(root) == before
    assert not Pond.open(root).lookup("/fresh")
    seq = last + 1
    mine = rows_of_seq(control_rows(root), seq)
    assert [r["record_type"] for r in mine] == ["begin", "failed"]
    assert "/no/such" in mine[1]["error_message"]
    assert mine[1]["duration_ms"] is not None
    assert not [r for r in control_rows(root) if r["parent_txn_seq"] == seq]
    # the sequence did not move: the next write takes the same seq
    assert write_file(pond, "/ok", b"1") == seq


def test_discovery_name_order_and_non_factories_skipped(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    # created out of order; a plain file and a directory sit beside them
    with pond.transaction(["setup"]) as tx:
        tx.mkdir("/etc/system.d/05-subdir", parents=True)
        tx.write_bytes("/etc/system.d/00-readme", b"not a factory")
    for name in ("30-c", "10-a", "20-b"):
        mknod(pond, f"/etc/system.d/{name}", {"message": name})
    seq = write_file(pond, "/x", b"x")
    pending = [r for r in control_rows(root) if r["record_type"] == "post_commit_pending"]
    mine = [(r["execution_seq"], r["config_path"]) for r in pending if r["txn_seq"] == seq]
    assert mine == [(1, "/etc/system.d/10-a"), (2, "/etc/system.d/20-b"), (3, "/etc/system.d/30-c")]


def test_data_factory_under_system_d_is_skipped_not_a_failing_job(tmp_path, caplog):
    root = tmp_path / "pond"
    pond = make_pond(root)
    synthetic = {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-01T03:00:00Z",
        "interval": "1h",
        "points": [{"name": "v", "components": [{"type": "line", "slope": 1}]}],
    }
    mknod(pond, "/etc/system.d/05-derived", synthetic, factory="synthetic-timeseries")
    mknod(pond, "/etc/system.d/10-a", {"message": "a"})
    with caplog.at_level("WARNING", logger="pond"):
        seq = write_file(pond, "/x", b"x")
    pending = [r for r in control_rows(root) if r["record_type"] == "post_commit_pending"]
    assert [r["config_path"] for r in pending if r["txn_seq"] == seq] == ["/etc/system.d/10-a"]
    assert not [r for r in control_rows(root) if r["record_type"] == "post_commit_failed"]
    assert "05-derived: synthetic-timeseries is a data factory" in caplog.text
    # the node itself still reads as a derived series
    counted = pond.sql("SELECT count(*) AS n FROM source", path="/etc/system.d/05-derived")
    assert counted.to_pylist() == [{"n": 4}]


def test_factory_created_by_a_write_runs_in_its_own_post_commit(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(pond, "/etc/system.d/10-first", {"message": "hi", "write_path": "/out/first"})
    rows = control_rows(root)
    seq = next(r["txn_seq"] for r in rows if r["record_type"] == "begin" and r["txn_seq"] > 1)
    assert task_rows(rows, seq, 1) == [
        "post_commit_pending",
        "post_commit_started",
        "post_commit_completed",
    ]
    assert Pond.open(root).read_bytes("/out/first") == b"hi"


def test_task_writes_under_own_seq_with_parent_link(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-w", {"message": "written", "write_path": "/out/w.txt"})])
    seq = write_file(pond, "/in.txt", b"data")
    rows = control_rows(root)
    own = [
        r
        for r in rows
        if r["transaction_type"] == "post_commit"
        and r["record_type"] in ("begin", "data_committed", "completed")
        and r["parent_txn_seq"] == seq
    ]
    assert [r["record_type"] for r in own] == ["begin", "data_committed", "completed"]
    task_seq = own[0]["txn_seq"]
    assert task_seq == seq + 1
    assert all(r["execution_seq"] == 1 and r["attempt"] == 1 for r in own)
    assert own[1]["data_fs_version"] is not None
    # the task's own rows sit between its started and completed rows
    types = [r["record_type"] for r in rows if r["parent_txn_seq"] == seq]
    assert types == [
        "post_commit_pending",
        "post_commit_started",
        "begin",
        "data_committed",
        "completed",
        "post_commit_completed",
    ]
    p = next(p for p in pond_txns(root) if p["txn_seq"] == task_seq)
    assert p["parent_txn_seq"] == seq and p["execution_seq"] == 1
    pond = Pond.open(root)
    [version] = [v for v in pond.versions("/out/w.txt") if v.txn_seq == task_seq]
    assert pond.read_bytes("/out/w.txt") == b"written"
    assert version.version == len(pond.versions("/out/w.txt"))


def test_failing_task_in_the_middle_of_three(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    # mknod them in an order where the failing one never runs before the test write
    mknod(pond, "/etc/system.d/10-a", {"message": "a", "write_path": "/out/a"})
    mknod(pond, "/etc/system.d/30-c", {"message": "c", "write_path": "/out/c"})
    mknod(
        pond,
        "/etc/system.d/20-b",
        {"message": "b", "write_path": "/out/b-should-not-exist", "fail": True},
    )
    seq = write_file(pond, "/trigger", b"t")
    rows = control_rows(root)
    assert task_rows(rows, seq, 1)[-1] == "post_commit_completed"
    assert task_rows(rows, seq, 2) == [
        "post_commit_pending",
        "post_commit_started",
        "post_commit_failed",
    ]
    assert task_rows(rows, seq, 3)[-1] == "post_commit_completed"
    failed = next(
        r for r in rows if r["record_type"] == "post_commit_failed" and r["txn_seq"] == seq
    )
    assert "intentionally failed" in failed["error_message"]
    assert failed["duration_ms"] is not None
    assert failed["factory_name"] == "test-executor"
    # the write itself completed
    assert rows_of_seq(rows, seq)[-1]["record_type"] == "completed"
    # the failing task's writes were rolled back; the others' committed
    pond = Pond.open(root)
    assert pond.lookup("/out/b-should-not-exist") is None
    assert [v.txn_seq for v in pond.versions("/out/c")][-1] > seq
    assert not any(
        p.get("execution_seq") == 2 and p.get("parent_txn_seq") == seq for p in pond_txns(root)
    )


def test_no_recursion_from_task_writes_under_system_d(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(
        pond,
        "/etc/system.d/10-loop",
        {"message": "x", "write_path": "/etc/system.d/99-written-by-task"},
    )
    seq = write_file(pond, "/x", b"x")
    rows = control_rows(root)
    task_seqs = {
        r["txn_seq"]
        for r in rows
        if r["transaction_type"] == "post_commit" and r["record_type"] == "begin"
    }
    assert task_seqs  # the task did write
    # nothing was ever triggered by a task's own transaction
    parents = {r["parent_txn_seq"] for r in rows if r["record_type"] == "post_commit_pending"}
    assert not parents & task_seqs
    # the write ran exactly one task (the file the task wrote is no factory: skipped)
    assert [
        r["execution_seq"]
        for r in rows
        if r["record_type"] == "post_commit_pending" and r["txn_seq"] == seq
    ] == [1]
    assert Pond.open(root).data.last_txn_seq() == seq + 1


def test_tasks_not_triggered_by_reads_noops_or_failures(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-a", {"message": "a", "write_path": "/out/a"})])
    write_file(pond, "/x", b"x")
    started = control_version(root), data_version(root)
    pond = Pond.open(root)
    pond.list()
    pond.read_bytes("/x")
    pond.describe("/x")
    pond.control_recent()
    pond.control_incomplete()
    pond.control_sql("SELECT count(*) FROM control_table")
    assert (control_version(root), data_version(root)) == started
    with pond.transaction(["noop"]) as tx:
        tx.mkdir("/out", parents=True)
    with pytest.raises(PondError):
        with pond.transaction(["bad"]) as tx:
            tx.write_bytes("/x/y", b"x is a file")
    rows = control_rows(root)
    pending = {r["txn_seq"] for r in rows if r["record_type"] == "post_commit_pending"}
    quiet = {r["txn_seq"] for r in rows if r["record_type"] == "begin"} - pending
    assert len(quiet) >= 2  # init, the no-op and the failed write ran no task
    assert data_version(root) == started[1]


def test_task_sees_the_triggering_write(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(
        pond,
        "/etc/system.d/10-check",
        {"file_to_read": "/incoming/today.txt", "expected_content": "fresh data"},
    )
    seq = write_file(pond, "/incoming/today.txt", b"fresh data")
    rows = control_rows(root)
    assert task_rows(rows, seq, 1)[-1] == "post_commit_completed"
    # a different content makes the check fail
    seq2 = write_file(pond, "/incoming/today.txt", b"stale")
    rows = control_rows(root)
    assert task_rows(rows, seq2, 1)[-1] == "post_commit_failed"
