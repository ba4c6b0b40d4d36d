"""SIGKILL during `pond copy` of a large file (SPEC §2, §4): afterwards the pond opens, the file
is either wholly there or absent, and the next write works."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, cli_env, run_pond

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


def test_sigkill_during_copy(big: tuple[Path, str], tmp_path: Path) -> None:
    src, digest = big
    # how long an uninterrupted copy takes here, to spread the kills over it
    ref = tmp_path / "ref"
    Pond.create(ref)
    t0 = time.monotonic()
    subprocess.run(copy_cmd(ref, src), env=cli_env(), check=True, capture_output=True)
    took = time.monotonic() - t0
    assert check_after_crash(ref, digest)

    moments = [0.05, 0.2, 0.5] + [took * f for f in (0.6, 0.8, 0.9, 0.97, 1.05)]
    outcomes = []
    for i, delay in enumerate(moments):
        root = tmp_path / f"pond{i}"
        Pond.create(root)
        proc = subprocess.Popen(
            copy_cmd(root, src),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        outcomes.append((round(delay, 2), proc.returncode, check_after_crash(root, digest)))
    print("kill outcomes (delay s, exit code, /big present):", outcomes)
    # the early kills land before anything was committed
    assert not outcomes[0][2], outcomes


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
