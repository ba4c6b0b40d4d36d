"""Bounds on every query the pond runs for a user (SPEC §7): a memory limit and a timeout.

Memory: DuckDB's `memory_limit` caps its buffer manager; sorts, joins, aggregations and
windows spill to a directory of the context's own under $TMPDIR (`pond-spill-*`) instead of
growing, and a query that cannot stay within it fails with "Out of Memory", reported as the
memory limit. A result collected in memory (run_sql) counts against the same limit; output
to a file or pipe is streamed batch by batch (sql.stream_sql). Spill files are removed when
the query ends, however it ends (result, error, time or memory limit, KeyboardInterrupt), and
the directory with its context or at exit (the CLI's os._exit path included); only a SIGKILL
leaves one behind.

Time: a timer thread calls the connection's `interrupt()` at the deadline, DuckDB's own
thread-safe way to stop a query; it involves no signal and no process-wide state, so the
limit holds in any thread of a program embedding `Pond`, and each query has its own timer.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile

from duckpond.errors import PondUsageError, clip

DEFAULT_MEMORY_LIMIT = 2 << 30  # bytes: 2 GiB
DEFAULT_TIMEOUT = 600.0  # seconds
# Below this a query engine has too little room for even a small sort's buffers.
MIN_MEMORY_LIMIT = 32 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """`512M`, `2G`, `1.5G`, `1048576` (bytes; units are powers of 1024) -> bytes; `0`,
    `none` or `unlimited` -> None (no limit)."""
    if text.strip().lower() in ("0", "none", "unlimited"):
        return None
    m = _SIZE_RE.match(text)
    if m is None:
        raise PondUsageError(f"not a size: {clip(text)!r} (use e.g. 512M or 2G)")
    # far beyond any machine's memory: clamped so the pool size stays a valid usize
    size = min(int(float(m.group(1)) * _UNITS[m.group(2).upper()]), 1 << 60)
    if size == 0:
        return None
    if size < MIN_MEMORY_LIMIT:
        raise PondUsageError(f"memory limit {clip(text)} is below the minimum of 32M")
    return size


# the CLI's --memory-limit, applied to the whole process at its first query
_process_bound: dict[str, int | None] = {"requested": None, "applied": None}


# The CLI's process: DuckDB opens a database when imported (its default connection's); the
# first query context may use it instead of opening another (sql.QueryContext).
_default_database: dict[str, bool] = {}


def use_default_database() -> None:
    """Let this process's first query context configure, lock and use the database DuckDB
    opened at import (`duckdb.default_connection()`) rather than open a second one (~13 ms of
    CPU, most of a small `pond cat --sql`'s own cost): for the CLI, a process of its own
    that uses DuckDB through pond alone, never for a library user's process."""
    _default_database["free"] = True


def take_default_database() -> bool:
    """True, once per process, when the CLI allowed the default database and no context
    took it yet (the taker locks its configuration: later contexts open their own)."""
    return _default_database.pop("free", False)


def bound_process_memory(limit: int | None) -> None:
    """Ask for this process's data segment to be capped by `limit` once its first query
    starts (see apply_process_bound): for the CLI, a process of its own, never for a
    library user's process."""
    _process_bound["requested"] = limit


def apply_process_bound() -> int | None:
    """Cap the data segment (RLIMIT_DATA, Linux; the soft limit only, never raised) at
    2 x the requested limit + 64 MiB above what the process holds now, with the query
    libraries loaded. DuckDB's memory_limit covers its buffer manager, not every allocation
    (a vector of 2,048 huge strings is built outside it, before an interrupt can stop it);
    past this cap an allocation fails and the query ends with the memory-limit error
    instead of growing until the kernel's OOM killer. Returns the cap (None: none)."""
    limit = _process_bound["requested"]
    if limit is None or _process_bound["applied"] is not None:
        return _process_bound["applied"]
    try:
        import resource

        with open("/proc/self/status") as f:
            held = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cap = held + 2 * limit + (64 << 20)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            return None
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        return None  # not Linux: the engine's own limit and the watcher still apply
    _process_bound["applied"] = cap
    return cap


def _data_segment() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))


def import_outside_bound(*modules: str) -> None:
    """Import `modules` (pyarrow, after a query answered without it) outside the process
    bound: loading pyarrow maps ~100 MB of data segment (its allocator's arenas, numpy), a
    fixed cost the cap was not set to count. The cap is lifted for the import and set again
    higher by what the import added, so the query keeps its 2 x limit + 64 MiB."""
    import importlib
    import sys

    cap = _process_bound["applied"]
    missing = [m for m in modules if m not in sys.modules]
    if cap is None or not missing:
        for name in missing:
            importlib.import_module(name)
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    before = _data_segment()
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        grown = max(0, _data_segment() - before)
        raised = cap + grown if hard == resource.RLIM_INFINITY else min(cap + grown, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (raised, hard))
        _process_bound["applied"] = raised


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size} bytes"


def check_timeout(seconds: float | None) -> float | None:
    """None or 0 mean no limit; a negative or non-finite value is a usage error."""
    if seconds is None or seconds == 0:
        return None
    if not 0 < seconds < float("inf"):
        raise PondUsageError(f"not a timeout: {seconds!r} (use a number of seconds > 0)")
    return float(seconds)


class QueryTimeout(BaseException):
    """Raised when a query passes its time limit. A BaseException so that no `except
    Exception` on the way out can swallow it."""


# Every spill directory of this process's live contexts (removed at exit at the latest).
_SPILL_DIRS: set[str] = set()


def new_spill_dir() -> str:
    """A directory of its own for one context's spill files, in $TMPDIR."""
    path = tempfile.mkdtemp(prefix="pond-spill-")
    _SPILL_DIRS.add(path)
    return path


def clear_spill_dir(path: str) -> None:
    """Remove the spill files a finished query left (one stopped by an error or an interrupt
    may not have removed its files yet); the directory stays for the context's next query."""
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError:
                pass


def remove_spill_dir(path: str) -> None:
    _SPILL_DIRS.discard(path)
    for _ in range(3):  # a task still winding down may create a file while it goes
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return


def remove_spill_dirs() -> None:
    """Remove every spill directory of this process (at exit: also called by the CLI,
    which leaves with os._exit and so skips atexit)."""
    for path in list(_SPILL_DIRS):
        remove_spill_dir(path)


atexit.register(remove_spill_dirs)
