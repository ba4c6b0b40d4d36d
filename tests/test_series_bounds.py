"""`pond set-temporal-bounds` through the CLI: every read honours the bounds (cat, --sql,
--time-start/--time-end, describe, copy out, sql-derived and temporal-reduce inputs), they
survive appends and are cleared by another call; bad input changes nothing (issue 21.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import run_pond

from duckpond.pond import Pond

H = 3_600_000_000  # one hour in µs
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def hourly(start: int, hours: int, first_value: int = 0) -> pa.Table:
    times = pa.array([start + i * H for i in range(hours)], pa.timestamp("us", tz="UTC"))
    return pa.table({"timestamp": times, "v": [float(first_value + i) for i in range(hours)]})


def append(root: Path, path: str, table: pa.Table) -> None:
    with Pond.open(root).transaction() as tx:
        tx.write_series(path, table, parents=True)


def query(root: Path, path: str, sql: str, *extra: object) -> list[dict[str, Any]]:
    out = run_pond("cat", path, "--sql", sql, "--format", "json", *extra, pond=root)
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def count(root: Path, path: str, *extra: object) -> int:
    return int(query(root, path, "SELECT count(*) AS n FROM source", *extra)[0]["n"])


def versions(root: Path, path: str) -> int:
    return len(Pond.open(root).versions(path))


@pytest.fixture
def series(pond_dir: Path) -> Path:
    """/s/h: hourly rows 2024-01-01T00 .. 2024-01-10T23 (240), v = 0 .. 239."""
    append(pond_dir, "/s/h", hourly(T0, 240))
    return pond_dir


def test_study_scenario_and_bounds_survive_appends(series: Path) -> None:
    out = run_pond(
        "set-temporal-bounds",
        "/s/h",
        "--min-time",
        "2024-01-03",
        "--max-time",
        "2024-01-04 23:59:59",
        pond=series,
    )
    assert out.stdout.decode() == (
        "/s/h: bounds 2024-01-03T00:00:00Z .. 2024-01-04T23:59:59Z (version 2)\n"
    )
    assert query(
        series, "/s/h", "SELECT count(*) AS n, min(v) AS lo, max(v) AS hi FROM source"
    ) == [{"n": 48, "lo": 48.0, "hi": 95.0}]
    # DuckPond dropped the bounds at the next append: here they stay in force
    append(series, "/s/h", hourly(T0 + 240 * H, 24, first_value=240))
    assert count(series, "/s/h") == 48
    d = json.loads(run_pond("describe", "/s/h", "--format", "json", pond=series).stdout)
    assert d["temporal_bounds"] == {"min": "2024-01-03T00:00:00Z", "max": "2024-01-04T23:59:59Z"}
    assert [v["version"] for v in d["versions"]] == [1, 2, 3]
    # a read's own window is narrowed by the bounds, never widened
    assert count(series, "/s/h", "--time-start", "2024-01-04T12:00:00Z") == 12
    assert count(series, "/s/h", "--time-start", "2024-01-01", "--time-end", "2024-01-03") == 1
    assert count(series, "/s/h", "--time-end", "2024-01-02") == 0
    # another call undoes it; every row is back
    out = run_pond("set-temporal-bounds", "/s/h", "--clear", pond=series)
    assert out.stdout.decode() == "/s/h: bounds none (version 4)\n"
    assert count(series, "/s/h") == 264
    d = json.loads(run_pond("describe", "/s/h", "--format", "json", pond=series).stdout)
    assert "temporal_bounds" not in d


def test_one_bound_replaces_the_earlier_ones(series: Path) -> None:
    run_pond("set-temporal-bounds", "/s/h", "--min-time", "2024-01-10T12:00:00Z", pond=series)
    assert query(series, "/s/h", "SELECT count(*) AS n, min(v) AS lo FROM source") == [
        {"n": 12, "lo": 228.0}
    ]
    # a new call replaces the bounds: the min is open again
    run_pond("set-temporal-bounds", "/s/h", "--max-time", "2024-01-01T05:00:00Z", pond=series)
    assert query(series, "/s/h", "SELECT count(*) AS n, max(v) AS hi FROM source") == [
        {"n": 6, "hi": 5.0}
    ]
    # µs since the epoch are accepted too; setting the bounds in force writes nothing
    before = versions(series, "/s/h")
    out = run_pond("set-temporal-bounds", "/s/h", "--max-time", str(T0 + 5 * H), pond=series)
    assert out.stdout.decode() == "/s/h: bounds open .. 2024-01-01T05:00:00Z (unchanged)\n"
    assert versions(series, "/s/h") == before


def test_copy_out_and_version_reads(series: Path, tmp_path: Path) -> None:
    run_pond("set-temporal-bounds", "/s/h", "--max-time", "2024-01-01T02:00:00Z", pond=series)
    run_pond("copy", "/s/h", f"host://{tmp_path}/out", pond=series)
    assert pq.read_table(tmp_path / "out" / "h").column("v").to_pylist() == [0.0, 1.0, 2.0]
    # a stored version read by number is that version as written
    assert count(series, "/s/h", "--version", "1") == 240
    assert count(series, "/s/h", "--version", "2") == 0


def mknod(root: Path, tmp_path: Path, factory: str, path: str, config: dict[str, Any]) -> None:
    cfg = tmp_path / f"{path.strip('/').replace('/', '_')}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run_pond("mknod", factory, path, "--config-path", cfg, pond=root)


def test_factories_read_the_bounded_series(series: Path, tmp_path: Path) -> None:
    # a second, unbounded series in the same union: v = 1000 .. 1009 on 2024-01-01
    append(series, "/s/g", hourly(T0, 10, first_value=1000))
    mknod(
        series,
        tmp_path,
        "sql-derived-series",
        "/d/doubled",
        {"patterns": {"r": "/s/*"}, "query": "SELECT timestamp, v * 2 AS w FROM r"},
    )
    mknod(
        series,
        tmp_path,
        "temporal-reduce",
        "/r",
        {
            "in_pattern": "/s/*",
            "resolutions": ["1d"],
            "aggregations": [
                {"type": "count", "columns": ["v"]},
                {"type": "sum", "columns": ["v"]},
            ],
        },
    )
    day = 'SELECT CAST(timestamp AS VARCHAR) AS t, "v.count" AS n, "v.sum" AS s FROM source'
    assert len(query(series, "/r/h/res=1d.series", day + " ORDER BY t")) == 10
    run_pond(
        "set-temporal-bounds",
        "/s/h",
        "--min-time",
        "2024-01-02T12:00:00Z",
        "--max-time",
        "2024-01-03T23:59:59Z",
        pond=series,
    )
    assert query(series, "/d/doubled", "SELECT count(*) AS n, sum(w) AS s FROM source") == [
        {"n": 36 + 10, "s": 2.0 * (sum(range(36, 72)) + sum(range(1000, 1010)))}
    ]
    got = query(series, "/r/h/res=1d.series", day + " ORDER BY t")
    assert [(r["n"], r["s"]) for r in got] == [
        (12, float(sum(range(36, 48)))),
        (24, float(sum(range(48, 72)))),
    ]
    # clearing them: the derived nodes see every row again
    run_pond("set-temporal-bounds", "/s/h", "--clear", pond=series)
    assert query(series, "/d/doubled", "SELECT count(*) AS n FROM source") == [{"n": 250}]
    assert len(query(series, "/r/h/res=1d.series", day)) == 10


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["/s/nope", "--min-time", "2024-01-01"], "error: no such file or directory: /s/nope\n", 1),
        (
            ["/t", "--min-time", "2024-01-01"],
            "error: /t is a file:table:physical, not a series\n",
            1,
        ),
        (
            ["/s/h", "--min-time", "2024-01-05", "--max-time", "2024-01-04"],
            "error: --min-time 2024-01-05T00:00:00Z is after --max-time 2024-01-04T00:00:00Z\n",
            2,
        ),
        (
            ["/s/h", "--min-time", "yesterday"],
            "error: not a time: 'yesterday' (use ISO 8601 or µs since epoch)\n",
            2,
        ),
        (["/s/h"], "error: give --min-time and/or --max-time, or --clear\n", 2),
        (
            ["/s/h", "--clear", "--max-time", "2024-01-01"],
            "error: --clear takes no --min-time or --max-time\n",
            2,
        ),
    ],
)
def test_bad_input_changes_nothing(series: Path, args: list[str], message: str, code: int) -> None:
    with Pond.open(series).transaction() as tx:
        tx.write_table("/t", hourly(T0, 2))
    out = run_pond("set-temporal-bounds", *args, pond=series, check=code)
    assert out.stderr.decode() == message
    assert versions(series, "/s/h") == 1
    assert count(series, "/s/h") == 240


def test_a_derived_series_is_refused(series: Path, tmp_path: Path) -> None:
    mknod(
        series,
        tmp_path,
        "sql-derived-series",
        "/d/copy",
        {"patterns": {"r": "/s/h"}, "query": "SELECT * FROM r"},
    )
    out = run_pond(
        "set-temporal-bounds", "/d/copy", "--min-time", "2024-01-02", pond=series, check=1
    )
    assert out.stderr.decode() == (
        "error: /d/copy is derived: bound its stored inputs (a derived series follows them)\n"
    )


def test_the_site_charts_the_bounded_series(series: Path, tmp_path: Path) -> None:
    run_pond("set-temporal-bounds", "/s/h", "--max-time", "2024-01-02T23:00:00Z", pond=series)
    out = tmp_path / "site"
    run_pond("site", "build", out, pond=series)
    index = (out / "index.html").read_text()
    assert "v = 47" in index and "2024-01-02 23:00:00 UTC" in index
    assert (out / "data" / "s_h" / "raw.js").read_text().count('"n":48,') == 1
    # cleared: the next build shows the whole series again
    run_pond("set-temporal-bounds", "/s/h", "--clear", pond=series)
    run_pond("site", "build", out, pond=series)
    index = (out / "index.html").read_text()
    assert "v = 239" in index and "2024-01-10 23:00:00 UTC" in index
    assert (out / "data" / "s_h" / "raw.js").read_text().count('"n":240,') == 1
