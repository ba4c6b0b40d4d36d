"""`pond recover --retry-failed`, two writers racing for the lock, and `pond rebuild-control`
(SPEC §2, §6, §7)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from deltalake import DeltaTable
from steward_helpers import (
    CLI,
    Q_RECENT_FAILURES,
    cli_env,
    control_rows,
    control_version,
    data_version,
    latest_task_states,
    make_pond,
    mknod,
    pond_cli,
    pond_json,
    pond_txns,
    task_rows,
    wait_for,
    write_file,
)
from waiting import holds_open

from duckpond.lock import read_holder
from duckpond.pond import Pond
from duckpond.steward.control import ControlTable
from duckpond.steward.rebuild import rebuild_control

FLAKY = "/etc/system.d/10-flaky"


def test_retry_failed_reruns_failed_tasks_with_next_attempt(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(pond, FLAKY, {"message": "f", "write_path": "/out/f", "fail": True})
    mknod_seq = pond.data.last_txn_seq()
    x = write_file(pond, "/x", b"x")
    rows = control_rows(root)
    assert latest_task_states(rows) == {
        (mknod_seq, 1): ("post_commit_failed", 1),
        (x, 1): ("post_commit_failed", 1),
    }
    # plain recover leaves failures alone (they are finished, not interrupted)
    assert pond_json(root, "recover", "--format", "json") == {"transactions": [], "tasks": []}
    # --retry-failed while the factory still fails: attempt 2, failed again (exit 1)
    proc = pond_cli(root, "recover", "--retry-failed", "--format", "json", expect=1)
    report = json.loads(proc.stdout)
    assert [(t["parent_txn_seq"], t["attempt"], t["outcome"]) for t in report["tasks"]] == [
        (mknod_seq, 2, "failed"),
        (x, 2, "failed"),
    ]
    assert Pond.open(root).lookup("/out/f") is None  # failed attempts' writes rolled back
    # fix the factory (its own mknod runs the fixed config once, as a new write's task)
    mknod_fix = Pond.open(root).data.last_txn_seq() + 1
    Pond.open(root).mknod(
        "test-executor",
        FLAKY,
        b"message: fixed\nwrite_path: /out/f\n",
        overwrite=True,
    )
    report = Pond.open(root).recover(retry_failed=True)
    assert [(t.parent_txn_seq, t.attempt, t.outcome) for t in report.tasks] == [
        (mknod_seq, 3, "completed"),
        (x, 3, "completed"),
    ]
    rows = control_rows(root)
    assert task_rows(rows, x, 1) == [
        "post_commit_pending",
        "post_commit_started",
        "post_commit_failed",
        "post_commit_started",
        "post_commit_failed",
        "post_commit_started",
        "post_commit_completed",
    ]
    attempts = [
        r["attempt"]
        for r in rows
        if (r["parent_txn_seq"], r["execution_seq"]) == (x, 1)
        and r["record_type"] == "post_commit_started"
    ]
    assert attempts == [1, 2, 3]
    assert latest_task_states(rows)[(mknod_fix, 1)] == ("post_commit_completed", 1)
    # one version of /out/f per successful run, each under its own seq linked to its parent
    pond = Pond.open(root)
    assert len(pond.versions("/out/f")) == 3
    parents = [
        p["parent_txn_seq"] for _, p in pond.data.pond_txns() if p.get("config_path") == FLAKY
    ]
    assert sorted(parents) == sorted([mknod_fix, mknod_seq, x])
    # the summary shows the latest attempt
    [tx] = [t.to_json() for t in pond.control_recent(100) if t.txn_seq == x]
    assert tx["post_commit"][0]["status"] == "completed"
    assert tx["post_commit"][0]["attempt"] == 3
    # nothing left to retry
    assert not Pond.open(root).recover(retry_failed=True)
    failures = Pond.open(root).control_sql(Q_RECENT_FAILURES).to_pylist()
    assert len(failures) == 4


def _wait_until_locked(root, pid):
    wait_for(lambda: (read_holder(root / "write.lock") or {}).get("pid") == pid, timeout=60)


def test_two_writers_racing(tmp_path):
    """A writer holds the lock (a `pond run` job blocked until we let it go): a second
    writer gets exit 3 naming the holder, or with --wait gets its turn afterwards."""
    root = tmp_path / "pond"
    pond = make_pond(root)
    go = tmp_path / "go"
    block = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)"
    mknod(pond, "/jobs/block", {"command": [sys.executable, "-c", block, str(go)]}, "command")
    first = subprocess.Popen(
        [*CLI, "--pond", str(root), "run", "/jobs/block"], env=cli_env(), stderr=subprocess.PIPE
    )
    waiter = None
    try:
        _wait_until_locked(root, first.pid)
        wait_for(  # and its transaction has begun
            lambda: any(
                r["record_type"] == "begin" and '"run"' in (r["cli_args"] or "")
                for r in control_rows(root)
            )
        )
        before = control_version(root), data_version(root)
        busy = pond_cli(root, "mkdir", "/d", expect=3)
        [line] = busy.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"pid {first.pid}" in line and "since" in line
        assert pond_cli(root, "recover", expect=3).stderr.startswith("error: ")
        # a refused writer wrote nothing at all, not even a `begin`
        assert (control_version(root), data_version(root)) == before
        # readers never block
        assert Pond.open(root).list("/jobs/*")
        assert Pond.open(root).control_recent()
        # with --wait the second writer waits its turn
        lock = root / "write.lock"
        waiter = subprocess.Popen(
            [*CLI, "--pond", str(root), "--wait", "600", "mkdir", "/d"],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        # it opened the lock file to take the lock, and waits while the job holds it
        wait_for(lambda: waiter.poll() is not None or holds_open(waiter.pid, lock), timeout=120)
        assert waiter.poll() is None  # still waiting
        go.touch()
        assert first.wait(timeout=300) == 0
        assert waiter.wait(timeout=300) == 0, waiter.stderr.read()
    finally:
        go.touch()
        for p in (first, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert Pond.open(root).lookup("/d") is not None
    rows = control_rows(root)
    begins = {
        json.loads(r["cli_args"])[-2]: r["txn_id"] for r in rows if r["record_type"] == "begin"
    }
    run_id, d_id = begins["run"], begins["mkdir"]
    # serialized: the run (no data: begin -> completed) finished before the waiter began
    order = [(r["txn_id"], r["record_type"]) for r in rows if r["txn_id"] in (run_id, d_id)]
    assert order == [
        (run_id, "begin"),
        (run_id, "completed"),
        (d_id, "begin"),
        (d_id, "data_committed"),
        (d_id, "completed"),
    ]


def test_rebuild_control(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(
        root,
        [
            ("10-w", {"message": "w", "write_path": "/out/w"}),
            ("20-v", {"message": "v", "write_path": "/out/v"}),
            ("30-n", {"message": "n"}),
        ],
    )
    a = write_file(pond, "/a", b"a")
    with pond.transaction(["pond", "mkdir", "-p", "/out"]) as tx:  # a no-op
        tx.mkdir("/out", parents=True)
        noop = tx.info["txn_id"]
    write_file(pond, "/b", b"b")
    identity = ControlTable.open(root / "control").identity()
    assert identity.get("pond_id")
    before = {t.txn_id: t.to_json() for t in Pond.open(root).control_recent(100)}

    # lose the control table
    shutil.rmtree(root / "control")
    proc = pond_cli(root, "control", expect=1)
    assert "rebuild-control" in proc.stderr
    pond_cli(root, "rebuild-control")
    control = ControlTable.open(root / "control")
    assert control.identity() == identity == Pond.open(root).identity()

    after = {t.txn_id: t.to_json() for t in Pond.open(root).control_recent(100)}
    committed = {p["txn_id"] for p in pond_txns(root) if "parent_txn_seq" not in p}
    assert set(after) == committed == set(before) - {noop}
    for s, t in after.items():
        assert t["status"] == "completed"
        assert t["txn_seq"] == before[s]["txn_seq"]
        assert t["command"] == before[s]["command"]
        # tasks that wrote data are back with the same identity and their own txn_seq
        wrote = [
            (p["execution_seq"], p["config_path"], p["txn_seq"])
            for p in before[s]["post_commit"]
            if p["txn_seq"] is not None
        ]
        assert [(p["execution_seq"], p["config_path"], p["txn_seq"]) for p in t["post_commit"]] == (
            wrote
        )
    # the rebuilt rows of a write follow the lifecycle order (tasks that wrote nothing are gone)
    detail = Pond.open(root).control_detail(a).records
    assert [(r["record_type"], r["execution_seq"]) for r in detail if r["txn_seq"] == a] == [
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
    ts = [r["timestamp"] for r in detail]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert pond_json(root, "control", "incomplete", "--format", "json") == {
        "transactions": [],
        "tasks": [],
    }
    assert pond_json(root, "recover", "--format", "json") == {"transactions": [], "tasks": []}
    # the pond goes on: next seq follows, post-commit recorded as usual
    host = tmp_path / "c.txt"
    host.write_bytes(b"c")
    pond_cli(root, "copy", f"host://{host}", "/c")
    seq = Pond.open(root).versions("/c")[0].txn_seq
    assert seq == max(t["txn_seq"] for t in after.values()) + 3  # its tasks took +1, +2
    assert latest_task_states(control_rows(root))[(seq, 3)] == ("post_commit_completed", 1)

    # an existing control table is kept unless --force, which moves it aside
    proc = pond_cli(root, "rebuild-control", expect=1)
    assert "--force" in proc.stderr
    rows_before = len(control_rows(root))
    pond_cli(root, "rebuild-control", "--force")
    rebuild_control(root, force=True)  # in-process, likely within the same second: both kept
    # and this process keeps writing to the rebuilt table
    seq = write_file(Pond.open(root), "/d", b"d")
    assert latest_task_states(control_rows(root))[(seq, 1)] == ("post_commit_completed", 1)
    asides = sorted(
        p for p in root.iterdir() if p.name.startswith("control") and p != root / "control"
    )
    assert len(asides) == 2
    assert all(DeltaTable.is_deltatable(str(p)) for p in asides)
    assert len(ControlTable.open(asides[0]).read_all()) == rows_before
    assert ControlTable.open(root / "control").identity() == identity


def test_recover_json_and_table_output(tmp_path):
    root = tmp_path / "pond"
    make_pond(root, [("10-a", {"message": "a"})])
    out = pond_cli(root, "recover").stdout
    assert "nothing to recover" in out
    host = tmp_path / "h"
    host.write_text("h")
    pond_cli(
        root, "copy", f"host://{host}", "/h", env={"POND_CRASH_AT": "after_pending"}, expect=-9
    )
    out = pond_cli(root, "recover").stdout
    assert "/etc/system.d/10-a" in out and "completed" in out
    assert json.loads(pond_cli(root, "recover", "--format", "json").stdout) == {
        "transactions": [],
        "tasks": [],
    }


def test_maintain_keeps_the_control_record_and_recovery(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-a", {"message": "a", "write_path": "/out/a"})])
    for i in range(20):  # enough small control commits to be compacted on the way
        write_file(pond, f"/f{i % 3}", str(i).encode())
    host = tmp_path / "h"
    host.write_text("h")
    pond_cli(
        root, "copy", f"host://{host}", "/h", env={"POND_CRASH_AT": "after_pending"}, expect=-9
    )
    rows = control_rows(root)
    inc = pond_json(root, "control", "incomplete", "--format", "json")
    report = Pond.open(root).maintain(retention_hours=0)
    assert report.control["files_after"] == 1
    assert control_rows(root) == rows
    assert pond_json(root, "control", "incomplete", "--format", "json") == inc
    assert [t.outcome for t in Pond.open(root).recover().tasks] == ["completed"]
    assert not Pond.open(root).control_incomplete()
    assert len(Pond.open(root).versions("/out/a")) == 22
    assert (root / "write.lock").exists()
