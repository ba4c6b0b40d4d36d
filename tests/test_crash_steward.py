"""Real crashes (SIGKILL via POND_CRASH_AT, and an external kill) at every lifecycle phase,
then `pond control incomplete` and `pond recover` through the real CLI (SPEC §6).

After recovery the pond must equal the pond of the same run without a crash, every task must
be finished, and no task's writes may be applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter

import pytest
from steward_helpers import (
    CLI,
    cli_env,
    cli_snapshot,
    control_rows,
    control_version,
    latest_task_states,
    make_pond,
    pond_cli,
    pond_json,
    pond_txns,
    snapshot,
    task_rows,
    write_file,
    write_outcomes,
    yaml_file,
)

from duckpond.pond import Pond

A, B, C = "/etc/system.d/10-a", "/etc/system.d/20-b", "/etc/system.d/30-c"
FACTORIES = [
    ("10-a", {"message": "A", "write_path": "/out/a.txt"}),
    ("20-b", {"message": "B", "write_path": "/out/b.txt"}),
    ("30-c", {"message": "C"}),  # a task that writes nothing
]
PAYLOAD = b"the triggering write\n"


def _all_pending(s):
    return [(s, 1, A, "pending", 1), (s, 2, B, "pending", 1), (s, 3, C, "pending", 1)]


def _task1_started(s):
    return [(s, 1, A, "started", 1), (s, 2, B, "pending", 1), (s, 3, C, "pending", 1)]


# phase -> (open transactions as (seq offset, type, status), open tasks)
EXPECTED = {
    "before_data_commit": ({(0, "write", "incomplete")}, lambda s: []),
    # the data table holds the commit, so `incomplete` reports it as committed
    "after_data_commit": ({(0, "write", "committed")}, lambda s: []),
    "after_pending": ({(0, "write", "committed")}, _all_pending),
    "between_tasks": ({(0, "write", "committed")}, lambda s: _all_pending(s)[1:]),
    "before_completed": ({(0, "write", "committed")}, lambda s: []),
    "task_before_data_commit": (
        {(0, "write", "committed"), (1, "post_commit", "incomplete")},
        _task1_started,
    ),
    "task_after_data_commit": (
        {(0, "write", "committed"), (1, "post_commit", "committed")},
        _task1_started,
    ),
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The same run without a crash."""
    root = tmp_path_factory.mktemp("baseline") / "pond"
    pond = make_pond(root, FACTORIES)
    write_file(pond, "/x.txt", PAYLOAD)
    return snapshot(root)


def _check_finished(root):
    rows = control_rows(root)
    assert all(v is not None for v in write_outcomes(rows).values()), "a write is still open"
    states = latest_task_states(rows)
    assert states and all(s == "post_commit_completed" for s, _ in states.values())
    # every task wrote at most once per triggering write
    commits = Counter(
        (p["parent_txn_seq"], p["execution_seq"]) for p in pond_txns(root) if "parent_txn_seq" in p
    )
    assert commits and max(commits.values()) == 1
    return rows


@pytest.mark.parametrize("phase", list(EXPECTED))
def test_crash_at_phase_then_recover(tmp_path, baseline, phase):
    root = tmp_path / "pond"
    make_pond(root, FACTORIES)
    host = tmp_path / "x.txt"
    host.write_bytes(PAYLOAD)
    s = Pond.open(root).data.last_txn_seq() + 1
    crash = pond_cli(
        root, "copy", f"host://{host}", "/x.txt", env={"POND_CRASH_AT": phase}, expect=None
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr

    # 1. what the crash left unfinished, exactly
    inc = pond_json(root, "control", "incomplete", "--format", "json")
    want_txns, want_tasks = EXPECTED[phase]
    got_txns = {(t["txn_seq"] - s, t["transaction_type"], t["status"]) for t in inc["transactions"]}
    assert got_txns == want_txns
    got_tasks = [
        (t["parent_txn_seq"], t["execution_seq"], t["config_path"], t["state"], t["attempt"])
        for t in inc["tasks"]
    ]
    assert got_tasks == want_tasks(s)

    # 2. recover finishes it; a second recover does nothing
    report = pond_json(root, "recover", "--format", "json")
    assert report["transactions"] or report["tasks"]
    ran = {(t["parent_txn_seq"], t["execution_seq"]) for t in report["tasks"]}
    assert ran == {(t[0], t[1]) for t in want_tasks(s)} | (
        {(s, 1), (s, 2), (s, 3)} if phase == "after_data_commit" else set()
    )
    rows = control_rows(root)
    for t in report["tasks"]:  # the report names the attempt that was recorded
        recorded = [
            r["attempt"]
            for r in rows
            if (r["parent_txn_seq"], r["execution_seq"])
            == (t["parent_txn_seq"], t["execution_seq"])
            and r["record_type"] == "post_commit_completed"
        ]
        assert recorded == [t["attempt"]]
    v = control_version(root)
    assert pond_json(root, "recover", "--format", "json") == {"transactions": [], "tasks": []}
    assert control_version(root) == v
    assert pond_json(root, "control", "incomplete", "--format", "json") == {
        "transactions": [],
        "tasks": [],
    }
    rows = control_rows(root)
    write = [r for r in rows if r["txn_seq"] == s and r["transaction_type"] == "write"]

    if phase == "before_data_commit":
        # nothing committed: recorded failed; the user runs the command again
        assert [r["record_type"] for r in write] == ["begin", "failed"]
        assert write[-1]["error_message"] == "interrupted before data commit"
        assert Pond.open(root).lookup("/x.txt") is None
        [summary] = [t for t in Pond.open(root).control_recent(5) if t.txn_seq == s]
        assert summary.status == "failed"
        assert summary.error_message == "interrupted before data commit"
        pond_cli(root, "copy", f"host://{host}", "/x.txt")
    else:
        assert write[-1]["record_type"] == "completed"
        assert [r["record_type"] for r in write].count("data_committed") == 1
    rows = _check_finished(root)

    # 3. the pond equals the pond of the same run without a crash
    assert snapshot(root) == baseline

    # 4. attempts: re-run only what had started and not committed
    attempts = {k: a for k, (_, a) in latest_task_states(rows).items() if k[0] == s}
    assert attempts == {
        (s, 1): 2 if phase == "task_before_data_commit" else 1,
        (s, 2): 1,
        (s, 3): 1,
    }
    if phase == "task_before_data_commit":
        assert task_rows(rows, s, 1) == [
            "post_commit_pending",
            "post_commit_started",
            "post_commit_started",
            "post_commit_completed",
        ]
        own = [r for r in rows if r["txn_seq"] == s + 1 and r["transaction_type"] == "post_commit"]
        assert own[1]["record_type"] == "failed"
        assert own[1]["error_message"] == "interrupted before data commit"
    if phase == "task_after_data_commit":
        # its data had committed: recorded, not run again
        assert task_rows(rows, s, 1) == [
            "post_commit_pending",
            "post_commit_started",
            "post_commit_completed",
        ]
        own = [r["record_type"] for r in rows if r["txn_seq"] == s + 1]
        assert own == ["begin", "data_committed", "completed"]
    if phase == "after_pending":
        # and the same through the CLI: `pond list --format json` + `pond cat`
        expected = {
            path: (t, ver, content if t.startswith("file:data") else None)
            for path, (t, ver, _, content, _) in baseline.items()
        }
        assert cli_snapshot(root) == expected


def test_external_sigkill_while_a_task_runs(tmp_path):
    """kill -9 from outside while a (sleeping) task runs. The killed write is the mknod of
    the slow factory itself, which takes part in its own post-commit phase."""
    root = tmp_path / "pond"
    make_pond(root, [("10-a", {"message": "A", "write_path": "/out/a.txt"})])
    s = Pond.open(root).data.last_txn_seq() + 1
    cfg = yaml_file(
        tmp_path / "slow.yaml", {"message": "S", "sleep_ms": 3000, "write_path": "/out/s.txt"}
    )
    argv = ["mknod", "test-executor", "/etc/system.d/20-slow", "--config-path", str(cfg)]
    proc = subprocess.Popen(
        [*CLI, "--pond", str(root), *argv],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The task logs its message, then sleeps: killed the moment the line arrives (a
        # pipe, not a poll of the control table), it has not written.
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "[20-slow] S" in line:
                break
        else:
            raise AssertionError(f"the slow task never ran: {''.join(seen)}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert "post_commit_started" in task_rows(control_rows(root), s, 2)
    inc = pond_json(root, "control", "incomplete", "--format", "json")
    assert [(t["parent_txn_seq"], t["execution_seq"], t["state"]) for t in inc["tasks"]] == [
        (s, 2, "started")
    ]
    assert [(t["txn_seq"], t["status"]) for t in inc["transactions"]] == [(s, "committed")]
    assert Pond.open(root).lookup("/out/s.txt") is None  # killed before it wrote
    report = pond_json(root, "recover", "--format", "json")
    assert [(t["execution_seq"], t["attempt"], t["outcome"]) for t in report["tasks"]] == [
        (2, 2, "completed")
    ]
    assert pond_json(root, "recover", "--format", "json") == {"transactions": [], "tasks": []}
    rows = _check_finished(root)
    assert task_rows(rows, s, 2) == [
        "post_commit_pending",
        "post_commit_started",
        "post_commit_started",
        "post_commit_completed",
    ]
    pond = Pond.open(root)
    # exactly one version of each task's file for the killed write
    assert [v.txn_seq > s for v in pond.versions("/out/s.txt")] == [True]
    assert [v.txn_seq > s for v in pond.versions("/out/a.txt")] == [False, True]
    assert pond.read_bytes("/out/s.txt") == b"S"


def test_crash_during_recover_then_recover_again(tmp_path, baseline):
    root = tmp_path / "pond"
    make_pond(root, FACTORIES)
    host = tmp_path / "x.txt"
    host.write_bytes(PAYLOAD)
    s = Pond.open(root).data.last_txn_seq() + 1
    crash = {"POND_CRASH_AT": "after_pending"}
    pond_cli(root, "copy", f"host://{host}", "/x.txt", env=crash, expect=-signal.SIGKILL)
    # recover itself is killed just after its first task's data commit...
    crash = {"POND_CRASH_AT": "task_after_data_commit"}
    pond_cli(root, "recover", env=crash, expect=-signal.SIGKILL)
    inc = pond_json(root, "control", "incomplete", "--format", "json")
    assert [(t["execution_seq"], t["state"]) for t in inc["tasks"]] == [
        (1, "started"),
        (2, "pending"),
        (3, "pending"),
    ]
    # ...and the next recover finishes, without running that task again
    report = pond_json(root, "recover", "--format", "json")
    assert [(t["execution_seq"], t["attempt"]) for t in report["tasks"]] == [(1, 1), (2, 1), (3, 1)]
    assert report["tasks"][0]["outcome"].startswith("completed (its data had committed)")
    assert pond_json(root, "recover", "--format", "json") == {"transactions": [], "tasks": []}
    _check_finished(root)
    assert snapshot(root) == baseline
    assert latest_task_states(control_rows(root))[(s, 1)] == ("post_commit_completed", 1)
