"""The pond's exclusive write lock (`$POND/write.lock`).

The lock is a `flock(2)` on a permanent file. flock is tied to the open file description, so
the kernel drops it when the holder exits for any reason, SIGKILL included: there are no stale
locks to clean up, and the file is never deleted (deleting it would let two writers lock two
different inodes). The file's content is only a note for humans and error messages: who holds
the lock. It is advisory and may be stale if a holder was killed; flock is the truth.

The pond often runs as root: the lock file is opened without following a symlink and without
truncating on open, and anything but a plain regular file with one link is refused, so a link
planted at `$POND/write.lock` can never make a writer overwrite the file it points to.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from duckpond.errors import PondError, PondLockedError

_POLL_INTERVAL = 0.05  # seconds between attempts while waiting for the lock
_MAX_COMMAND_CHARS = 200  # keep the one-line error message readable


_NOTE_RETRIES = 20
_MAX_NOTE_BYTES = 64 << 10  # a real note is a few hundred bytes
# No-follow, never truncate on open; O_NONBLOCK so a FIFO planted there cannot hang us.
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def _check_regular(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise PondError(f"lock file {path} is not a regular file: refusing to use it")
    if st.st_nlink != 1:
        raise PondError(f"lock file {path} has {st.st_nlink} hard links: refusing to use it")


def _open_error(path: Path, e: OSError) -> PondError:
    if e.errno == errno.ELOOP:
        return PondError(f"lock file {path} is a symbolic link: refusing to follow it")
    return PondError(f"cannot open lock file {path}: {e.strerror}")


def read_holder(path: Path | str) -> dict[str, Any] | None:
    """Return the holder info recorded in the lock file, or None if absent/empty/garbled.

    This only reads the note: it does not check that the lock is really held (a killed
    holder leaves its note behind until the next writer overwrites it). Like the lock itself,
    it never follows a symlink and reads nothing but a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, _MAX_NOTE_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data.strip():
        return None
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict[str, Any] | None) -> str:
    """One-line description of a lock holder for error messages."""
    if info is None or "pid" not in info:
        return "unknown holder"
    text = f"pid {info['pid']} since {info.get('since', 'unknown time')}"
    if host := info.get("host"):
        text += f" on {host}"
    command = info.get("command")
    if isinstance(command, list) and command:
        cmd = shlex.join(str(c) for c in command)
        if len(cmd) > _MAX_COMMAND_CHARS:
            cmd = cmd[: _MAX_COMMAND_CHARS - 3] + "..."
        text += f" ({cmd})"
    # Error messages are one line; the note is untrusted text.
    return " ".join(text.split())


def _holder_info() -> bytes:
    info = {
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "host": socket.gethostname(),
        "command": list(sys.argv),
    }
    return (json.dumps(info) + "\n").encode()


class WriteLock:
    """Exclusive, non-reentrant write lock on `path`, usable as a context manager.

    `wait` is how many seconds `acquire()` keeps retrying while another writer holds the lock
    before raising PondLockedError; 0 means fail immediately. Two WriteLock objects conflict
    even within one process (flock locks belong to the open file, not the process).
    """

    def __init__(self, path: Path | str, wait: float = 0.0) -> None:
        self.path = Path(path)
        self.wait = wait
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, waiting up to `self.wait` seconds; then record who holds it."""
        if self._fd is not None:
            raise RuntimeError(f"write lock {self.path} is already held by this object")
        try:
            # O_CLOEXEC: a child process we exec must not inherit (and so prolong) the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o644)
        except OSError as e:
            raise _open_error(self.path, e) from None
        try:
            _check_regular(fd, self.path)
            self._flock(fd)
            self._write_info(fd)
        except BaseException:
            os.close(fd)  # closing also drops the flock if we got it
            raise
        self._fd = fd

    def _flock(self, fd: int) -> None:
        deadline = time.monotonic() + max(self.wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise PondError(f"cannot lock {self.path}: {e.strerror}") from e
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(_POLL_INTERVAL, remaining))
        info = read_holder(self.path)
        for _ in range(_NOTE_RETRIES):
            # A new holder writes its note just after taking the lock: give it a moment,
            # and take the lock ourselves if it was released meanwhile.
            if info is not None:
                break
            time.sleep(0.01)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                info = read_holder(self.path)
        holder = _describe(info)
        waited = f" (waited {self.wait:g}s)" if self.wait > 0 else ""
        raise PondLockedError(f"pond is locked by another writer: {holder}{waited}")

    def _write_info(self, fd: int) -> None:
        data = _holder_info()
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.ftruncate(fd, len(data))  # after the write, so the note is never seen empty
        # No fsync: the holder info only names a live process; after a crash it is stale
        # anyway, and the flock itself is what excludes other writers.

    def release(self) -> None:
        """Clear the holder note, unlock and close. A no-op if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Clear the note first so nobody reads us as the holder after we let go.
            os.ftruncate(fd, 0)
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"WriteLock({str(self.path)!r}, wait={self.wait!r}, held={self.held})"
