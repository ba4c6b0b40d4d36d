"""Writers that wait for the lock (SPEC §4): every one commits, exactly once.

Real `pond --wait S copy` processes. The test holds the pond's lock until every writer has
opened the pond and is waiting for the lock (its lock file is open: seen in /proc), so all
of them queue behind each other, each with table handles opened long before its turn.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLI, cli_env, run_pond
from waiting import holds_open

from duckpond.lock import WriteLock
from duckpond.pond import Pond
from duckpond.steward.control import DATA_COMMITTED, FAILED

WRITERS = 16
WAIT = 600  # seconds: a bound on the queue, never a synchronisation


@pytest.fixture
def writers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/fd")
@pytest.mark.parametrize("backup", [False, True], ids=["plain", "file-backup"])
def test_waiting_writers_all_commit_once(
    tmp_path: Path, writers: list[subprocess.Popen[bytes]], backup: bool
) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    if backup:
        run_pond("backup", "add", "bk", f"file://{tmp_path / 'bk'}", pond=root)
    for i in range(WRITERS):
        (tmp_path / f"in{i}.csv").write_text(f"k,v\n{i},{i * i}\n")
    lock_file = root / "write.lock"
    with WriteLock(lock_file):
        for i in range(WRITERS):
            argv = [*CLI, "--pond", str(root), "--wait", str(WAIT), "copy"]
            argv += [f"host://{tmp_path}/in{i}.csv", f"/w{i}.csv"]
            writers.append(
                subprocess.Popen(
                    argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        # Every writer has opened both tables and waits for the lock we hold.
        deadline = time.monotonic() + 300
        while not all(holds_open(p.pid, lock_file) for p in writers):
            for p in writers:
                assert p.poll() is None, p.communicate()[1].decode()
            assert time.monotonic() < deadline, "writers never reached the lock"
            time.sleep(0.05)
    for p in writers:
        _, err = p.communicate(timeout=WAIT + 60)
        assert p.returncode == 0, err.decode()

    pond = Pond.open(root)
    by_target: dict[str, list[tuple[int, int]]] = {}
    for version, _, txn in pond.data.commit_history():
        if "copy" in txn["args"]:
            by_target.setdefault(txn["args"][-1], []).append((version, int(txn["txn_seq"])))
    assert sorted(by_target) == sorted(f"/w{i}.csv" for i in range(WRITERS))
    assert all(len(commits) == 1 for commits in by_target.values()), by_target
    seqs = {c[0][1] for c in by_target.values()}
    assert len(seqs) == WRITERS and len({c[0][0] for c in by_target.values()}) == WRITERS
    for i in range(WRITERS):
        assert pond.read_bytes(f"/w{i}.csv") == f"k,v\n{i},{i * i}\n".encode()
    assert [r.version for r in pond.versions("/w0.csv")] == [1]

    rows = pond.control.read_all(columns=["txn_seq", "txn_id", "record_type"])
    records = rows.to_pylist()
    assert not [r for r in records if r["record_type"] == FAILED], records
    committed = [
        (r["txn_seq"], r["txn_id"])
        for r in records
        if r["record_type"] == DATA_COMMITTED and r["txn_seq"] in seqs
    ]
    assert sorted(seq for seq, _ in committed) == sorted(seqs)  # each exactly once
    assert len({txn_id for _, txn_id in committed}) == WRITERS
    if backup:
        run_pond("verify", pond=root)
