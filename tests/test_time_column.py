"""A series remembers its time column (issue 22 item 4): set once on copy (`--time-column`,
apply's `time_column`), factories stop repeating it, an explicit one still wins and a
missing one is a one-line error; CSV times that are not ISO 8601 load with `--time-format`
(copy, apply, the library), and a value that does not match is a one-line error naming its
line and value, the pond unchanged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml
from conftest import run_pond

from duckpond.errors import FormatError, PondUsageError
from duckpond.pond import Pond

# EWR-like hourly weather, with the time in a column no name rule would pick
WEATHER = (
    "origin,time_hour,temp,humid\n"
    "EWR,2013-01-01T05:00:00Z,39.02,59.37\n"
    "EWR,2013-01-01T06:00:00Z,39.02,61.63\n"
    "EWR,2013-01-01T07:00:00Z,39.02,64.43\n"
    "EWR,2013-01-02T05:00:00Z,37.94,62.21\n"
)
# DuckPond's example data writes dates with slashes; another writes US times
SLASHED = "date,station,tmax\n2012/01/01,EWR,12.8\n2012/01/02,EWR,10.6\n2012/01/03,EWR,11.7\n"
US_TIMES = "reading,when,level\n1,01/02/2012 13:00,4.5\n2,01/02/2012 14:00,4.25\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def reduce_yaml(tmp_path: Path, **extra: object) -> Path:
    cfg = {
        "in_pattern": "/weather/*",
        "resolutions": ["1d"],
        "aggregations": [{"type": "avg", "columns": ["temp"]}],
        **extra,
    }
    return write(tmp_path, "reduce.yaml", yaml.safe_dump(cfg))


def test_reduce_uses_the_time_column_the_series_was_copied_with(
    tmp_path: Path, pond_dir: Path
) -> None:
    csv = write(tmp_path, "ewr.csv", WEATHER.replace("time_hour", "hour"))
    run_pond(
        "copy",
        f"host+csv+series://{csv}",
        "/weather/EWR",
        "--time-column",
        "hour",
        "-p",
        pond=pond_dir,
    )
    described = json.loads(
        run_pond("describe", "/weather/EWR", "--format", "json", pond=pond_dir).stdout
    )
    assert described["time_column"] == "hour"
    run_pond(
        "mknod", "temporal-reduce", "/r", "--config-path", reduce_yaml(tmp_path), pond=pond_dir
    )
    out = run_pond("cat", "/r/EWR/res=1d.series", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [
        {"hour": "2013-01-01T00:00:00.000000Z", "temp.avg": 39.02},
        {"hour": "2013-01-02T00:00:00.000000Z", "temp.avg": 37.94},
    ]
    # the library reads the same through the remembered column
    pond = Pond.open(pond_dir)
    table = pond.read_table("/r/EWR/res=1d.series")
    assert table.column_names == ["hour", "temp.avg"]
    assert table.column("temp.avg").to_pylist() == [39.02, 37.94]


def test_an_explicit_time_column_wins_and_a_missing_one_is_one_line(
    tmp_path: Path, pond_dir: Path
) -> None:
    csv = write(
        tmp_path,
        "ewr.csv",
        "origin,time_hour,temp,at\n"
        "EWR,2013-01-01T23:00:00Z,10,2013-01-02T01:00:00Z\n"
        "EWR,2013-01-02T00:00:00Z,20,2013-01-02T02:00:00Z\n",
    )
    pond = Pond.open(pond_dir)
    pond.copy_in([f"host+csv+series://{csv}"], "/weather/EWR", parents=True)
    pond.mknod("temporal-reduce", "/r", reduce_yaml(tmp_path, time_column="at").read_bytes())
    pond.mknod("temporal-reduce", "/own", reduce_yaml(tmp_path).read_bytes())
    out = run_pond("cat", "/r/EWR/res=1d.series", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [{"at": "2013-01-02T00:00:00.000000Z", "temp.avg": 15.0}]
    # the remembered one buckets by time_hour instead
    own = pond.read_table("/own/EWR/res=1d.series")
    assert own.column_names == ["time_hour", "temp.avg"]
    assert [str(t) for t in own.column("time_hour").to_pylist()] == [
        "2013-01-01 00:00:00+00:00",
        "2013-01-02 00:00:00+00:00",
    ]
    assert own.column("temp.avg").to_pylist() == [10.0, 20.0]
    # checked at mknod: the node is refused, the pond unchanged
    before = [e.path for e in pond.list()]
    bad = reduce_yaml(tmp_path, time_column="nope")
    err = run_pond("mknod", "temporal-reduce", "/bad", "--config-path", bad, pond=pond_dir, check=1)
    assert err.stderr.decode() == (
        "error: /bad/EWR/res=1d.series: time column 'nope' not in /weather/EWR\n"
    )
    pond.refresh()
    assert [e.path for e in pond.list()] == before


def test_time_format_loads_slashed_dates_through_the_cli(tmp_path: Path, pond_dir: Path) -> None:
    csv = write(tmp_path, "tmax.csv", SLASHED)
    run_pond(
        "copy", f"host+csv+series://{csv}", "/daily", "--time-format", "%Y/%m/%d", pond=pond_dir
    )
    out = run_pond("cat", "/daily", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [
        {"date": "2012-01-01T00:00:00.000000", "station": "EWR", "tmax": 12.8},
        {"date": "2012-01-02T00:00:00.000000", "station": "EWR", "tmax": 10.6},
        {"date": "2012-01-03T00:00:00.000000", "station": "EWR", "tmax": 11.7},
    ]
    described = json.loads(run_pond("describe", "/daily", "--format", "json", pond=pond_dir).stdout)
    assert described["time_column"] == "date"
    assert described["versions"][0]["min_event_time"] == "2012-01-01T00:00:00Z"
    assert described["versions"][0]["max_event_time"] == "2012-01-03T00:00:00Z"


def test_time_format_in_the_library(tmp_path: Path, pond_dir: Path) -> None:
    csv = write(tmp_path, "levels.csv", US_TIMES)
    pond = Pond.open(pond_dir)
    pond.copy_in(
        [f"host+csv+series://{csv}"], "/levels", time_column="when", time_format="%m/%d/%Y %H:%M"
    )
    t = pond.read_table("/levels")
    assert [str(v) for v in t.column("when").to_pylist()] == [
        "2012-01-02 13:00:00",
        "2012-01-02 14:00:00",
    ]
    assert t.column("level").to_pylist() == [4.5, 4.25]
    assert pond.describe("/levels").time_column == "when"


@pytest.mark.parametrize("compressed", [False, True])
def test_a_value_not_matching_the_time_format_is_one_line_and_changes_nothing(
    tmp_path: Path, pond_dir: Path, compressed: bool
) -> None:
    text = US_TIMES + "3,01/02/2012 3pm,4.0\n4,01/02/2012 16:00,3.75\n"
    if compressed:  # the streamed conversion
        csv = tmp_path / "levels.csv.gz"
        csv.write_bytes(gzip.compress(text.encode()))
        url = f"host+csv+gzip+series://{csv}"
    else:
        csv = write(tmp_path, "levels.csv", text)
        url = f"host+csv+series://{csv}"
    before = run_pond("list", "-l", "/", pond=pond_dir).stdout
    for extra in ([], ["--time-column", "when"]):
        bad = run_pond(
            "copy",
            url,
            "/levels",
            "--time-format",
            "%m/%d/%Y %H:%M",
            *extra,
            pond=pond_dir,
            check=1,
        )
        assert bad.stderr.decode() == (
            f"error: {csv}: line 4: '01/02/2012 3pm' in column 'when' does not match "
            "--time-format '%m/%d/%Y %H:%M'\n"
        )
    assert run_pond("list", "-l", "/", pond=pond_dir).stdout == before
    pond = Pond.open(pond_dir)
    with pytest.raises(FormatError, match="line 4: '01/02/2012 3pm' in column 'when'"):
        pond.copy_in([url], "/levels", time_format="%m/%d/%Y %H:%M")
    assert pond.lookup("/levels") is None


def test_bad_time_format_uses_are_one_line(tmp_path: Path, pond_dir: Path) -> None:
    csv = write(tmp_path, "tmax.csv", SLASHED)
    none = run_pond(
        "copy", f"host+csv+series://{csv}", "/d", "--time-format", "%H:%M", pond=pond_dir, check=1
    )
    assert none.stderr.decode() == (
        f"error: {csv}: no column holds times matching --time-format '%H:%M'\n"
    )
    plain = run_pond(
        "copy",
        f"host+csv+series://{csv}",
        "/d",
        "--time-format",
        "slashes",
        pond=pond_dir,
        check=2,
    )
    assert plain.stderr.decode() == (
        "error: time format 'slashes' has no % field (strptime syntax: %Y/%m/%d %H:%M)\n"
    )
    parquet = tmp_path / "x.parquet"
    with pytest.raises(PondUsageError, match="--time-format reads CSV sources"):
        Pond.open(pond_dir).copy_in([f"host+series://{parquet}"], "/d", time_format="%Y/%m/%d")


def test_apply_copies_take_time_column_and_time_format(tmp_path: Path, pond_dir: Path) -> None:
    slashed = write(tmp_path, "tmax.csv", SLASHED.replace("date,", "day,"))
    weather = write(tmp_path, "ewr.csv", WEATHER.replace("time_hour", "hour"))
    docs = [
        {
            "version": "v1",
            "kind": "copy",
            "metadata": {"path": "/weather/EWR"},
            "spec": {"source": f"host+csv+series://{weather}", "time_column": "hour"},
        },
        {
            "version": "v1",
            "kind": "copy",
            "metadata": {"path": "/daily/EWR"},
            "spec": {
                "source": f"host+csv+series://{slashed}",
                "time_format": "%Y/%m/%d",
                "time_column": "day",
            },
        },
    ]
    manifest = write(tmp_path, "pond.yaml", yaml.safe_dump_all(docs))
    run_pond("apply", "-f", manifest, pond=pond_dir)
    pond = Pond.open(pond_dir)
    assert pond.describe("/weather/EWR").time_column == "hour"
    assert pond.describe("/daily/EWR").time_column == "day"
    assert [str(v) for v in pond.read_table("/daily/EWR").column("day").to_pylist()] == [
        "2012-01-01 00:00:00",
        "2012-01-02 00:00:00",
        "2012-01-03 00:00:00",
    ]
    # applied again: nothing to do (the same conversion compares equal)
    again = run_pond("apply", "-f", manifest, "--format", "json", pond=pond_dir)
    assert {p["action"] for p in json.loads(again.stdout)} == {"unchanged"}

    docs[1]["spec"]["source"] = f"host+series://{tmp_path}/x.parquet"
    write(tmp_path, "pond.yaml", yaml.safe_dump_all(docs))
    bad = run_pond("apply", "-f", manifest, pond=pond_dir, check=None)
    assert bad.returncode != 0
    assert bad.stderr.decode().startswith("error: ")
    assert "spec.time_format reads CSV sources without options" in bad.stderr.decode()
    assert bad.stderr.decode().count("\n") == 1


def test_a_sql_derived_series_keeps_its_inputs_time_column(tmp_path: Path, pond_dir: Path) -> None:
    csv = write(tmp_path, "ewr.csv", WEATHER.replace("time_hour", "hour"))
    pond = Pond.open(pond_dir)
    pond.copy_in([f"host+csv+series://{csv}"], "/raw/EWR", time_column="hour", parents=True)
    # two timestamp columns come out: the input's own time column is the series', not the first
    query = "SELECT hour + INTERVAL 1 DAY AS next_day, hour, temp FROM w"
    cfg = {"patterns": {"w": "/raw/EWR"}, "query": query}
    pond.mknod("sql-derived-series", "/weather/EWR", yaml.safe_dump(cfg).encode())
    assert pond.describe("/weather/EWR").time_column == "hour"
    pond.mknod(
        "temporal-reduce",
        "/r",
        yaml.safe_dump(
            {
                "in_pattern": "/weather/*",
                "resolutions": ["1d"],
                "aggregations": [{"type": "avg", "columns": ["temp"]}],
            }
        ).encode(),
    )
    out = run_pond("cat", "/r/EWR/res=1d.series", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [
        {"hour": "2013-01-01T00:00:00.000000Z", "temp.avg": 39.02},
        {"hour": "2013-01-02T00:00:00.000000Z", "temp.avg": 37.94},
    ]


def test_join_and_pivot_use_the_time_column_their_inputs_remember(
    tmp_path: Path, pond_dir: Path
) -> None:
    pond = Pond.open(pond_dir)
    for site, temp in (("EWR", "39.0"), ("JFK", "41.0")):
        csv = write(tmp_path, f"{site}.csv", f"time_hour,temp\n2013-01-01T05:00:00Z,{temp}\n")
        pond.copy_in([f"host+csv+series://{csv}"], f"/weather/{site}", parents=True)
    pivot = {"pattern": "/weather/*", "columns": ["temp"]}
    pond.mknod("timeseries-pivot", "/wide", yaml.safe_dump(pivot).encode())
    out = run_pond("cat", "/wide", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [
        {"time_hour": "2013-01-01T05:00:00.000000Z", "EWR.temp": 39.0, "JFK.temp": 41.0}
    ]
    # inputs remembering different columns: the config must say which
    csv = write(tmp_path, "LGA.csv", "at,temp\n2013-01-01T05:00:00Z,40.0\n")
    pond.copy_in([f"host+csv+series://{csv}"], "/weather/LGA")
    bad = run_pond("cat", "/wide", pond=pond_dir, check=1)
    assert bad.stderr.decode() == (
        "error: /wide: the inputs have different time columns (/weather/EWR: time_hour, "
        "/weather/JFK: time_hour, /weather/LGA: at); name one with time_column\n"
    )
    join = {"inputs": [{"pattern": "/weather/EWR", "scope": "ewr"}]}
    pond.mknod("timeseries-join", "/joined", yaml.safe_dump(join).encode())
    assert pond.describe("/joined").time_column == "time_hour"
