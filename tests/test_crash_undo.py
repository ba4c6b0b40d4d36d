"""A SIGKILL at every crash point of `pond rm`, `mv` and `revert` (through the CLI) leaves
the old state or the new one; `pond recover` finishes the write and `pond fsck` is clean."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from conftest import run_pond

from duckpond.pond import Pond

# (crash point, whether the write's data is committed when it fires); the pond has one
# post-commit job, so each point of the steward's lifecycle is reached.
POINTS = [
    ("before_data_commit", False),
    ("after_data_commit", True),
    ("after_pending", True),
    ("task_after_data_commit", True),
    ("before_completed", True),
]


def setup(root: Path) -> None:
    pond = Pond.create(root)
    job = yaml.safe_dump({"message": "ran", "write_path": "/ran"}).encode()
    pond.mknod("test-executor", "/etc/system.d/job", job)
    with pond.transaction() as tx:
        tx.write_bytes("/d/a", b"one", parents=True)
        tx.mkdir("/e")
    with pond.transaction() as tx:  # txn 6 (its job's write: 7)
        tx.write_bytes("/d/a", b"two")


def state(root: Path) -> dict[str, bytes]:
    pond = Pond.open(root)
    return {e.path: pond.read_bytes(e.path) for e in pond.list("/**") if e.path in ("/d/a", "/e/a")}


COMMANDS = {
    "rm": (("rm", "/d/a"), {"/d/a": b"two"}, {}),
    "mv": (("mv", "/d/a", "/e/a"), {"/d/a": b"two"}, {"/e/a": b"two"}),
    "revert": (("revert", "6"), {"/d/a": b"two"}, {"/d/a": b"one"}),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("point", "committed"), POINTS)
def test_sigkill_at_each_crash_point(
    tmp_path: Path, command: str, point: str, committed: bool
) -> None:
    root = tmp_path / "pond"
    setup(root)
    args, old, new = COMMANDS[command]
    proc = run_pond(*args, pond=root, env={"POND_CRASH_AT": point}, check=None)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert state(root) == (new if committed else old)
    run_pond("recover", pond=root)
    assert "no problems found" in run_pond("fsck", pond=root).stdout.decode()
    assert state(root) == (new if committed else old)
    if command == "mv" and committed:  # its versions went with it
        pond = Pond.open(root)
        assert [pond.read_bytes("/e/a", version=v) for v in (1, 2)] == [b"one", b"two"]
    with Pond.open(root).transaction() as tx:  # the next write works
        tx.write_bytes("/next", b"n")
