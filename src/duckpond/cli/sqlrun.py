"""How `pond sql` runs one statement, for the command (sql.py) and the shell (shell.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import State


@dataclass(frozen=True)
class SqlRun:
    """How each statement runs: the window on every series, the limits, the output."""

    time_start: str | None
    time_end: str | None
    timeout: float | None
    memory_limit: int | None
    fmt: str | None


def run_statement(st: State, query: str, run: SqlRun) -> None:
    """One statement's result on stdout, as `pond cat --sql` prints one: a table on a
    terminal, else Parquet (or --format); streamed unless it is a table to read."""
    from . import render

    pond = st.open()
    fmt = run.fmt or ("table" if sys.stdout.isatty() else "parquet")
    limits: dict[str, Any] = {
        "time_start": run.time_start,
        "time_end": run.time_end,
        "timeout": run.timeout,
        "memory_limit": run.memory_limit,
        "interruptible": True,
    }
    if fmt != "table":  # a file or pipe: batch by batch, in bounded memory
        render.batches(pond.sql_batches(query, **limits), fmt)
    else:
        render.table(pond.sql(query, **limits), fmt)
