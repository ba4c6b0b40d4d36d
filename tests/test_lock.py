"""Tests for duckpond.lock: real contention between processes."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import duckpond
from duckpond.errors import PondError, PondLockedError
from duckpond.lock import WriteLock, read_holder

SRC = str(Path(duckpond.__file__).resolve().parents[1])

# A lock holder in another process, driven line by line over stdin/stdout.
HOLDER = """
import sys, time
from duckpond.lock import WriteLock
lock = WriteLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "release":
        time.sleep(float(args[0]) if args else 0.0)
        lock.release()
        print("released", flush=True)
    elif cmd == "exit":
        break
"""

Spawn = Callable[[Path], subprocess.Popen[str]]


def expect(proc: subprocess.Popen[str], word: str, timeout: float = 20.0) -> None:
    """Wait for the child to print `word`, failing rather than hanging."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"child did not say {word!r} within {timeout}s"
    line = proc.stdout.readline().strip()
    assert line == word, f"expected {word!r}, got {line!r} (exit code {proc.poll()})"


def send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "write.lock"


@pytest.fixture
def spawn_holder() -> Iterator[Spawn]:
    """Start child processes that hold the lock; kill any left over at the end."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(path: Path) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(proc)
        expect(proc, "locked")
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


# --- across processes -----------------------------------------------------------------------


def test_other_process_holds_lock(lock_path: Path, spawn_holder: Spawn) -> None:
    proc = spawn_holder(lock_path)
    with pytest.raises(PondLockedError) as info:
        WriteLock(lock_path).acquire()
    message = str(info.value)
    assert message.startswith("pond is locked by another writer: ")
    assert f"pid {proc.pid} since " in message
    assert "\n" not in message
    assert info.value.exit_code == 3


def test_holder_info_recorded(lock_path: Path, spawn_holder: Spawn) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    proc = spawn_holder(lock_path)
    info = read_holder(lock_path)
    assert info is not None
    assert info["pid"] == proc.pid
    assert info["host"] == socket.gethostname()
    assert info["command"] == ["-c", str(lock_path)]  # the child's sys.argv
    since = datetime.fromisoformat(info["since"])
    assert since.utcoffset() == timedelta(0)
    assert before <= since <= datetime.now(UTC) + timedelta(seconds=1)
    # The message names the recorded since-time verbatim.
    with pytest.raises(PondLockedError, match=f"since {info['since']}"):
        WriteLock(lock_path).acquire()


def test_wait_succeeds_when_holder_releases(lock_path: Path, spawn_holder: Spawn) -> None:
    proc = spawn_holder(lock_path)
    start = time.monotonic()  # before the holder is told: it then holds on >= 0.3 s
    send(proc, "release 0.3")
    with WriteLock(lock_path, wait=20) as lock:
        elapsed = time.monotonic() - start
        assert lock.held
        info = read_holder(lock_path)
        assert info is not None and info["pid"] == os.getpid()
    expect(proc, "released")
    assert elapsed >= 0.2  # we really had to wait for the release
    assert proc.poll() is None  # freed by release(), not by the holder exiting


def test_wait_times_out(lock_path: Path, spawn_holder: Spawn) -> None:
    proc = spawn_holder(lock_path)
    start = time.monotonic()
    with pytest.raises(PondLockedError, match=rf"pid {proc.pid} .*\(waited 0\.3s\)$"):
        WriteLock(lock_path, wait=0.3).acquire()
    assert time.monotonic() - start >= 0.3


def test_sigkilled_holder_leaves_lock_acquirable(lock_path: Path, spawn_holder: Spawn) -> None:
    proc = spawn_holder(lock_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # The dead holder's note is left behind (stale) but does not block anyone.
    stale = read_holder(lock_path)
    assert stale is not None and stale["pid"] == proc.pid
    lock = WriteLock(lock_path)  # no wait: the kernel already dropped the flock
    lock.acquire()
    try:
        info = read_holder(lock_path)
        assert info is not None and info["pid"] == os.getpid()
    finally:
        lock.release()


def test_holder_exit_frees_lock(lock_path: Path, spawn_holder: Spawn) -> None:
    proc = spawn_holder(lock_path)
    send(proc, "exit")
    proc.wait(timeout=10)
    with WriteLock(lock_path):
        pass


def test_released_lock_is_acquirable_by_other_process(lock_path: Path, spawn_holder: Spawn) -> None:
    with WriteLock(lock_path):
        pass
    proc = spawn_holder(lock_path)
    send(proc, "release")
    expect(proc, "released")
    with WriteLock(lock_path):
        pass


def test_child_cannot_take_lock_we_hold(lock_path: Path) -> None:
    with WriteLock(lock_path):
        env = {**os.environ, "PYTHONPATH": SRC}
        code = (
            "import sys; from duckpond.lock import WriteLock; from duckpond.errors import "
            "PondLockedError\ntry:\n    WriteLock(sys.argv[1]).acquire()\n"
            "except PondLockedError as e:\n    print(e); sys.exit(e.exit_code)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(lock_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
    assert result.returncode == 3, result.stderr
    assert f"pid {os.getpid()} since " in result.stdout


# --- within one process ---------------------------------------------------------------------


def test_file_persists_after_release(lock_path: Path) -> None:
    lock = WriteLock(lock_path)
    lock.acquire()
    assert lock_path.exists()
    assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    inode = lock_path.stat().st_ino
    lock.release()
    assert lock_path.exists()
    assert lock_path.stat().st_ino == inode
    assert lock_path.read_bytes() == b""  # holder note cleared
    assert read_holder(lock_path) is None


def test_reuses_existing_file(lock_path: Path) -> None:
    lock_path.write_text("x" * 1000)
    inode = lock_path.stat().st_ino
    with WriteLock(lock_path):
        text = lock_path.read_text()
        assert json.loads(text)["pid"] == os.getpid()  # old content fully replaced
        assert lock_path.stat().st_ino == inode


def test_held_property_and_context_manager(lock_path: Path) -> None:
    lock = WriteLock(lock_path)
    assert not lock.held
    with lock as entered:
        assert entered is lock
        assert lock.held
    assert not lock.held


def test_context_manager_releases_on_error(lock_path: Path) -> None:
    with pytest.raises(ValueError), WriteLock(lock_path):
        raise ValueError("boom")
    with WriteLock(lock_path):
        pass


def test_second_object_in_same_process_conflicts(lock_path: Path) -> None:
    with WriteLock(lock_path):
        other = WriteLock(lock_path)
        with pytest.raises(PondLockedError, match=f"pid {os.getpid()} since "):
            other.acquire()
        assert not other.held
    other.acquire()  # free once the first is released
    other.release()


def test_release_is_idempotent(lock_path: Path) -> None:
    lock = WriteLock(lock_path)
    lock.release()
    lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held


def test_lock_can_be_reacquired(lock_path: Path) -> None:
    lock = WriteLock(lock_path)
    for _ in range(3):
        with lock:
            assert lock.held


def test_double_acquire_is_a_bug(lock_path: Path) -> None:
    with WriteLock(lock_path) as lock, pytest.raises(RuntimeError):
        lock.acquire()


@pytest.mark.parametrize(
    "content",
    [b"", b"   \n", b"{not json", b"[1, 2]", b'"str"', b"\xff\xfe\x00", b'{"host": "h"}'],
)
def test_unknown_holder(lock_path: Path, content: bytes) -> None:
    with WriteLock(lock_path):
        lock_path.write_bytes(content)  # flock is advisory: we can scribble on the note
        with pytest.raises(PondLockedError) as info:
            WriteLock(lock_path).acquire()
    assert str(info.value) == "pond is locked by another writer: unknown holder"


def test_message_is_one_line_and_bounded(lock_path: Path) -> None:
    with WriteLock(lock_path):
        note = {"pid": 42, "since": "then", "host": "h\nx", "command": ["pond", "a\nb" * 500]}
        lock_path.write_text(json.dumps(note))
        with pytest.raises(PondLockedError) as info:
            WriteLock(lock_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("pond is locked by another writer: pid 42 since then on h x (pond ")
    assert len(message) < 400


def test_read_holder_missing_file(tmp_path: Path) -> None:
    assert read_holder(tmp_path / "absent.lock") is None
    assert read_holder(tmp_path) is None  # a directory is not a lock note


def test_accepts_str_path(lock_path: Path) -> None:
    with WriteLock(str(lock_path)) as lock:
        assert lock.path == lock_path
        assert read_holder(str(lock_path)) is not None


def test_missing_directory_is_a_pond_error(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "no-such-pond" / "write.lock")
    with pytest.raises(PondError, match="cannot open lock file"):
        lock.acquire()
    assert not lock.held
