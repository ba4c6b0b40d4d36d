"""A job's host processes: started in their own process group, tied to the pond's life, and
ended as a group, so that at most one attempt of a task runs at any moment (SPEC §8).

- Each job leads a new session (its pid is its process group id) and gets a parent-death
  signal (Linux `prctl(PR_SET_PDEATHSIG)`): when the pond process dies, even by SIGKILL,
  the job's main process is killed with it.
- Processes the job started itself stay in its group but do not get that signal. The pond
  ends the whole group when the job's main process exits, and `pond recover` ends what an
  earlier attempt left (recorded as pid + start time in its `post_commit_started` row)
  before it starts the next attempt.
- A recorded pid is only acted on while it still names the same process group: the group
  leader's start time (`/proc/PID/stat`, clock ticks since boot) must match the record, or,
  the leader being gone, the remaining members must have started no earlier than it (the
  kernel does not reuse a pid while a process group of that id exists).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import PondError

PR_SET_PDEATHSIG = 1
# SIGKILL, not SIGTERM: a job that traps SIGTERM would otherwise outlive the pond, and a
# job abandoned by a crash is retried from the start anyway (its writes were rolled back).
DEATH_SIGNAL = signal.SIGKILL
# How long a group gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_S = 3.0
# How long SIGKILLed processes may take to disappear before that is an error.
KILL_WAIT_S = 10.0

_PROC = Path("/proc")


def _prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None  # not Linux: no parent-death signal; recover's check still applies


def tie_to_parent() -> Callable[[], None]:
    """A `preexec_fn` giving the child the parent-death signal. Between fork and exec it
    only calls prctl and getppid (no import, no lock: safe beside deltalake's threads);
    prctl and its arguments (unsigned longs: prctl is variadic) are made here, in the
    parent. If the parent died before prctl took effect, the child kills itself.

    The signal fires when the *thread* that started the child ends: jobs are started from
    the pond's main thread, whose end is the process's."""
    prctl = _prctl()
    parent = os.getpid()
    args = (
        ctypes.c_int(PR_SET_PDEATHSIG),
        ctypes.c_ulong(int(DEATH_SIGNAL)),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )

    def preexec() -> None:
        if prctl is not None:
            prctl(*args)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) of a process, or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2]), int(fields[19])


def _live(s: tuple[str, int, int] | None) -> bool:
    # Z/X: exited, only its parent's wait is missing; it runs nothing any more.
    return s is not None and s[0] not in ("Z", "X")


def group_members(pgid: int) -> dict[int, int]:
    """pid -> start time of every live process in process group `pgid`."""
    out: dict[int, int] = {}
    if not _PROC.is_dir():
        return out  # no /proc (not Linux): nothing is recorded to end either
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if _live(s) and s is not None and s[1] == pgid:
                out[int(entry.name)] = s[2]
    return out


def child_start_time(pid: int) -> int | None:
    """The start time of a child not yet waited for (readable even once it has exited):
    the fingerprint recorded for the group it leads."""
    s = _stat(pid)
    return None if s is None else s[2]


def _ours(pgid: int, started: int, members: dict[int, int]) -> bool:
    if pgid in members:
        return members[pgid] == started
    return any(t >= started for t in members.values())


def end_group(pgid: int, started: int | None, grace: float = TERM_GRACE_S) -> bool:
    """Make sure the process group a job attempt ran in is gone: SIGTERM, then SIGKILL
    after `grace` seconds; returns once no member is left (True if any was found)."""
    if started is None:
        return False
    try:
        os.killpg(pgid, 0)  # the common case, an empty group, without scanning /proc
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's group, or ours with a member that changed user: look closer
    members = group_members(pgid)
    if not members or not _ours(pgid, started, members):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_S)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            raise PondError(
                f"cannot stop process group {pgid} of an earlier attempt: permission denied"
            ) from None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return True
            time.sleep(0.02)
    raise PondError(f"process group {pgid} of an earlier attempt did not exit after SIGKILL")
