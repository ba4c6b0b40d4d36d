"""`pond control` (recent / detail / incomplete / --sql) through the real CLI (SPEC §5, §7),
including the design note's three recovery queries, run verbatim."""

from __future__ import annotations

import datetime as dt

import pytest
from steward_helpers import (
    INCOMPLETE_TASK_KEYS,
    Q_PENDING_NEVER_STARTED,
    Q_RECENT_FAILURES,
    Q_STARTED_NEVER_FINISHED,
    RECENT_KEYS,
    SPEC_CONTROL_COLUMNS,
    TASK_KEYS,
    control_rows,
    control_version,
    make_pond,
    mknod,
    pond_cli,
    pond_json,
    write_file,
)

from duckpond.errors import PondError
from duckpond.pond import Pond

W, N, F = "/etc/system.d/10-w", "/etc/system.d/20-n", "/etc/system.d/30-fail"


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """A pond with: failed tasks, a task started but never finished and tasks pending but
    never started (a real SIGKILL inside the first task's transaction)."""
    root = tmp_path_factory.mktemp("control") / "pond"
    pond = make_pond(root, [("10-w", {"message": "w", "write_path": "/out/w"})])
    mknod(pond, N, {"message": "n"})
    mknod(pond, F, {"message": "f", "fail": True})
    a = write_file(pond, "/in/a", b"a", args=["pond", "copy", "a"])
    with pytest.raises(PondError):
        with pond.transaction(["pond", "copy", "broken"]) as tx:
            tx.mkdir("/no/parent")
    host = root.parent / "b.txt"
    host.write_bytes(b"b")
    b = Pond.open(root).data.last_txn_seq() + 1
    crash = pond_cli(
        root,
        "copy",
        f"host://{host}",
        "/in/b",
        env={"POND_CRASH_AT": "task_before_data_commit"},
        expect=None,
    )
    assert crash.returncode == -9
    return {"root": root, "a": a, "b": b}


def _seq_of_mknod(root, path):
    for r in control_rows(root):
        if r["record_type"] == "begin" and r["cli_args"] and path in r["cli_args"]:
            return r["txn_seq"]
    raise AssertionError(path)


def test_recovery_queries_verbatim(crashed):
    root, a, b = crashed["root"], crashed["a"], crashed["b"]
    mknod_f = _seq_of_mknod(root, F)
    q1 = pond_json(root, "control", "--sql", Q_PENDING_NEVER_STARTED, "--format", "json")
    assert sorted(q1, key=lambda r: r["execution_seq"]) == [
        {
            "parent_txn_seq": b,
            "execution_seq": 2,
            "factory_name": "test-executor",
            "config_path": N,
        },
        {
            "parent_txn_seq": b,
            "execution_seq": 3,
            "factory_name": "test-executor",
            "config_path": F,
        },
    ]
    q2 = pond_json(root, "control", "--sql", Q_STARTED_NEVER_FINISHED, "--format", "json")
    assert q2 == [{"parent_txn_seq": b, "execution_seq": 1}]
    q3 = pond_json(root, "control", "--sql", Q_RECENT_FAILURES, "--format", "json")
    assert [(r["parent_txn_seq"], r["execution_seq"]) for r in q3] == [(a, 3), (mknod_f, 3)]
    for r in q3:
        assert r["factory_name"] == "test-executor" and r["config_path"] == F
        assert "intentionally failed" in r["error_message"]
        assert r["duration_ms"] is not None
        assert set(r) == {
            "parent_txn_seq",
            "execution_seq",
            "factory_name",
            "config_path",
            "error_message",
            "duration_ms",
        }
    # the table view of the same query runs
    assert str(b) in pond_cli(root, "control", "--sql", Q_STARTED_NEVER_FINISHED).stdout


def test_incomplete_json_shape(crashed):
    root, b = crashed["root"], crashed["b"]
    inc = pond_json(root, "control", "incomplete", "--format", "json")
    assert set(inc) == {"transactions", "tasks"}
    for t in inc["tasks"]:
        assert set(t) == INCOMPLETE_TASK_KEYS
    got = [
        (t["parent_txn_seq"], t["execution_seq"], t["config_path"], t["state"], t["attempt"])
        for t in inc["tasks"]
    ]
    assert got == [
        (b, 1, "/etc/system.d/10-w", "started", 1),
        (b, 2, N, "pending", 1),
        (b, 3, F, "pending", 1),
    ]
    assert all(t["factory_name"] == "test-executor" for t in inc["tasks"])
    by_seq = {t["txn_seq"]: t for t in inc["transactions"]}
    for t in inc["transactions"]:
        assert set(t) == RECENT_KEYS
    parent = by_seq[b]
    assert parent["transaction_type"] == "write"
    assert parent["status"] == "committed"
    assert [p["status"] for p in parent["post_commit"]] == ["started", "pending", "pending"]
    # the first task's own transaction was interrupted before its data commit
    own = by_seq[b + 1]
    assert own["transaction_type"] == "post_commit" and own["status"] == "incomplete"
    assert set(by_seq) == {b, b + 1}
    # the table view runs
    out = pond_cli(root, "control", "incomplete").stdout
    assert str(b) in out
    # the site's status page reads both views at once (fewer reads): the same answers
    pond = Pond.open(root)
    recent, incomplete = pond.control_status(limit=3)
    assert incomplete.to_json() == inc
    assert recent == pond.control_recent(limit=3) and len(recent) == 3


def test_recent_json_shape_and_limit(crashed):
    root, a, b = crashed["root"], crashed["a"], crashed["b"]
    recent = pond_json(root, "control", "recent", "--limit", "100", "--format", "json")
    for t in recent:
        assert set(t) == RECENT_KEYS
        for p in t["post_commit"]:
            assert set(p) == TASK_KEYS
    seqs = [t["txn_seq"] for t in recent]
    # user writes only, newest last; tasks' own transactions are nested, not listed
    assert seqs == sorted(seqs) and seqs[0] == 1
    assert all(t["transaction_type"] == "write" for t in recent)
    by_seq = {}
    for t in recent:
        by_seq.setdefault(t["txn_seq"], []).append(t)
    [ta] = by_seq[a]
    assert ta["status"] == "completed" and ta["command"] == "pond copy a"
    assert [p["status"] for p in ta["post_commit"]] == ["completed", "completed", "failed"]
    assert ta["post_commit"][0]["txn_seq"] == a + 1  # 10-w wrote under its own seq
    assert ta["post_commit"][1]["txn_seq"] is None  # 20-n wrote nothing
    assert "intentionally failed" in ta["post_commit"][2]["error_message"]
    for ts in (ta["started"], ta["ended"]):
        assert dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).tzinfo is not None
    assert ta["duration_ms"] >= 0
    # the failed write (same seq as a later write: it never committed)
    failed = [t for ts in by_seq.values() for t in ts if t["status"] == "failed"]
    assert [t["command"] for t in failed] == ["pond copy broken"]
    assert "/no" in failed[0]["error_message"]
    # the crashed write reused the failed write's seq (txn_seq = last committed + 1)
    assert [t["status"] for t in by_seq[b]] == ["failed", "committed"]
    tb = by_seq[b][1]
    assert tb["status"] == "committed" and tb["ended"] is None
    # --limit, on the group and on `recent`
    two = pond_json(root, "control", "--limit", "2", "--format", "json")
    assert [t["txn_seq"] for t in two] == seqs[-2:]
    one = pond_json(root, "control", "recent", "--limit", "1", "--format", "json")
    assert [t["txn_seq"] for t in one] == [b]
    assert pond_json(root, "control", "--limit", "0", "--format", "json") == []
    # the table view runs and shows the newest last
    table = pond_cli(root, "control").stdout
    assert "pond copy a" in table and table.rfind(str(b)) > table.rfind("pond copy a")


def test_detail_json_shape(crashed):
    root, a = crashed["root"], crashed["a"]
    d = pond_json(root, "control", "detail", "--txn-seq", str(a), "--format", "json")
    assert d["txn_seq"] == a
    recs = d["records"]
    sql_cols = set(
        pond_json(
            root, "control", "--sql", "SELECT * FROM control_table LIMIT 1", "--format", "json"
        )[0]
    )
    assert SPEC_CONTROL_COLUMNS <= sql_cols
    for r in recs:
        assert set(r) == sql_cols  # all columns
    own = [(r["record_type"], r["execution_seq"]) for r in recs if r["txn_seq"] == a]
    assert own == [
        ("begin", None),
        ("data_committed", None),
        ("post_commit_pending", 1),
        ("post_commit_pending", 2),
        ("post_commit_pending", 3),
        ("post_commit_started", 1),
        ("post_commit_completed", 1),
        ("post_commit_started", 2),
        ("post_commit_completed", 2),
        ("post_commit_started", 3),
        ("post_commit_failed", 3),
        ("completed", None),
    ]
    # the first task's own transaction is part of the detail, in recorded order
    task_txn = [r["record_type"] for r in recs if r["txn_seq"] == a + 1]
    assert task_txn == ["begin", "data_committed", "completed"]
    ts = [r["timestamp"] for r in recs]
    assert ts == sorted(ts) and all(t.endswith("Z") for t in ts)
    rows = pond_json(
        root,
        "control",
        "--sql",
        f"SELECT * FROM control_table WHERE txn_seq = {a}",
        "--format",
        "json",
    )
    assert len(rows) == len(own)
    for r in rows:  # timestamps as ISO 8601 strings
        assert dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).year >= 2024
    assert pond_cli(root, "control", "detail", "--txn-seq", str(a)).stdout.count("post_commit") >= 3
    missing = pond_cli(root, "control", "detail", "--txn-seq", "9999", expect=1)
    assert missing.stderr.startswith("error:")


def test_control_reads_write_nothing_and_sql_is_read_only(crashed):
    root = crashed["root"]
    before = control_version(root)
    pond_cli(root, "control", "--sql", "SELECT count(*) AS n FROM control_table")
    for q in (
        "DELETE FROM control_table",
        "DROP TABLE control_table",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO control_table SELECT * FROM control_table",
    ):
        proc = pond_cli(root, "control", "--sql", q, expect=1)
        assert proc.stderr.startswith("error:")
    assert control_version(root) == before


def test_user_command_warns_on_failed_task_and_exits_0(tmp_path):
    root = tmp_path / "pond"
    make_pond(
        root,
        [
            ("10-ok", {"message": "fine"}),
            ("20-boom", {"message": "kaput", "fail": True}),
            ("30-ok", {"message": "fine too"}),
        ],
    )
    with Pond.open(root).transaction(["setup"]) as tx:
        tx.write_bytes("/etc/system.d/00-readme", b"not a factory")
    host = tmp_path / "x.txt"
    host.write_text("x")
    proc = pond_cli(root, "copy", f"host://{host}", "/x.txt")
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 2, proc.stderr
    assert "/etc/system.d/00-readme" in warnings[0] and "not a factory" in warnings[0]
    assert "/etc/system.d/20-boom" in warnings[1] and "intentionally failed" in warnings[1]
    assert not any("10-ok" in w or "30-ok" in w for w in warnings)
    assert proc.stdout == ""
    assert Pond.open(root).read_bytes("/x.txt") == b"x"
