"""Bounds on every query the pond runs for a user (SPEC §7): a memory limit and a timeout.

Memory: DataFusion's fair spill pool caps what its operators may reserve; sorts, joins and
aggregations that can spill write to a directory of the context's own under $TMPDIR
(`pond-spill-*`) instead of growing, and one that cannot spill fails with "Resources
exhausted", reported as the memory limit. Spill files are removed when the query ends, however
it ends (result, error, time or memory limit, KeyboardInterrupt), and the directory with its
context or at exit (the CLI's os._exit path included); only a SIGKILL leaves one behind.

Time: the result is collected as a stream of batches awaited on an event loop of the query's
own (DataFusion's `RecordBatchStream.__anext__`), under `asyncio.wait_for`: at the deadline the
awaited batch is cancelled, which drops the Rust future, and dropping the stream drops the
query's tasks. No signal and no process-wide state is involved, so the limit holds in any
thread of a program embedding `Pond` (a thread with a running event loop hands the wait to a
helper thread). Planning (`sql`, `execute_stream`) runs before the clock is watched.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

from duckpond.errors import PondUsageError, clip

if TYPE_CHECKING:  # the CLI imports this module for its options: no data stack here
    import pyarrow as pa
    from datafusion import DataFrame

DEFAULT_MEMORY_LIMIT = 2 << 30  # bytes: 2 GiB
DEFAULT_TIMEOUT = 600.0  # seconds
_MAX_WAIT = 1e8  # seconds (~3 years): the event loop's clock overflows far beyond; as good as none
# Below this DataFusion cannot even reserve a sort's merge buffer (10 MiB per partition).
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


def collect(df: DataFrame, seconds: float | None) -> pa.Table:
    """Every row of `df` as one table, or QueryTimeout once `seconds` have passed (None: no
    limit); the query's tasks are dropped when it stops, however it stops."""
    import asyncio

    import pyarrow as pa

    stream: Any = df.execute_stream()
    batches: list[pa.RecordBatch] = []

    async def read_all() -> None:
        async for batch in stream:
            batches.append(batch.to_pyarrow())

    async def bounded() -> None:
        try:
            await asyncio.wait_for(read_all(), None if seconds is None else min(seconds, _MAX_WAIT))
        except TimeoutError:
            raise QueryTimeout from None

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: no loop runs in this thread
            asyncio.run(bounded())
        else:  # called from async code: the loop's thread cannot run another loop
            failed: list[BaseException] = []

            def run() -> None:
                try:
                    asyncio.run(bounded())
                except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                    failed.append(e)

            helper = threading.Thread(target=run, name="pond-query")
            helper.start()
            helper.join()
            if failed:
                raise failed[0]
    finally:
        stream = None  # drops the query's tasks now, not when a traceback goes
    if not batches:  # the plan's schema; otherwise the batches' own (nullability may differ)
        return pa.Table.from_batches([], schema=df.schema())
    return pa.Table.from_batches(batches)


# Every spill directory of this process's live contexts (removed at exit at the latest).
_SPILL_DIRS: set[str] = set()


def new_spill_dir() -> str:
    """A directory of its own for one context's spill files, in $TMPDIR."""
    path = tempfile.mkdtemp(prefix="pond-spill-")
    _SPILL_DIRS.add(path)
    return path


def clear_spill_dir(path: str) -> None:
    """Remove the spill files a finished query left (its tasks were dropped, but a query
    stopped by a signal may not have removed its files yet); the directories stay, as
    DataFusion's disk manager keeps using them for the context's next query."""
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
