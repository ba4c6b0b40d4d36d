"""Read commands must exit 0 every time: a misused deltalake/DataFusion handle can abort the
process at interpreter exit (exit 134) after the output was already printed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow as pa
from conftest import CLI, cli_env

from duckpond.pond import Pond

ROUNDS = 6
PARALLEL = 3


def test_read_commands_always_exit_zero(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    n = 30_000  # big enough for the table to live in a blob
    with pond.transaction() as tx:
        tx.write_table("/t", pa.table({"i": pa.array(range(n), pa.int64())}))
    for day in (1, 2):
        ts = pa.array([day * 86_400_000_000 + h * 3_600_000_000 for h in range(24)], pa.int64())
        with pond.transaction() as tx:
            tx.write_series("/s", pa.table({"ts": ts.cast(pa.timestamp("us", tz="UTC")), "v": ts}))

    commands = [
        ["list", "-l"],
        ["cat", "/t", "--format", "csv"],
        ["cat", "/s", "--sql", "SELECT count(*) AS n, max(v) AS m FROM series", "--format", "json"],
        ["describe", "/s", "--format", "json"],
        ["control", "--format", "json"],
    ]
    runs = [cmd for _ in range(ROUNDS) for cmd in commands]
    assert len(runs) == 30
    failures = []
    for start in range(0, len(runs), PARALLEL):
        batch = [
            (
                cmd,
                subprocess.Popen(
                    [*CLI, "--pond", str(pond_dir), *cmd],
                    env=cli_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
            )
            for cmd in runs[start : start + PARALLEL]
        ]
        for cmd, proc in batch:
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0 or not out:
                failures.append((cmd, proc.returncode, err.decode(errors="replace")[-500:]))
    assert not failures, failures
