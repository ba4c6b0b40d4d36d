"""temporal-reduce's calendar resolutions (issue 22 item 4): `1w` (ISO weeks from Monday),
`1mo`, `3mo`, `1y`, and `timezone:` for local days, checked against DuckDB's own
`time_bucket`/`date_trunc` in the same zone on the same data; DST days of 23 and 25 hours
are one bucket each; sealing stays exact with buckets of uneven length.

The data is EWR-like: hourly temperatures for 2013 in °F, in halves so that every sum is
exact and DuckDB and pond must agree to the last bit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond.dynamic import Resolver
from duckpond.errors import FactoryError
from duckpond.pond import Pond

H = 3_600_000_000
NY = "America/New_York"
UTC = dt.UTC


def us(text: str) -> int:
    t = dt.datetime.fromisoformat(text)
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000


def iso(micros: int) -> str:
    t = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=micros)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def hourly(start: str, end: str) -> pa.Table:
    """One temperature an hour in [start, end): a daily swing (warmest at 20:00Z, 15:00 in
    New York) on a seasonal curve, in halves of a degree."""
    lo, hi = us(start), us(end)
    times = list(range(lo, hi, H))
    temps = []
    for t in times:
        day = (t // (24 * H)) % 365
        hour = (t // H) % 24
        seasonal = 76 - 44 * abs(day - 196) / 182  # warmest mid-July
        swing = 9 - abs(hour - 20 if hour >= 8 else hour + 4) * 0.75
        temps.append(round((seasonal + swing) * 2) / 2)
    return pa.table(
        {
            "time_hour": pa.array(times, pa.timestamp("us", tz="UTC")),
            "temp": pa.array(temps, pa.float64()),
        }
    )


def reduce_config(resolutions: list[str], **extra: Any) -> bytes:
    cfg = {
        "in_pattern": "/weather/*",
        "resolutions": resolutions,
        "aggregations": [
            {"type": "avg", "columns": ["temp"]},
            {"type": "min", "columns": ["temp"]},
            {"type": "count", "columns": ["temp"]},
        ],
        **extra,
    }
    return yaml.safe_dump(cfg).encode()


def read(pond: Pond, path: str, **window: int) -> list[tuple[str, float, float, int]]:
    pond.refresh()
    t = Resolver.for_pond(pond, cache=False).require(path).scan(**window)
    assert t.schema.names == ["time_hour", "temp.avg", "temp.min", "temp.count"]
    assert t.schema.field("time_hour").type == pa.timestamp("us", tz="UTC")
    return [
        (iso(b), a, m, c)
        for b, a, m, c in zip(
            t.column("time_hour").cast(pa.int64()).to_pylist(),
            t.column("temp.avg").to_pylist(),
            t.column("temp.min").to_pylist(),
            t.column("temp.count").to_pylist(),
            strict=True,
        )
    ]


def duckdb_buckets(
    table: pa.Table, bucket_sql: str, zone: str = "UTC"
) -> list[tuple[str, float, float, int]]:
    """The same reduction by DuckDB, `bucket_sql` over the column `time_hour`, with the
    session's TimeZone set to `zone` (what date_trunc on a TIMESTAMPTZ uses)."""
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{zone}'")
    con.register("weather", table)
    rows = con.execute(
        f"SELECT epoch_us({bucket_sql}) AS b, avg(temp), min(temp), count(temp) "
        "FROM weather GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [(iso(b), a, m, c) for b, a, m, c in rows]


@pytest.fixture(scope="module")
def year() -> pa.Table:
    return hourly("2013-01-01T00:00:00", "2014-01-01T00:00:00")


@pytest.fixture
def pond(tmp_path: Path, year: pa.Table) -> Pond:
    p = Pond.create(tmp_path / "pond")
    with p.transaction() as tx:
        tx.write_series("/weather/EWR", year, parents=True)
    return p


CASES = [
    ("1d", NY, "time_bucket(INTERVAL '1 day', time_hour, 'America/New_York')"),
    ("1d", NY, "date_trunc('day', time_hour)"),
    ("1w", NY, "date_trunc('week', time_hour)"),
    ("1mo", NY, "date_trunc('month', time_hour)"),
    ("3mo", NY, "time_bucket(INTERVAL '3 months', time_hour, 'America/New_York')"),
    ("1y", NY, "date_trunc('year', time_hour)"),
    ("1d", None, "time_bucket(INTERVAL '1 day', time_hour)"),
    ("1w", None, "time_bucket(INTERVAL '1 week', time_hour)"),
    ("1mo", None, "date_trunc('month', time_hour)"),
    ("3mo", None, "date_trunc('quarter', time_hour)"),
]


@pytest.mark.parametrize(("res", "zone", "bucket_sql"), CASES)
def test_calendar_buckets_equal_duckdb(
    pond: Pond, year: pa.Table, res: str, zone: str | None, bucket_sql: str
) -> None:
    extra = {"timezone": zone} if zone else {}
    pond.mknod("temporal-reduce", "/r", reduce_config([res], **extra))
    want = duckdb_buckets(year, bucket_sql, zone or "UTC")
    assert read(pond, f"/r/EWR/res={res}.series") == want
    # and again from the seals the first read saved
    assert read(pond, f"/r/EWR/res={res}.series") == want


def test_july_4th_local_day_differs_from_the_utc_day(pond: Pond, year: pa.Table) -> None:
    pond.mknod("temporal-reduce", "/local", reduce_config(["1d"], timezone=NY))
    pond.mknod("temporal-reduce", "/utc", reduce_config(["1d"]))
    july4 = {"start": us("2013-07-04T00:00:00"), "end": us("2013-07-05T12:00:00")}
    local = read(pond, "/local/EWR/res=1d.series", **july4)
    utc = read(pond, "/utc/EWR/res=1d.series", **july4)
    # the window holds whole buckets: local July 4th starts at 04:00Z (EDT)
    assert local == [
        ("2013-07-04T04:00:00Z", 80.39583333333333, 76.0, 24),
        ("2013-07-05T04:00:00Z", 80.47916666666667, 76.0, 24),
    ]
    assert utc == [
        ("2013-07-04T00:00:00Z", 80.375, 76.0, 24),
        ("2013-07-05T00:00:00Z", 80.5, 76.0, 24),
    ]
    # DuckDB says the same of the same hours
    assert local[0] in duckdb_buckets(year, "date_trunc('day', time_hour)", NY)
    assert utc[0] in duckdb_buckets(year, "date_trunc('day', time_hour)", "UTC")


def test_dst_days_are_one_bucket_of_23_and_25_hours(pond: Pond) -> None:
    pond.mknod("temporal-reduce", "/r", reduce_config(["1d"], timezone=NY))
    rows = {b: c for b, _, _, c in read(pond, "/r/EWR/res=1d.series")}
    assert rows["2013-03-09T05:00:00Z"] == 24  # EST
    assert rows["2013-03-10T05:00:00Z"] == 23  # spring forward: 05:00Z to 04:00Z
    assert rows["2013-03-11T04:00:00Z"] == 24  # EDT
    assert rows["2013-11-03T04:00:00Z"] == 25  # fall back: 04:00Z to 05:00Z
    assert rows["2013-11-04T05:00:00Z"] == 24
    assert len(rows) == 365 + 1  # the last 5 UTC hours of 2013 are New York's Dec 31st
    assert sum(rows.values()) == 8760


def test_weeks_start_on_monday_without_a_timezone(pond: Pond) -> None:
    pond.mknod("temporal-reduce", "/r", reduce_config(["1w", "7d"]))
    weeks = read(pond, "/r/EWR/res=1w.series")
    assert weeks[0][0] == "2012-12-31T00:00:00Z"  # the Monday of 2013-01-01's ISO week
    assert weeks[1][0] == "2013-01-07T00:00:00Z"
    assert {dt.datetime.fromisoformat(b).weekday() for b, *_ in weeks} == {0}
    # `7d` stays a fixed width on the epoch, which was a Thursday
    fixed = read(pond, "/r/EWR/res=7d.series")
    assert fixed[0][0] == "2012-12-27T00:00:00Z"


def test_cli_shows_utc_starts_of_local_months(pond: Pond) -> None:
    cfg = reduce_config(["1mo"], timezone=NY)
    conf = pond.root.parent / "reduce.yaml"
    conf.write_bytes(cfg)
    run_pond("mknod", "temporal-reduce", "/r", "--config-path", conf, pond=pond.root)
    out = run_pond(
        "cat",
        "/r/EWR/res=1mo.series",
        "--format",
        "json",
        "--time-start",
        "2013-03-01T05:00:00Z",
        "--time-end",
        "2013-04-01T03:59:59Z",
        pond=pond.root,
    )
    assert json.loads(out.stdout) == [
        {
            "time_hour": "2013-03-01T05:00:00.000000Z",
            "temp.avg": 53.71265141318977,
            "temp.min": 45.5,
            "temp.count": 743,
        }
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"timezone": "America/Nowhere"},
            "temporal-reduce: timezone 'America/Nowhere' is not a known IANA time zone "
            "(like America/New_York or UTC)",
        ),
        (
            {"resolutions": ["5mo"]},
            "temporal-reduce: resolution '5mo': a month resolution must divide a year "
            "(1mo, 2mo, 3mo, 4mo, 6mo, 12mo)",
        ),
        (
            {"resolutions": ["3y"]},
            "temporal-reduce: resolution '3y': a year resolution is 1y, 2y, 5y, 10y",
        ),
        (
            {"resolutions": ["1q"]},
            "temporal-reduce: resolution '1q' is not a resolution (use a number and ms, s, m, "
            "h, d, w, mo or y: 15m, 1h, 1d, 1w, 1mo, 1y)",
        ),
    ],
)
def test_bad_calendar_config_is_one_line_and_changes_nothing(
    pond: Pond, change: dict[str, Any], message: str
) -> None:
    cfg = yaml.safe_load(reduce_config(["1d"]))
    cfg.update(change)
    before = [e.path for e in pond.list()]
    conf = pond.root.parent / "reduce.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    bad = run_pond("mknod", "temporal-reduce", "/r", "--config-path", conf, pond=pond.root, check=1)
    assert bad.stderr.decode() == f"error: {message}\n"
    pond.refresh()
    assert [e.path for e in pond.list()] == before
    with pytest.raises(FactoryError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        pond.mknod("temporal-reduce", "/r", yaml.safe_dump(cfg).encode())


def manifest(root: Path) -> dict[str, Any]:
    (m,) = [json.loads(p.read_text()) for p in root.glob("sealed/*/*/manifest.json")]
    return m


def test_a_month_is_sealed_when_its_end_is_older_than_newest_minus_lateness(
    tmp_path: Path, year: pa.Table
) -> None:
    pond = Pond.create(tmp_path / "pond")
    times = year.column("time_hour").cast(pa.int64())

    def upto(lo: str, hi: str) -> pa.Table:
        import pyarrow.compute as pc

        keep = pc.and_(pc.greater_equal(times, us(lo)), pc.less(times, us(hi)))
        return year.filter(keep)

    def append(lo: str, hi: str) -> None:
        with pond.transaction() as tx:
            tx.write_series("/weather/EWR", upto(lo, hi), parents=True)

    append("2013-01-01T00:00:00", "2013-03-15T00:00:00")
    cfg = reduce_config(["1mo"], timezone=NY, allowed_lateness="1h")
    pond.mknod("temporal-reduce", "/r", cfg)
    out = "/r/EWR/res=1mo.series"
    read(pond, out)
    # newest 03-14T23:00Z: January and February (ending 03-01T05:00Z) are sealed
    assert iso(manifest(pond.root)["sealed_hi"]) == "2013-03-01T05:00:00Z"

    # newest 04-01T04:00Z (00:00 EDT) - 1h is still March: March stays open
    append("2013-03-15T00:00:00", "2013-04-01T05:00:00")
    read(pond, out)
    assert iso(manifest(pond.root)["sealed_hi"]) == "2013-03-01T05:00:00Z"
    # newest 04-01T05:00Z - 1h = 04:00Z, March's end: now it is sealed
    append("2013-04-01T05:00:00", "2013-04-01T06:00:00")
    got = read(pond, out)
    assert iso(manifest(pond.root)["sealed_hi"]) == "2013-04-01T04:00:00Z"
    assert got == duckdb_buckets(
        upto("2013-01-01", "2013-04-01T06:00:00"), "date_trunc('month', time_hour)", NY
    )

    # a late hour for (local) February is refused, naming the bucket
    with pond.transaction() as tx:
        tx.write_series("/weather/EWR", hourly("2013-02-10T00:30:00", "2013-02-10T01:00:00"))
    with pytest.raises(FactoryError) as e:
        read(pond, out)
    assert str(e.value) == (
        "/r/EWR/res=1mo.series: version 4 of /weather/EWR holds data for the sealed bucket "
        "starting 2013-02-01T05:00:00Z (resolution 1mo): buckets before 2013-04-01T04:00:00Z "
        "are sealed (allowed_lateness 1h). To take it in, run `pond run /r rebuild` (or raise "
        "allowed_lateness)"
    )
    pond.run("/r", ["rebuild"])
    rebuilt = read(pond, out)
    # New York's Dec 31st 2012 (5 hours), then February took the late hour
    assert [r[3] for r in rebuilt] == [5, 744, 673, 743, 2]
    assert rebuilt[:2] == got[:2] and rebuilt[3:] == got[3:]


def test_a_derived_input_buckets_the_same_as_a_stored_one(pond: Pond) -> None:
    derived = {"patterns": {"w": "/weather/EWR"}, "query": "SELECT * FROM w"}
    pond.mknod("sql-derived-series", "/view/EWR", yaml.safe_dump(derived).encode())
    pond.mknod("temporal-reduce", "/stored", reduce_config(["1mo", "1d"], timezone=NY))
    cfg = yaml.safe_load(reduce_config(["1mo", "1d"], timezone=NY))
    cfg["in_pattern"] = "/view/*"
    pond.mknod("temporal-reduce", "/derived", yaml.safe_dump(cfg).encode())
    for res in ("1mo", "1d"):
        assert read(pond, f"/derived/EWR/res={res}.series") == read(
            pond, f"/stored/EWR/res={res}.series"
        )
    # a window reads the whole buckets it touches: DST day and all
    window = {"start": us("2013-11-03T04:00:00"), "end": us("2013-11-03T13:00:00")}
    (day,) = read(pond, "/derived/EWR/res=1d.series", **window)
    assert day[0] == "2013-11-03T04:00:00Z" and day[3] == 25


def test_a_time_beyond_the_calendar_is_an_error_not_a_crash(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "pond")
    far = us("9999-12-31T23:00:00")
    table = pa.table(
        {
            "time_hour": pa.array([0, far], pa.timestamp("us", tz="UTC")),
            "temp": pa.array([1.0, 2.0]),
        }
    )
    with pond.transaction() as tx:
        tx.write_series("/weather/EWR", table, parents=True)
    pond.mknod("temporal-reduce", "/r", reduce_config(["1h", "1y"]))
    assert len(read(pond, "/r/EWR/res=1h.series")) == 2  # fixed widths need no calendar
    with pytest.raises(FactoryError) as e:
        read(pond, "/r/EWR/res=1y.series")
    assert str(e.value) == (
        f"/r/EWR/res=1y.series: /weather/EWR: time {far} µs since the epoch is outside the "
        "calendar (years 2 to 9998) a 1y bucket can hold"
    )


def test_apply_refuses_an_unknown_timezone_in_one_line(pond: Pond) -> None:
    doc = {
        "version": "v1",
        "kind": "mknod",
        "metadata": {"path": "/r"},
        "spec": {
            "factory": "temporal-reduce",
            "config": yaml.safe_load(reduce_config(["1d"], timezone="Mars/Olympus_Mons")),
        },
    }
    manifest = pond.root.parent / "pond.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    before = [e.path for e in pond.list()]
    bad = run_pond("apply", "-f", manifest, pond=pond.root, check=1)
    err = bad.stderr.decode()
    assert err.startswith("error: ") and err.count("\n") == 1
    assert err.endswith(
        "temporal-reduce: timezone 'Mars/Olympus_Mons' is not a known IANA time zone "
        "(like America/New_York or UTC)\n"
    )
    pond.refresh()
    assert [e.path for e in pond.list()] == before


def test_a_repeated_local_midnight_starts_the_day_at_the_first_one(
    pond: Pond, year: pa.Table
) -> None:
    # Havana falls back from 01:00 CDT to 00:00 CST: midnight of 2013-11-03 happens twice
    pond.mknod("temporal-reduce", "/r", reduce_config(["1d"], timezone="America/Havana"))
    got = read(pond, "/r/EWR/res=1d.series")
    want = duckdb_buckets(year, "date_trunc('day', time_hour)", "America/Havana")
    (day,) = [r for r in got if r[0].startswith("2013-11-03")]
    assert day[0] == "2013-11-03T04:00:00Z" and day[3] == 25
    # DuckDB groups the same rows and labels the bucket by the second midnight (05:00Z)
    assert [r for r in got if r != day] == [r for r in want if r[0] != "2013-11-03T05:00:00Z"]
    assert [r[1:] for r in want if r[0] == "2013-11-03T05:00:00Z"] == [day[1:]]
