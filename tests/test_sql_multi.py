"""`pond sql` and `Pond.sql` across pond files (issue 22 item 2): quoted pond paths, globs
and format URLs as tables, the read-only guard, the limits, unknown names."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_pond

from duckpond.errors import QueryError
from duckpond.pond import Pond

T0 = datetime(2013, 1, 1, tzinfo=UTC)
HOURS = 200
JOIN = (
    "SELECT time_hour, e.temp AS ewr, j.temp AS jfk, e.temp - j.temp AS diff "
    "FROM '/weather/EWR' AS e JOIN '/weather/JFK' AS j USING (time_hour) ORDER BY time_hour"
)


def ewr_temp(h: int) -> float:
    return round(30 + (h * 37 % 101) / 10, 2)


def jfk_temp(h: int) -> float:
    return round(28 + (h * 53 % 97) / 10, 2)


def _csv(rows: list[tuple[datetime, float]]) -> str:
    lines = ["time_hour,temp"]
    lines += [f"{t.isoformat().replace('+00:00', 'Z')},{v}" for t, v in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pond with two hourly series (JFK misses every 7th hour), a table with other
    columns, a raw CSV and a directory."""
    tmp = tmp_path_factory.mktemp("sqlmulti")
    host = tmp / "host"
    host.mkdir()
    ewr = [(T0 + timedelta(hours=h), ewr_temp(h)) for h in range(HOURS)]
    jfk = [(T0 + timedelta(hours=h), jfk_temp(h)) for h in range(HOURS) if h % 7]
    (host / "ewr.csv").write_text(_csv(ewr))
    (host / "jfk.csv").write_text(_csv(jfk))
    (host / "stations.csv").write_text("code,name\nEWR,Newark\nJFK,Kennedy\nLGA,LaGuardia\n")
    (host / "readings.csv").write_text("sensor;value\na;1.5\nb;2.5\na;4\n")
    # Loaded with the library calls `pond init`, `mkdir` and `copy` make (one each; the CLI's
    # own tests cover those commands): this file is about `pond sql`, which stays a process.
    root = tmp / "pond"
    pond = Pond.create(root)
    with pond.transaction() as tx:
        tx.mkdir("/weather/empty", parents=True)
    pond.copy_in([f"host+csv+series://{host}/ewr.csv"], "/weather/EWR")
    pond.copy_in([f"host+csv+series://{host}/jfk.csv"], "/weather/JFK")
    pond.copy_in([f"host+csv+table://{host}/stations.csv"], "/stations")
    pond.copy_in([f"host://{host}/readings.csv"], "/readings.csv")
    (host / "mean.yaml").write_text(
        'patterns: {w: "/weather/*"}\n'
        'query: "SELECT time_hour, avg(temp) AS mean FROM w GROUP BY ALL ORDER BY time_hour"\n'
    )
    with pond.transaction() as tx:
        tx.mkdir("/derived")
    pond.mknod("sql-derived-series", "/derived/mean", (host / "mean.yaml").read_bytes())
    return root


def sql_rows(pond: Path, query: str, *args: str) -> list[dict[str, object]]:
    """`pond sql QUERY` as Parquet (its default to a pipe), read back."""
    out = run_pond("sql", *args, query, pond=pond).stdout
    return pq.read_table(io.BytesIO(out)).to_pylist()


def sql_error(pond: Path, query: str, *args: str, code: int = 1) -> str:
    proc = run_pond("sql", *args, query, pond=pond, check=code)
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- quoted paths ----------------------------------------------------------------------------
def test_join_of_two_series_matches_duckdb_on_the_exported_files(
    weather: Path, tmp_path: Path
) -> None:
    for code in ("EWR", "JFK"):
        exported = run_pond("cat", "--format", "parquet", f"/weather/{code}", pond=weather)
        (tmp_path / f"{code}.parquet").write_bytes(exported.stdout)
    con = duckdb.connect()
    want = (
        con.sql(
            JOIN.replace("'/weather/EWR'", f"'{tmp_path}/EWR.parquet'").replace(
                "'/weather/JFK'", f"'{tmp_path}/JFK.parquet'"
            )
        )
        .arrow()
        .read_all()
        .to_pylist()
    )
    got = sql_rows(weather, JOIN)
    assert got == want
    # and the values themselves: every hour but JFK's missing ones, temperatures as loaded
    assert len(got) == HOURS - len(range(0, HOURS, 7)) == 171
    assert got[0] == {
        "time_hour": T0 + timedelta(hours=1),
        "ewr": 33.7,
        "jfk": 33.3,
        "diff": pytest.approx(33.7 - 33.3),
    }
    hours = [int((r["time_hour"] - T0).total_seconds()) // 3600 for r in got]  # type: ignore[operator]
    assert hours == [h for h in range(HOURS) if h % 7]
    assert [r["ewr"] for r in got] == [ewr_temp(h) for h in hours]
    assert [r["jfk"] for r in got] == [jfk_temp(h) for h in hours]


def test_library_sql_and_batches_give_the_cli_result(weather: Path) -> None:
    pond = Pond.open(weather)
    table = pond.sql(JOIN)
    assert table.to_pylist() == sql_rows(weather, JOIN)
    batches = list(pond.sql_batches(JOIN))
    assert pa.Table.from_batches(batches).to_pylist() == table.to_pylist()
    # `path` is `source` beside the quoted paths
    both = pond.sql(
        "SELECT count(*) AS n FROM source JOIN '/weather/JFK' AS j USING (time_hour)",
        path="/weather/EWR",
    )
    assert both.to_pylist() == [{"n": 171}]


def test_time_window_applies_to_every_series(weather: Path) -> None:
    got = sql_rows(
        weather,
        "SELECT count(*) AS n, min(time_hour) AS lo FROM '/weather/EWR' "
        "JOIN '/weather/JFK' USING (time_hour)",
        "--time-start",
        "2013-01-02T00:00:00Z",
        "--time-end",
        "2013-01-02T23:00:00Z",
    )
    # hours 24..47, less 28, 35 and 42 (JFK's gaps)
    assert got == [{"n": 21, "lo": T0 + timedelta(hours=24)}]
    lib = Pond.open(weather).sql(
        "SELECT count(*) AS n FROM '/weather/JFK'",
        time_start="2013-01-02T00:00:00Z",
        time_end=T0 + timedelta(hours=47),
    )
    assert lib.to_pylist() == [{"n": 21}]


def test_a_table_and_a_series_and_a_cte(weather: Path) -> None:
    got = sql_rows(
        weather,
        'WITH hot AS (SELECT count(*) AS n FROM "/weather/EWR" WHERE temp > 39) '
        "SELECT s.name, hot.n FROM '/stations' AS s, hot WHERE s.code = 'EWR'",
    )
    assert got == [{"name": "Newark", "n": sum(ewr_temp(h) > 39 for h in range(HOURS))}]


def test_a_derived_series_is_a_table_too(weather: Path) -> None:
    got = sql_rows(
        weather,
        "SELECT m.time_hour, m.mean, e.temp AS ewr FROM '/derived/mean' AS m "
        "JOIN '/weather/EWR' AS e USING (time_hour) ORDER BY time_hour LIMIT 2",
    )
    assert got == [
        {"time_hour": T0, "mean": ewr_temp(0), "ewr": ewr_temp(0)},  # JFK has no hour 0
        {
            "time_hour": T0 + timedelta(hours=1),
            "mean": pytest.approx((ewr_temp(1) + jfk_temp(1)) / 2),
            "ewr": ewr_temp(1),
        },
    ]


def test_a_relative_path_is_told_to_start_with_a_slash(weather: Path) -> None:
    assert sql_error(weather, "SELECT * FROM 'weather/EWR'") == (
        "error: no table weather/EWR: pond paths are absolute, FROM '/weather/EWR' "
        "(in /: /derived/, /stations, /weather/)"
    )


# -- globs and format URLs -------------------------------------------------------------------
def test_glob_is_the_union_by_name_with_a_filename_column(weather: Path) -> None:
    got = sql_rows(
        weather,
        "SELECT filename, count(*) AS n, round(sum(temp), 2) AS total "
        "FROM '/weather/*' GROUP BY filename ORDER BY filename",
    )
    jfk_hours = [h for h in range(HOURS) if h % 7]
    assert got == [
        {"filename": "/weather/EWR", "n": 200, "total": round(sum(map(ewr_temp, range(200))), 2)},
        {"filename": "/weather/JFK", "n": 171, "total": round(sum(map(jfk_temp, jfk_hours)), 2)},
    ]
    # tables with other columns join the union by name: their missing columns are null
    mixed = sql_rows(
        weather,
        "SELECT filename, count(*) AS n, count(temp) AS temps, count(code) AS codes "
        "FROM '/**/*' GROUP BY ALL ORDER BY filename",
    )
    assert mixed == [
        {"filename": "/derived/mean", "n": 200, "temps": 0, "codes": 0},
        {"filename": "/stations", "n": 3, "temps": 0, "codes": 3},
        {"filename": "/weather/EWR", "n": 200, "temps": 200, "codes": 0},
        {"filename": "/weather/JFK", "n": 171, "temps": 171, "codes": 0},
    ]
    assert sql_error(weather, "SELECT * FROM '/weather/X*'") == (
        "error: no table or series matches: '/weather/X*' "
        "(in /weather: /weather/EWR, /weather/JFK, /weather/empty/)"
    )


def test_format_url_reads_a_raw_pond_file(weather: Path) -> None:
    got = sql_rows(
        weather,
        "SELECT sensor, sum(value) AS total FROM 'csv:///readings.csv?delimiter=;' "
        "GROUP BY sensor ORDER BY sensor",
    )
    assert got == [{"sensor": "a", "total": 5.5}, {"sensor": "b", "total": 2.5}]


# -- the guard and the limits ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "CREATE TABLE x AS SELECT * FROM '/stations'",
            "error: only read-only queries are allowed: DDL (CREATE) is refused",
        ),
        (
            "COPY (SELECT * FROM '/stations') TO '/tmp/out.csv'",
            "error: only read-only queries are allowed: statement (COPY) is refused",
        ),
        (
            "SET memory_limit = '8GB'",
            "error: only read-only queries are allowed: statement (SET) is refused",
        ),
        (
            "SELECT * FROM '/stations'; SELECT 1",
            "error: query failed: expected a single SQL statement, found 2",
        ),
        (
            "SELECT * FROM 'host+csv:///etc/passwd'",
            "error: 'host+csv:///etc/passwd': SQL reads pond files only; copy the host file "
            "in, or read it with pond cat host+csv:///etc/passwd",
        ),
    ],
)
def test_guard_refusals(weather: Path, query: str, message: str) -> None:
    assert sql_error(weather, query) == message


def test_reading_host_files_is_refused(weather: Path) -> None:
    line = sql_error(weather, "SELECT * FROM read_csv('/etc/passwd')")
    assert line.startswith(
        "error: only read-only queries are allowed: reading other files or URLs is refused"
    )
    # a quoted path is a pond path, never a host file
    assert sql_error(weather, "SELECT * FROM '/etc/passwd'") == (
        "error: no such table: '/etc/passwd' (in /: /derived/, /stations, /weather/)"
    )


def test_limits(weather: Path) -> None:
    assert sql_error(
        weather,
        "SELECT count(*) FROM '/stations', range(100000000000)",
        "--timeout",
        "1",
    ) == ("error: query exceeded the time limit of 1s (raise it with --timeout SECONDS)")
    pond = Pond.open(weather)
    with pytest.raises(QueryError, match="memory limit of 32M"):
        pond.sql(
            "SELECT array_agg(range) FROM range(10000000), '/stations' WHERE code = 'EWR'",
            memory_limit=32 << 20,
        )


# -- unknown names ---------------------------------------------------------------------------
def test_unknown_names_list_what_exists(weather: Path) -> None:
    assert sql_error(weather, "SELECT * FROM '/weather/LGA'") == (
        "error: no such table: '/weather/LGA' "
        "(in /weather: /weather/EWR, /weather/JFK, /weather/empty/)"
    )
    assert sql_error(weather, "SELECT * FROM '/nowhere/x/y'") == (
        "error: no such table: '/nowhere/x/y' (in /: /derived/, /stations, /weather/)"
    )
    assert sql_error(weather, "SELECT * FROM '/weather/EWR' AS e JOIN weather USING (x)") == (
        "error: no table weather: tables in this query: '/weather/EWR'; "
        "quote a pond path, FROM '/dir/file' (in /: /derived/, /stations, /weather/)"
    )
    assert sql_error(weather, "SELECT * FROM '/weather'") == (
        "error: '/weather' is a directory; query its files with a glob, FROM '/weather/*'"
    )
    assert sql_error(weather, "SELECT * FROM '/readings.csv'") == (
        "error: /readings.csv is a raw file; query it in a format "
        "(csv:///readings.csv, oteljson:///readings.csv, ...: "
        + ", ".join(__import__("duckpond.formats", fromlist=["names"]).names())
        + ") or store it as a table"
    )


# -- statements from stdin, formats ----------------------------------------------------------
def test_statements_from_stdin(weather: Path) -> None:
    script = (
        "SELECT count(*) AS n FROM '/weather/EWR';\n"
        "-- a comment; with a semicolon\n"
        "SELECT name FROM '/stations' WHERE code = 'JFK';\n"
    )
    out = run_pond("sql", "--format", "csv", pond=weather, input=script).stdout
    assert out.decode() == '"n"\n200\n"name"\n"Kennedy"\n'
    refused = run_pond("sql", pond=weather, input=script, check=2)
    assert refused.stderr.decode() == (
        "error: 2 statements cannot be one Parquet stream: use --format csv or json\n"
    )
    empty = run_pond("sql", pond=weather, input="  \n", check=2)
    assert empty.stderr.decode() == (
        "error: no SQL given: pond sql QUERY, or statements on stdin\n"
    )


def test_json_output_and_sql_tables(weather: Path) -> None:
    out = run_pond(
        "sql", "--format", "json", "SELECT code FROM '/stations' ORDER BY code", pond=weather
    )
    assert out.stdout.decode() == '[{"code": "EWR"}, {"code": "JFK"}, {"code": "LGA"}]\n'
    found = Pond.open(weather).sql_tables()
    assert [(e.path, e.type) for e in found] == [
        ("/derived/mean", "file:series:dynamic"),
        ("/stations", "file:table:physical"),
        ("/weather/EWR", "file:series:physical"),
        ("/weather/JFK", "file:series:physical"),
    ]


def test_paths_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction(["test"]) as tx:
        tx.write_table("/X", pa.table({"v": [1]}))
        tx.write_table("/x", pa.table({"v": [2]}))
    assert pond.sql("SELECT v FROM '/X'").to_pylist() == [{"v": 1}]
    assert pond.sql("SELECT v FROM '/x'").to_pylist() == [{"v": 2}]
    with pytest.raises(QueryError) as err:
        pond.sql("SELECT * FROM '/X', '/x'")
    assert str(err.value) == "'/X' and '/x' differ only in case: query them one at a time"


def test_a_glob_over_a_file_with_its_own_filename_column_is_refused(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction(["test"]) as tx:
        tx.mkdir("/d")
        tx.write_table("/d/a", pa.table({"v": [1]}))
        tx.write_table("/d/b", pa.table({"FileName": ["mine"], "v": [2]}))
    with pytest.raises(QueryError) as err:
        pond.sql("SELECT * FROM '/d/*'")
    assert str(err.value) == (
        "/d/b has a column 'filename': a glob adds one naming each row's file; "
        "query the files one by one"
    )
    assert pond.sql("SELECT FileName, v FROM '/d/b'").to_pylist() == [{"FileName": "mine", "v": 2}]


def test_pivot_needs_its_columns_named(weather: Path) -> None:
    assert sql_error(
        weather, "PIVOT '/weather/*' ON filename USING avg(temp) GROUP BY time_hour"
    ) == (
        "error: a PIVOT without an IN list runs as two statements, and only one may run: "
        "name its columns, PIVOT ... ON col IN ('a', 'b') USING ..."
    )
    got = sql_rows(
        weather,
        "PIVOT '/weather/*' ON filename IN ('/weather/EWR', '/weather/JFK') USING max(temp) "
        "GROUP BY time_hour ORDER BY time_hour LIMIT 2",
    )
    assert got == [
        {"time_hour": T0, "/weather/EWR": ewr_temp(0), "/weather/JFK": None},
        {
            "time_hour": T0 + timedelta(hours=1),
            "/weather/EWR": ewr_temp(1),
            "/weather/JFK": jfk_temp(1),
        },
    ]
