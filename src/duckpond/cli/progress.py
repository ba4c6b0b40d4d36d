"""The one progress bar of the CLI: bytes moved by a copy, push, pull or restore."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """A started bar's task: `advance` adds bytes done (a copy's progress callback),
    `update` sets bytes done of a total that may still grow (a transfer's)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total or None)


@contextmanager
def progress_bar(label: str, total: int | None = None, min_total: int = 0) -> Iterator[Bar | None]:
    """A transient byte-count bar on stderr while the block runs, on a terminal only and
    when the `total` known up front is at least `min_total`; None otherwise (the library
    then skips its progress reports). Nothing of it stays on the screen or reaches a pipe."""
    if not sys.stderr.isatty() or (total or 0) < min_total:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from . import render

    progress = Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=render.err_console(),
        transient=True,
    )
    progress.start()
    try:
        yield Bar(progress, progress.add_task(label, total=total))
    finally:
        progress.stop()


class _JobLine:
    """`running LABEL · 12 s`, its elapsed time computed at each refresh."""

    def __init__(self, label: str) -> None:
        import time

        self.label = label
        self._clock = time.monotonic
        self.t0 = time.monotonic()

    def __rich__(self) -> str:
        return f"running post-commit job {self.label} · {self._clock() - self.t0:.0f} s"


_live: list[Any] = []  # the one job line on the screen, if any


def job_status(label: str | None) -> None:
    """The steward's `on_task` on a terminal: a transient line naming the post-commit job
    that runs and for how long (`mknod`, `recover`, `copy` ... otherwise sit silent); None
    clears it. Nothing of it stays on the screen or reaches a pipe."""
    while _live:
        _live.pop().stop()
    if label is None:
        return
    from rich.live import Live

    from . import render

    live = Live(_JobLine(label), console=render.err_console(), transient=True, refresh_per_second=2)
    live.start(refresh=True)
    _live.append(live)
