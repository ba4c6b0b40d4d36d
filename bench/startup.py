"""Benchmark 13: start-up of whole `pond` processes (issue 7).

Each figure is the median wall time of a subprocess of `.venv/bin/pond` (output to
/dev/null), interleaved with its baselines in the same run so that machine load hits all
alike: `python -c "import pyarrow"` (the floor of any command that reads the pond: pyarrow
and numpy), `python -c "import click"` (the floor of `--help` with click) and `python -c
pass`. `pond --help` has an absolute goal (60 ms); `pond list` and `pond cat FILE` on a
small pond are held to 1.5x of importing pyarrow.
"""

from __future__ import annotations

import sys
from pathlib import Path

from duckpond.pond import Pond

from .common import Result, Row, Timer, fmt_s, log, pond_cmd, ratio_row, run_process

HELP_GOAL_S = 0.060


def _small_pond(root: Path, host: Path) -> Path:
    pond = Pond.create(root)
    host.write_text("ts,v\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n")
    with pond.transaction(["bench", "setup"]) as tx:
        tx.mkdir("/d")
        for i in range(20):
            tx.write_bytes(f"/d/f{i}.txt", f"file {i}\n".encode())
    pond.copy_in([f"host+csv+table://{host}"], "/d/t")
    return root


def run(work: Path, quick: bool) -> Result:
    pond = _small_pond(work / "pond", work / "t.csv")
    py = sys.executable
    commands = {
        "pass": [py, "-c", "pass"],
        "click": [py, "-c", "import click"],
        "pyarrow": [py, "-c", "import pyarrow"],
        # what `pond list` and `pond cat FILE` load of other packages: their floor (they
        # read the Delta log without deltalake, Parquet with pyarrow.parquet)
        "deps": [py, "-c", "import pyarrow, pyarrow.parquet, click"],
        "help": pond_cmd(pond, "--help"),
        "version": pond_cmd(pond, "--version"),
        "list": pond_cmd(pond, "list"),
        "cat": pond_cmd(pond, "cat", "/d/f7.txt"),
        "cat_table": pond_cmd(pond, "cat", "/d/t", "--format", "csv"),
    }
    reps = 5 if quick else 21
    log(f"startup: {reps} interleaved reps of {len(commands)} processes")
    # Bytecode as users have it: a PYTHONDONTWRITEBYTECODE=1 environment (as in the
    # sessions' shells) would recompile pond's modules in every process (~100 ms); the
    # warm-up rep writes the .pyc files.
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    t = Timer(warmup=1)
    for _ in range(reps + 1):
        for name, argv in commands.items():
            t.add(name, run_process(argv, env))
    help_s, floor, click_s = t.median("help"), t.median("pass"), t.median("click")
    rows = [
        Row(
            "13a",
            "`pond --help` process (absolute goal) vs `python -c 'import click'`",
            fmt_s(help_s),
            fmt_s(click_s),
            f"{help_s / click_s:.2f}×",
            f"≤ {fmt_s(HELP_GOAL_S)}",
            "yes" if help_s <= HELP_GOAL_S else "no",
            {"figure_s": help_s, "baseline_s": click_s, "python_s": floor},
        ),
        ratio_row(
            "13b",
            "`pond list` process, small pond, vs `python -c 'import pyarrow'`",
            t.median("list"),
            t.median("pyarrow"),
            1.5,
        ),
        ratio_row(
            "13c",
            "`pond cat FILE` (raw) process, small pond, vs importing pyarrow",
            t.median("cat"),
            t.median("pyarrow"),
            1.5,
        ),
        ratio_row(
            "13d",
            "`pond cat TABLE --format csv` (DuckDB) process vs importing pyarrow",
            t.median("cat_table"),
            t.median("pyarrow"),
            None,
        ),
    ]
    notes = [
        f"13: medians of {reps} reps, .pyc files written; `python -c pass` {fmt_s(floor)}, "
        f"`python -c 'import pyarrow'` {fmt_s(t.median('pyarrow'))}, "
        f"`python -c 'import click'` {fmt_s(click_s)}, `python -c 'import pyarrow, "
        f"pyarrow.parquet, click'` {fmt_s(t.median('deps'))} "
        f"({t.median('deps') / t.median('pyarrow'):.2f}× of pyarrow), `pond --version` "
        f"{fmt_s(t.median('version'))}; `pond --help` above the bare interpreter: "
        f"{fmt_s(help_s - floor)}, of which importing click {fmt_s(click_s - floor)}",
    ]
    return Result(rows, notes)
