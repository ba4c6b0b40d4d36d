"""Test hook shared by every layer: `POND_CRASH_AT=name` SIGKILLs the process at the named
point, a real crash at a known phase (tests synchronise on it instead of on timing)."""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    """SIGKILL this process here when `POND_CRASH_AT` names this point."""
    if os.environ.get("POND_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
