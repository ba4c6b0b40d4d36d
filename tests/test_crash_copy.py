"""SIGKILL during `pond copy` of a large file (SPEC §2, §4): afterwards the pond opens, the file
is either wholly there or absent, and the next write works."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import CLI, cli_env, run_pond
from steward_helpers import wait_for

from duckpond.pond import Pond

SIZE = 96 << 20


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A large host file (written once) and its sha256."""
    path = tmp_path_factory.mktemp("crash") / "big.bin"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(SIZE >> 20):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return path, h.hexdigest()


def copy_cmd(pond: Path, src: Path) -> list[str]:
    return [*CLI, "--pond", str(pond), "copy", f"host://{src}", "/big"]


def check_after_crash(root: Path, digest: str) -> bool:
    """The pond opens, /big is all there or absent, and a next write works. True if present."""
    pond = Pond.open(root)
    entries = {e.path: e for e in pond.list()}
    present = "/big" in entries
    if present:
        assert entries["/big"].size == SIZE
        assert hashlib.sha256(pond.read_bytes("/big")).hexdigest() == digest
        assert [v.version for v in pond.versions("/big")] == [1]
    else:
        assert entries == {}
    with pond.transaction(args=["after-crash"]) as tx:
        tx.write_bytes("/next", b"next write")
    fresh = Pond.open(root)
    assert fresh.read_bytes("/next") == b"next write"
    assert ("/big" in {e.path for e in fresh.list()}) == present
    return present


@pytest.mark.parametrize(
    "where",
    [
        "blob_streaming",  # the blob's first chunk is written
        "blob_before_place",  # the whole blob is written and synced
        "blob_placed",  # the blob is in the store, nothing refers to it yet
    ],
)
def test_sigkill_during_copy(big: tuple[Path, str], tmp_path: Path, where: str) -> None:
    """A SIGKILL at each phase of the copy before its commit (a crash point: the kill lands
    there however fast or loaded the machine is; the commit's own phases: below)."""
    src, digest = big
    root = tmp_path / "pond"
    Pond.create(root)
    proc = run_pond(
        "copy", f"host://{src}", "/big", pond=root, env={"POND_CRASH_AT": where}, check=None
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert not check_after_crash(root, digest)


def test_sigkill_from_outside_while_the_blob_is_written(
    big: tuple[Path, str], tmp_path: Path
) -> None:
    """kill -9 from another process once the copy has begun writing its blob (its temp
    file appeared): wherever the kill lands from there on, /big is all there or absent."""
    src, digest = big
    root = tmp_path / "pond"
    Pond.create(root)
    proc = subprocess.Popen(
        copy_cmd(root, src), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        blobs = root / "blobs"
        wait_for(
            lambda: proc.poll() is not None or any(blobs.glob(f".tmp-{proc.pid}-*")),
            timeout=300,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    check_after_crash(root, digest)


@pytest.mark.parametrize(
    ("where", "present"), [("before_data_commit", False), ("after_data_commit", True)]
)
def test_crash_at_commit(big: tuple[Path, str], tmp_path: Path, where: str, present: bool) -> None:
    src, digest = big
    root = tmp_path / "pond"
    Pond.create(root)
    proc = run_pond(
        "copy", f"host://{src}", "/big", pond=root, env={"POND_CRASH_AT": where}, check=None
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert check_after_crash(root, digest) is present
    # a new CLI process sees the same and can write
    listed = run_pond("list", pond=root).stdout.decode().split()
    assert listed == (["/big", "/next"] if present else ["/next"])
    run_pond("mkdir", "/after", pond=root)
    if present:
        out = run_pond("cat", "/big", pond=root).stdout
        assert hashlib.sha256(out).hexdigest() == digest
