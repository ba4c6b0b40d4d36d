"""Events a test can wait for instead of a duration: a process waiting for the pond's lock."""

from __future__ import annotations

import os
from pathlib import Path


def holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux /proc). A writer opens the lock file
    before it tries to take the lock and keeps it open while it waits, so a live writer
    that holds it open while another holds the lock is waiting for it."""
    want = os.path.realpath(path)  # /proc names the file by its resolved path
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                return True
        except OSError:
            continue
    return False
