"""At most one attempt of a task runs at any moment, also across crashes and `recover`
(SPEC §8). Real jobs, a real SIGKILL of `pond`, the real CLI.

The job (JOB below) records each attempt in a marker directory: its pid, the pid of a
background process it started, and which processes of earlier attempts were still alive
when it started. The first attempt then sleeps; later attempts exit at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable
from steward_helpers import (
    CLI,
    cli_env,
    control_rows,
    make_pond,
    mknod,
    pond_cli,
    wait_for,
    yaml_file,
)

from duckpond.pond import Pond
from duckpond.steward.control import (
    CONTROL_SCHEMA,
    PC_PENDING,
    PC_STARTED,
    ControlTable,
    Record,
)
from duckpond.storage import deltacommit, parquetwrite, upkeep

JOB = """
import json, os, subprocess, sys, time
marker = sys.argv[1]
if not os.path.exists(sys.argv[2]):
    sys.exit(0)  # not armed yet (the mknod's own post-commit phase)

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False

earlier = [json.load(open(os.path.join(marker, n))) for n in sorted(os.listdir(marker))]
still = [p for e in earlier for p in e["pids"] if alive(p)]
child = subprocess.Popen(["sleep", "60"]) if not earlier else None
rec = {"pids": [os.getpid()] + ([child.pid] if child else []), "alive_at_start": still}
tmp = os.path.join(marker, ".tmp")
with open(tmp, "w") as f:
    json.dump(rec, f)
os.rename(tmp, os.path.join(marker, f"attempt-{len(earlier) + 1}.json"))
if not earlier:
    time.sleep(60)
"""


NEW_COLUMNS = ["pid", "pid_starttime"]  # control columns a pond from before them lacks


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _attempts(marker: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(marker.glob("attempt-*.json"))]


def _kill_leftovers(marker: Path) -> None:
    for a in _attempts(marker):
        for pid in a["pids"]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _crash_during_job(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A pond whose post-commit job is running when `pond copy` is SIGKILLed."""
    root = tmp_path / "pond"
    marker = tmp_path / "marker"
    marker.mkdir()
    script = tmp_path / "job.py"
    script.write_text(JOB)
    make_pond(root)
    armed = tmp_path / "armed"
    cmd = [sys.executable, str(script), str(marker), str(armed)]
    cfg = yaml_file(tmp_path / "job.yaml", {"command": cmd})
    pond_cli(root, "mknod", "command", "/etc/system.d/10-job", "--config-path", str(cfg))
    armed.touch()
    seq = Pond.open(root).data.last_txn_seq() + 1
    src = tmp_path / "x.txt"
    src.write_text("x")
    argv = [*CLI, "--pond", str(root), "copy", f"host://{src}", "/x.txt"]
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(_attempts(marker)) == 1, timeout=60)
        # the pid is recorded in the started row, which follows the job's start closely
        wait_for(lambda: _started(root, seq), timeout=30)
    finally:
        proc.kill()
        proc.wait()
    return root, marker, seq


def _started(root: Path, seq: int) -> list[dict]:
    return [
        r
        for r in control_rows(root)
        if r["record_type"] == PC_STARTED and r["parent_txn_seq"] == seq
    ]


def test_job_dies_with_the_pond_and_recover_never_overlaps_attempts(tmp_path: Path) -> None:
    root, marker, seq = _crash_during_job(tmp_path)
    job_pid, background_pid = _attempts(marker)[0]["pids"]
    try:
        # parent-death signal: the job's own process goes with the pond
        wait_for(lambda: not _alive(job_pid), timeout=120)
        # what it started itself survives the pond (its group is recover's to end)
        assert _alive(background_pid)

        rec = pond_cli(root, "recover", "--format", "json")
        second = _attempts(marker)[1]
        assert second["alive_at_start"] == [], "attempt 2 started while attempt 1 still ran"
        assert not _alive(background_pid)
        assert "ended process group" in rec.stderr
        tasks = _started(root, seq)
        assert [t["attempt"] for t in tasks] == [1, 2]
        # each attempt's started row names its process
        assert [t.get("pid") for t in tasks] == [job_pid, second["pids"][0]]
        assert all(t.get("pid_starttime") is not None for t in tasks)
        # nothing is left to end: a second recover does nothing
        again = pond_cli(root, "recover", "--format", "json")
        assert "ended process group" not in again.stderr
    finally:
        _kill_leftovers(marker)


def test_a_finished_job_leaves_nothing_running(tmp_path: Path) -> None:
    """A job's background processes end with it: nothing of an attempt outlives it."""
    root = tmp_path / "pond"
    pidfile = tmp_path / "bg.pid"
    make_pond(root)
    cmd = ["sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}"]
    cfg = yaml_file(tmp_path / "job.yaml", {"command": cmd})
    pond_cli(root, "mknod", "command", "/etc/system.d/10-bg", "--config-path", str(cfg))
    pid = int(pidfile.read_text())
    try:
        assert not _alive(pid)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_recover_ends_only_the_recorded_process_group(tmp_path: Path) -> None:
    """A started row's pid is acted on only while it names the same process (its start
    time matches): a pid reused by an unrelated process is left alone."""
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(pond, "/etc/system.d/10-t", {"message": "t"})
    seq = pond.data.last_txn_seq()
    ours = subprocess.Popen(["sleep", "60"], start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:

        def starttime(pid: int) -> int:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])

        rows = [r for r in control_rows(root) if r["record_type"] == "begin"]
        txn_id = rows[-1]["txn_id"]
        task = {
            "transaction_type": "post_commit",
            "parent_txn_seq": seq,
            "execution_seq": 1,
            "factory_name": "test-executor",
            "config_path": "/etc/system.d/10-t",
        }
        # a task left started by two crashed attempts: one still running, and one whose
        # pid now names an unrelated process (start time differs)
        ControlTable.open(root / "control").append(
            [
                Record(seq, txn_id, PC_PENDING, attempt=1, **task),
                Record(
                    seq,
                    txn_id,
                    PC_STARTED,
                    attempt=1,
                    pid=other.pid,
                    pid_starttime=starttime(other.pid) - 1,
                    **task,
                ),
                Record(
                    seq,
                    txn_id,
                    PC_STARTED,
                    attempt=2,
                    pid=ours.pid,
                    pid_starttime=starttime(ours.pid),
                    **task,
                ),
            ]
        )
        pond_cli(root, "recover")
        assert ours.wait(timeout=120) == -signal.SIGTERM
        assert other.poll() is None
        states = [r for r in control_rows(root) if r["parent_txn_seq"] == seq]
        assert states[-1]["record_type"] == "post_commit_completed"
        assert states[-1]["attempt"] == 3
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()


def test_control_table_of_an_older_pond_gains_the_pid_columns(tmp_path: Path) -> None:
    """A control table written before `pid` existed stays readable; the next write adds
    the columns (schema evolution), its old rows read them as null."""
    root = tmp_path / "pond"
    make_pond(root)
    ctl = root / "control"
    old_rows = ControlTable.open(ctl).read_all().drop_columns(NEW_COLUMNS)
    description = ControlTable.open(ctl).dt.metadata().description
    old_schema = pa.schema([f for f in CONTROL_SCHEMA if f.name not in NEW_COLUMNS])
    for p in sorted(ctl.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    ctl.rmdir()
    dt = DeltaTable.create(
        str(ctl),
        old_schema,
        name="pond-control",
        description=description,
        configuration=upkeep.TABLE_CONFIG,
    )
    action = parquetwrite.write_file(ctl, old_rows.cast(old_schema))
    deltacommit.commit(deltacommit.DeltaView(dt), ctl, [action])

    cmd = ["sh", "-c", "exit 0"]
    cfg = yaml_file(tmp_path / "job.yaml", {"command": cmd})
    pond_cli(root, "control", "--format", "json")
    pond_cli(root, "mknod", "command", "/etc/system.d/10-c", "--config-path", str(cfg))
    q = "SELECT pid FROM control_table WHERE record_type = 'post_commit_started'"
    [started] = json.loads(pond_cli(root, "control", "--sql", q, "--format", "json").stdout)
    assert isinstance(started["pid"], int)
    q = "SELECT count(*) AS n FROM control_table WHERE pid IS NULL"
    [n] = json.loads(pond_cli(root, "control", "--sql", q, "--format", "json").stdout)
    assert n["n"] >= old_rows.num_rows
    pond_cli(root, "maintain")
    pond_cli(root, "control", "detail", "--txn-seq", "1", "--format", "json")
    rows = control_rows(root)
    assert sum(1 for r in rows if r["pid"]) == 1
