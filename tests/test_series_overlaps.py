"""`pond detect-overlaps` through the CLI: exact shared ranges and row counts per pair of
versions, in each format, and its errors (issue 21.2). DuckPond's version found nothing
(its filter dropped every version); the study's scenario is minute data overlapping by 2 h."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import run_pond

from duckpond.pond import Pond

M = 60_000_000  # one minute in µs
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def minutes(start: int, n: int, step: int = M) -> pa.Table:
    times = pa.array([start + i * step for i in range(n)], pa.timestamp("us", tz="UTC"))
    return pa.table({"timestamp": times, "v": list(range(n))})


def append(root: Path, path: str, table: pa.Table) -> None:
    with Pond.open(root).transaction() as tx:
        tx.write_series(path, table, parents=True)


@pytest.fixture
def overlapping(pond_dir: Path) -> Path:
    # /s/a: 00:00-05:59 and 04:00-09:59 overlap by 2 h of minute data; 10:00-10:59 does not
    append(pond_dir, "/s/a", minutes(T0, 360))
    append(pond_dir, "/s/a", minutes(T0 + 240 * M, 360))
    append(pond_dir, "/s/a", minutes(T0 + 600 * M, 60))
    # /s/b: an hour ingested twice, then half-minute times inside its second half
    append(pond_dir, "/s/b", minutes(T0, 60))
    append(pond_dir, "/s/b", minutes(T0, 60))
    append(pond_dir, "/s/b", minutes(T0 + 30 * M + M // 2, 30))
    append(pond_dir, "/s/c", minutes(T0, 10))
    return pond_dir


def test_summary_and_full(overlapping: Path) -> None:
    out = run_pond("detect-overlaps", "/s/*", pond=overlapping).stdout.decode()
    assert out == (
        "/s/a: 3 version(s), 1 overlap(s), 240 row(s) in shared ranges\n"
        "/s/b: 3 version(s), 3 overlap(s), 149 row(s) in shared ranges\n"
        "/s/c: 1 version(s), no overlaps\n"
    )
    out = run_pond("detect-overlaps", "/s/b", "/s/a", "--format", "full", pond=overlapping)
    assert out.stdout.decode() == (
        "/s/a: 3 version(s), 1 overlap(s), 240 row(s) in shared ranges\n"
        "  v1 and v2: 2024-01-01T04:00:00Z .. 2024-01-01T05:59:00Z: 120 and 120 row(s), "
        "120 same time(s)\n"
        "/s/b: 3 version(s), 3 overlap(s), 149 row(s) in shared ranges\n"
        "  v1 and v2: 2024-01-01T00:00:00Z .. 2024-01-01T00:59:00Z: 60 and 60 row(s), "
        "60 same time(s)\n"
        "  v1 and v3: 2024-01-01T00:30:30Z .. 2024-01-01T00:59:00Z: 29 and 29 row(s), "
        "0 same time(s)\n"
        "  v2 and v3: 2024-01-01T00:30:30Z .. 2024-01-01T00:59:00Z: 29 and 29 row(s), "
        "0 same time(s)\n"
    )


def test_json(overlapping: Path) -> None:
    out = run_pond("detect-overlaps", "/s/a", "/s/c", "--format", "json", pond=overlapping)
    assert json.loads(out.stdout) == {
        "overlaps": 1,
        "series": [
            {
                "path": "/s/a",
                "versions": 3,
                "overlapping_rows": 240,
                "overlaps": [
                    {
                        "versions": [1, 2],
                        "start": "2024-01-01T04:00:00Z",
                        "end": "2024-01-01T05:59:00Z",
                        "rows": [120, 120],
                        "same_times": 120,
                    }
                ],
            },
            {"path": "/s/c", "versions": 1, "overlapping_rows": 0, "overlaps": []},
        ],
    }


def test_second_precision_and_nanosecond_times(pond_dir: Path) -> None:
    # DuckPond needed second or millisecond times; any unit works here
    for unit, scale in (("s", 1_000_000), ("ns", 1)):
        path = f"/u/{unit}"
        for start in (0, 5):
            raw = [
                (T0 + (start + i) * M) // scale * (1 if unit == "s" else 1_000) for i in range(10)
            ]
            table = pa.table({"timestamp": pa.array(raw, pa.timestamp(unit, tz="UTC"))})
            append(pond_dir, path, table)
    out = run_pond("detect-overlaps", "/u/*", "--format", "full", pond=pond_dir).stdout.decode()
    line = (
        "  v1 and v2: 2024-01-01T00:05:00Z .. 2024-01-01T00:09:00Z: "
        "5 and 5 row(s), 5 same time(s)\n"
    )
    assert out == (
        "/u/ns: 2 version(s), 1 overlap(s), 10 row(s) in shared ranges\n"
        + line
        + "/u/s: 2 version(s), 1 overlap(s), 10 row(s) in shared ranges\n"
        + line
    )


def test_errors(overlapping: Path) -> None:
    out = run_pond("detect-overlaps", "/s/nothing*", pond=overlapping, check=1)
    assert out.stderr.decode() == "error: no stored series matches /s/nothing*\n"
    out = run_pond("detect-overlaps", "/s/a", "--format", "xml", pond=overlapping, check=2)
    assert b"Invalid value for '--format'" in out.stderr
    run_pond("detect-overlaps", pond=overlapping, check=2)
