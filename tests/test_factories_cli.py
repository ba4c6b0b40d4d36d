"""Data factories through the real CLI: the pipeline (two synthetic stations -> join ->
pivot -> temporal-reduce at five resolutions -> template) declared with `pond apply`, then
read with list, cat, describe and copy out (issue 9)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_pond

PIPELINE = """\
version: v1
kind: mknod
metadata: {path: /reports}
spec:
  factory: template
  config:
    in_pattern: /reduced/*/res=*.series
    out_pattern: $0-$1.md
    template: |
      # {{ captures[0] }} at {{ captures[1] }}
      {% for f in schema %}- {{ f.name }}
      {% endfor %}
---
version: v1
kind: mknod
metadata: {path: /reduced}
spec:
  factory: temporal-reduce
  config:
    in_pattern: series:///derived/*
    out_pattern: $0
    resolutions: [1h, 2h, 4h, 12h, 1d]
    aggregations:
      - {type: avg}
      - {type: count, columns: [north.temp]}
---
version: v1
kind: mknod
metadata: {path: /derived/wide}
spec:
  factory: timeseries-pivot
  config:
    pattern: /derived/joined
    columns: [north.temp, south.temp]
---
version: v1
kind: mknod
metadata: {path: /derived/joined}
spec:
  factory: timeseries-join
  config:
    inputs:
      - {pattern: /stations/north, scope: north}
      - {pattern: /stations/south, scope: south}
      - {pattern: /stations/east*, scope: east}
---
version: v1
kind: mknod
metadata: {path: /stations/north}
spec:
  factory: synthetic-timeseries
  config:
    start: 2024-01-01T00:00:00Z
    end: 2024-01-01T23:45:00Z
    interval: 15m
    points:
      - name: temp
        components: [{type: line, slope: 0.001, offset: 10}]
      - name: humidity
        components: [{type: square, amplitude: 10, offset: 50, period: 12h}]
---
version: v1
kind: mknod
metadata: {path: /stations/south}
spec:
  factory: synthetic-timeseries
  config:
    start: 2024-01-01T06:00:00Z
    end: 2024-01-01T23:45:00Z
    interval: 15m
    points:
      - name: temp
        components: [{type: sine, amplitude: 5, period: 1d, offset: 20}]
"""

T0 = 1_704_067_200_000_000
RES_ROWS = {"1h": 24, "2h": 12, "4h": 6, "12h": 2, "1d": 1}


def north_temp(quarter: int) -> float:
    return 10 + 0.001 * quarter * 900


@pytest.fixture
def pipeline(pond_dir: Path, tmp_path: Path) -> Path:
    f = tmp_path / "pipeline.yaml"
    f.write_text(PIPELINE)
    out = run_pond("apply", "-f", f, "--format", "json", pond=pond_dir)
    plan = json.loads(out.stdout)
    assert [(p["kind"], p["action"]) for p in plan] == [("mknod", "created")] * 6
    assert [p["path"] for p in plan][:2] == ["/reduced", "/reports"]  # depth, then name
    return f


def cat_json(pond: Path, path: str, *args: str) -> list[dict]:
    return json.loads(run_pond("cat", path, "--format", "json", *args, pond=pond).stdout)


def test_pipeline_end_to_end(pond_dir: Path, pipeline: Path, tmp_path: Path) -> None:
    # list: dynamic directories list their children; globs descend into them
    listed = json.loads(run_pond("list", "/reduced/**", "--format", "json", pond=pond_dir).stdout)
    series = [e["path"] for e in listed if e["type"] == "file:series:dynamic"]
    assert series == [
        f"/reduced/{site}/res={r}.series" for site in ("joined", "wide") for r in sorted(RES_ROWS)
    ]
    reports = run_pond("list", "/reports/", pond=pond_dir).stdout.decode().split()
    assert reports == [f"/reports/{s}-{r}.md" for s in ("joined", "wide") for r in sorted(RES_ROWS)]

    # the join: a full outer join over time; south starts at 06:00, east matches nothing
    joined = cat_json(pond_dir, "/derived/joined")
    assert len(joined) == 96
    assert list(joined[0]) == ["timestamp", "north.temp", "north.humidity", "south.temp"]
    # t counts from each generator's own start: south's sine peaks 6 h after 06:00
    assert joined[0]["south.temp"] is None and joined[24]["south.temp"] == pytest.approx(20.0)
    assert joined[48]["south.temp"] == pytest.approx(25.0)
    assert joined[0]["north.humidity"] == 60.0 and joined[36]["north.humidity"] == 40.0

    # the pivot renames by the matched node's name
    wide = cat_json(pond_dir, "/derived/wide", "--sql", "SELECT * FROM source LIMIT 1")
    assert list(wide[0]) == ["timestamp", "joined.north.temp", "joined.south.temp"]

    # temporal-reduce at five resolutions: exact row counts and values
    for res, rows in RES_ROWS.items():
        got = cat_json(
            pond_dir, f"/reduced/wide/res={res}.series", "--sql", "SELECT count(*) AS n FROM source"
        )
        assert got == [{"n": rows}]
    hourly = cat_json(pond_dir, "/reduced/wide/res=1h.series")
    for h, row in enumerate(hourly):
        want = sum(north_temp(4 * h + q) for q in range(4)) / 4
        assert row["joined.north.temp.avg"] == pytest.approx(want)
    assert hourly[0]["timestamp"] == "2024-01-01T00:00:00.000000Z"
    day = cat_json(pond_dir, "/reduced/joined/res=1d.series")
    assert day[0]["north.temp.count"] == 96
    assert day[0]["south.temp.avg"] == pytest.approx(
        sum(20 + 5 * math.sin(2 * math.pi * q * 900 / 86400) for q in range(72)) / 72
    )

    # a time window reaches the derived series
    win = cat_json(
        pond_dir,
        "/reduced/wide/res=2h.series",
        "--time-start",
        "2024-01-01T04:00:00Z",
        "--time-end",
        "2024-01-01T09:59:59Z",
    )
    assert [r["timestamp"] for r in win] == [
        "2024-01-01T04:00:00.000000Z",
        "2024-01-01T06:00:00.000000Z",
        "2024-01-01T08:00:00.000000Z",
    ]
    csv = run_pond(
        "cat",
        "/derived/joined",
        "--format",
        "csv",
        "--time-start",
        str(T0),
        "--time-end",
        str(T0 + 900_000_000),
        pond=pond_dir,
    ).stdout
    assert csv.decode().splitlines()[0] == '"timestamp","north.temp","north.humidity","south.temp"'
    assert len(csv.decode().splitlines()) == 3
    parquet = run_pond("cat", "/stations/north", "--format", "parquet", pond=pond_dir).stdout
    assert pq.read_table(io.BytesIO(parquet)).num_rows == 96

    # the template renders one text per reduced series
    text = run_pond("cat", "/reports/wide-1h.md", pond=pond_dir).stdout.decode()
    # (count of north.temp is skipped: /derived/wide has no such column)
    assert text == (
        "# wide at 1h\n- timestamp\n- joined.north.temp.avg\n- joined.south.temp.avg\n\n"
    )

    # describe: factory, config and the resulting schema
    d = json.loads(
        run_pond("describe", "/derived/joined", "--format", "json", pond=pond_dir).stdout
    )
    assert d["type"] == "file:series:dynamic" and d["factory"] == "timeseries-join"
    assert d["config"]["inputs"][0] == {"pattern": "/stations/north", "scope": "north"}
    assert [f["name"] for f in d["schema"]] == [
        "timestamp",
        "north.temp",
        "north.humidity",
        "south.temp",
    ]
    assert [v["version"] for v in d["versions"]] == [1]
    child = json.loads(
        run_pond(
            "describe", "/reduced/wide/res=1d.series", "--format", "json", pond=pond_dir
        ).stdout
    )
    assert child["factory"] == "temporal-reduce" and child["schema"][0] == {
        "name": "timestamp",
        "type": "timestamp[us, tz=UTC]",
    }

    # copy out: derived series as Parquet, rendered texts as they are
    out = tmp_path / "out"
    run_pond("copy", "/reduced/wide/*", f"host://{out}", pond=pond_dir)
    assert sorted(p.name for p in out.iterdir()) == [f"res={r}.series" for r in sorted(RES_ROWS)]
    assert pq.read_table(out / "res=4h.series").num_rows == 6
    run_pond("copy", "/reports/*", f"host://{tmp_path / 'docs'}", pond=pond_dir)
    assert (tmp_path / "docs" / "wide-1h.md").read_text() == text

    # applying the same file again changes nothing and commits nothing
    again = json.loads(run_pond("apply", "-f", pipeline, "--format", "json", pond=pond_dir).stdout)
    assert {p["action"] for p in again} == {"unchanged"}


def test_derived_nodes_refuse_writes(pond_dir: Path, pipeline: Path, tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    for target in ("/derived/joined", "/reduced/wide/res=1h.series", "/reduced/wide/new"):
        proc = run_pond("copy", f"host://{src}", target, pond=pond_dir, check=1)
        err = proc.stderr.decode().strip()
        assert err.startswith("error: ") and "\n" not in err
    proc = run_pond(
        "cat", "/derived/joined", "--version", "1", "--format", "json", pond=pond_dir, check=1
    )
    assert b"derived" in proc.stderr


def test_apply_dry_run_and_errors(pond_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(PIPELINE)
    plan = run_pond("apply", "-f", f, "--dry-run", pond=pond_dir).stdout.decode().splitlines()
    assert len(plan) == 6 and all(line.startswith("created") for line in plan)
    assert run_pond("list", "/**", pond=pond_dir).stdout.decode().split() == ["/"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(PIPELINE.replace("type: avg", "type: mean"))
    proc = run_pond("apply", "-f", bad, pond=pond_dir, check=1)
    assert b"unknown aggregation 'mean'" in proc.stderr
    cyc = tmp_path / "cycle.yaml"
    cyc.write_text(
        "version: v1\nkind: mknod\nmetadata: {path: /a}\nspec: {factory: sql-derived-table,"
        " config: {patterns: {b: /b}, query: SELECT * FROM b}}\n---\n"
        "version: v1\nkind: mknod\nmetadata: {path: /b}\nspec: {factory: sql-derived-table,"
        " config: {patterns: {a: /a}, query: SELECT * FROM a}}\n"
    )
    proc = run_pond("apply", "-f", cyc, pond=pond_dir, check=1)
    assert b"cycle between derived nodes" in proc.stderr
    assert run_pond("list", "/**", pond=pond_dir).stdout.decode().split() == ["/"]


def test_list_factories_describes_data_factories() -> None:
    out = json.loads(run_pond("list-factories", "--format", "json").stdout)
    kinds = {f["name"]: f["kind"] for f in out}
    for name in (
        "synthetic-timeseries",
        "sql-derived-table",
        "sql-derived-series",
        "temporal-reduce",
        "timeseries-join",
        "timeseries-pivot",
        "dynamic-dir",
        "template",
    ):
        assert kinds[name] == "data"
