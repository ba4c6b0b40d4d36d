from __future__ import annotations

import datetime as dt
import gc
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from duckpond.errors import FormatError, NotFoundError, QueryError
from duckpond.query import sql as sqlmod
from duckpond.query.ingest import event_time_range, table_to_parquet_bytes
from duckpond.query.relations import Part, register_parts, register_table_arrow, window_source
from duckpond.query.sql import SOURCE_NAMES, make_context, run_sql

US = pa.timestamp("us", tz="UTC")
MIN = 60_000_000  # one minute in µs


def series_table(start_minute: int, n: int, **extra: list) -> pa.Table:
    times = [(start_minute + i) * MIN for i in range(n)]
    cols = {
        "timestamp": pa.array(times, pa.int64()).cast(US),
        "value": [float(start_minute + i) for i in range(n)],
    }
    cols.update(extra)
    return pa.table(cols)


def disk_part(path: Path, table: pa.Table) -> Part:
    pq.write_table(table, path)
    lo, hi = event_time_range(table, "timestamp")
    return Part(path=str(path), data=None, min_time=lo, max_time=hi)


def inline_part(table: pa.Table) -> Part:
    lo, hi = event_time_range(table, "timestamp")
    return Part(path=None, data=table_to_parquet_bytes(table), min_time=lo, max_time=hi)


def scalar(ctx, query: str):
    return run_sql(ctx, query).column(0)[0].as_py()


def test_part_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError):
        Part(path=None, data=None)
    with pytest.raises(ValueError):
        Part(path="x", data=b"y")


def test_register_disk_and_inline_parts(tmp_path: Path) -> None:
    parts = [
        disk_part(tmp_path / "a.parquet", series_table(0, 10)),
        inline_part(series_table(10, 5)),
        disk_part(tmp_path / "c.parquet", series_table(15, 5)),
    ]
    ctx = make_context()
    register_parts(ctx, parts)
    assert SOURCE_NAMES == ("source", "series")
    assert scalar(ctx, "select count(*) from source") == 20
    assert scalar(ctx, "select count(*) from series") == 20
    assert scalar(ctx, "select max(value) from source") == 19.0
    out = run_sql(ctx, "select * from source order by timestamp")
    assert out.column("value").to_pylist() == [float(i) for i in range(20)]
    assert out.schema.field("timestamp").type == US


def test_blob_paths_without_parquet_extension(tmp_path: Path) -> None:
    # content-addressed blobs have no .parquet suffix
    part = disk_part(tmp_path / "3f9a0c", series_table(0, 3))
    ctx = make_context()
    register_parts(ctx, [part])
    assert scalar(ctx, "select count(*) from source") == 3


def test_custom_names(tmp_path: Path) -> None:
    ctx = make_context()
    register_parts(ctx, [inline_part(series_table(0, 2))], names=("left_side",))
    register_parts(ctx, [inline_part(series_table(0, 3))], names=("right_side",))
    assert scalar(ctx, "select count(*) from left_side") == 2
    assert scalar(ctx, "select count(*) from right_side") == 3
    assert not ctx.table_exist("source")
    # registering again replaces the table
    register_parts(ctx, [inline_part(series_table(0, 4))], names=("left_side",))
    assert scalar(ctx, "select count(*) from left_side") == 4


def test_parts_outside_window_are_not_opened(tmp_path: Path) -> None:
    inside = disk_part(tmp_path / "in.parquet", series_table(100, 10))  # minutes 100..109
    # parts that would fail loudly if opened: their files do not exist
    before = Part(path=str(tmp_path / "gone-1"), data=None, min_time=0, max_time=50 * MIN)
    after = Part(path=str(tmp_path / "gone-2"), data=None, min_time=200 * MIN, max_time=300 * MIN)
    ctx = make_context()
    register_parts(
        ctx,
        [before, inside, after],
        time_column="timestamp",
        time_start=90 * MIN,
        time_end=150 * MIN,
    )
    assert scalar(ctx, "select count(*) from source") == 10
    # the same missing file inside the window is an error
    with pytest.raises(NotFoundError):
        register_parts(ctx, [before], time_start=0, time_end=10)


def test_window_filters_rows_inclusively(tmp_path: Path) -> None:
    parts = [
        disk_part(tmp_path / "a.parquet", series_table(0, 10)),
        disk_part(tmp_path / "b.parquet", series_table(10, 10)),
    ]
    ctx = make_context()
    register_parts(ctx, parts, time_column="timestamp", time_start=5 * MIN, time_end=12 * MIN)
    values = run_sql(ctx, "select value from series order by value").column(0).to_pylist()
    assert values == [float(i) for i in range(5, 13)]
    # open-ended windows
    register_parts(ctx, parts, time_column="timestamp", time_start=18 * MIN)
    assert scalar(ctx, "select min(value) from source") == 18.0
    register_parts(ctx, parts, time_column="timestamp", time_end=1 * MIN)
    assert scalar(ctx, "select count(*) from source") == 2


def test_window_without_time_column_only_prunes(tmp_path: Path) -> None:
    parts = [inline_part(series_table(0, 10)), inline_part(series_table(100, 10))]
    ctx = make_context()
    register_parts(ctx, parts, time_start=5 * MIN, time_end=8 * MIN)
    assert scalar(ctx, "select count(*) from source") == 10  # whole first part, no row filter


def test_parts_with_unknown_range_are_kept() -> None:
    part = inline_part(series_table(0, 3))
    part.min_time = part.max_time = None
    ctx = make_context()
    register_parts(ctx, [part], time_start=10**15, time_end=10**16)
    assert scalar(ctx, "select count(*) from source") == 3


@pytest.mark.parametrize(
    ("arrow_type", "values", "start", "end", "expected"),
    [
        # seconds: a start between two seconds rounds up, an end rounds down
        (pa.timestamp("s"), [1, 2, 3], 1_500_000, 3_000_000, 2),
        (pa.timestamp("ms", tz="UTC"), [1, 2, 3], 1_500, 3_000, 2),
        (pa.timestamp("ns"), [1_000, 1_500, 2_000], 1, 1, 1),
        (pa.date32(), [0, 1, 2], 1, 2 * 86_400_000_000, 2),
        (pa.date64(), [0, 86_400_000, 172_800_000], 1, 86_400_000_000, 1),
        (pa.int64(), [10, 20, 30], 15, 30, 2),
        (pa.int32(), [10, 20, 30], 10, 10, 1),
    ],
)
def test_window_on_time_types(arrow_type, values, start, end, expected) -> None:
    raw = pa.array(values, pa.int64())
    if pa.types.is_date32(arrow_type) or pa.types.is_int32(arrow_type):
        raw = raw.cast(pa.int32())
    table = pa.table({"t": raw.cast(arrow_type), "v": list(range(len(values)))})
    part = Part(path=None, data=table_to_parquet_bytes(table))
    ctx = make_context()
    register_parts(ctx, [part], time_column="t", time_start=start, time_end=end)
    assert scalar(ctx, "select count(*) from source") == expected


def test_bad_time_column() -> None:
    ctx = make_context()
    part = inline_part(series_table(0, 3))
    with pytest.raises(FormatError, match="'nope' not found"):
        register_parts(ctx, [part], time_column="nope", time_start=0)
    table = pa.table({"s": ["a"]})
    with pytest.raises(FormatError, match="must be a timestamp"):
        register_parts(
            ctx, [Part(data=table_to_parquet_bytes(table))], time_column="s", time_start=0
        )


def test_all_parts_outside_window_gives_empty_result(tmp_path: Path) -> None:
    parts = [disk_part(tmp_path / "a.parquet", series_table(0, 5))]
    ctx = make_context()
    register_parts(ctx, parts, time_column="timestamp", time_start=10**15)
    out = run_sql(ctx, "select * from source")
    assert out.num_rows == 0
    assert out.schema.names == ["timestamp", "value"]


def test_zero_parts() -> None:
    ctx = make_context()
    with pytest.raises(NotFoundError):
        register_parts(ctx, [])
    schema = pa.schema([("timestamp", US), ("value", pa.float64())])
    register_parts(ctx, [], schema=schema)
    out = run_sql(ctx, "select * from series")
    assert out.num_rows == 0 and out.schema == schema


def test_schema_evolution_added_column(tmp_path: Path) -> None:
    v1 = disk_part(tmp_path / "v1.parquet", series_table(0, 3))
    v2 = disk_part(tmp_path / "v2.parquet", series_table(3, 2, unit=["C", "F"]))
    v3 = inline_part(series_table(5, 1, unit=["K"]))
    ctx = make_context()
    register_parts(ctx, [v1, v2, v3])
    out = run_sql(ctx, "select value, unit from source order by value")
    assert out.column("unit").to_pylist() == [None, None, None, "C", "F", "K"]
    assert out.schema.field("unit").type == pa.string()  # not string_view


def test_schema_evolution_widened_type(tmp_path: Path) -> None:
    narrow = pa.table({"timestamp": pa.array([1], US), "n": pa.array([1], pa.int32())})
    wide = pa.table({"timestamp": pa.array([2], US), "n": pa.array([2**40], pa.int64())})
    parts = [
        Part(path=str(tmp_path / "n.parquet")),
        Part(path=str(tmp_path / "w.parquet")),
    ]
    pq.write_table(narrow, parts[0].path)
    pq.write_table(wide, parts[1].path)
    ctx = make_context()
    register_parts(ctx, parts)
    out = run_sql(ctx, "select n from source order by timestamp")
    assert out.column("n").to_pylist() == [1, 2**40]
    assert out.schema.field("n").type == pa.int64()


def test_incompatible_schemas(tmp_path: Path) -> None:
    a = pa.table({"x": pa.array([1], pa.int64())})
    b = pa.table({"x": pa.array([[1]], pa.list_(pa.int64()))})
    parts = [Part(data=table_to_parquet_bytes(a)), Part(data=table_to_parquet_bytes(b))]
    # DuckDB merges the parts' schemas when the query reads them: the error comes then
    ctx = make_context()
    register_parts(ctx, parts)
    with pytest.raises(QueryError, match="^the file's versions have incompatible schemas: "):
        run_sql(ctx, "select * from source")


def test_broken_part_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(FormatError, match="not a Parquet file: .*bad.parquet"):
        register_parts(make_context(), [Part(path=str(bad))])


def test_disk_blob_and_inline_parts_in_one_window(tmp_path: Path) -> None:
    parts = [
        disk_part(tmp_path / "a.parquet", series_table(0, 3)),
        disk_part(tmp_path / "blob", series_table(3, 2, unit=["C", "F"])),
        inline_part(series_table(5, 1)),
    ]
    ctx = make_context()
    register_parts(ctx, parts, time_column="timestamp", time_start=1 * MIN)
    out = run_sql(ctx, "select value, unit from source order by value")
    assert out.column("value").to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert out.column("unit").to_pylist() == [None, None, "C", "F", None]


def test_inline_part_directory_removed_with_context(tmp_path: Path, monkeypatch) -> None:
    # a root of the test's own: other processes' query directories do not show up in it
    root = str(tmp_path / "root")
    os.mkdir(root)
    monkeypatch.setattr(sqlmod, "_LINK_ROOT", root)
    ctx = make_context()
    register_parts(ctx, [inline_part(series_table(0, 3))])  # inline parts go there as files
    mine = [p for p in os.listdir(root) if p.startswith("pond-query-")]
    assert len(mine) == 1
    assert scalar(ctx, "select count(*) from source") == 3
    del ctx
    gc.collect()
    assert not os.path.exists(os.path.join(root, mine[0]))


def test_register_table_arrow() -> None:
    ctx = make_context()
    register_table_arrow(ctx, pa.table({"a": [1, 2, 3]}))
    assert scalar(ctx, "select sum(a) from source") == 6
    assert scalar(ctx, "select count(*) from series") == 3
    register_table_arrow(ctx, pa.table({"a": pa.array([], pa.int64())}), names=("control_table",))
    assert run_sql(ctx, "select * from control_table").num_rows == 0
    register_table_arrow(ctx, pa.table({"a": [9]}))  # replaces
    assert scalar(ctx, "select sum(a) from source") == 9


# --- read-only SQL ----------------------------------------------------------------------------


@pytest.fixture
def ctx():
    c = make_context()
    register_table_arrow(c, pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"]}))
    return c


@pytest.mark.parametrize(
    "query",
    [
        "create table t as select 1",
        "create view v as select 1",
        "create table t as select * from read_csv('/etc/hosts')",
        "create macro m(x) as x + 1",
        "drop table source",
        "insert into source values (4, 'w')",
        "delete from source where a = 1",
        "update source set a = 0",
        "set threads = 1",
        "reset threads",
        "pragma threads = 1",
        "pragma version",
        "prepare p as select 1",
        "attach '/tmp/pond-attached.db' as other",
        "detach other",
        "install httpfs",
        "load httpfs",
        "export database '/tmp/pond-export'",
        "call pragma_version()",
    ],
)
def test_refused_statements(ctx, query: str) -> None:
    with pytest.raises(QueryError) as exc:
        run_sql(ctx, query)
    assert str(exc.value).startswith("only read-only queries are allowed: ")
    assert "\n" not in str(exc.value)
    assert scalar(ctx, "select count(*) from source") == 3  # nothing changed


def test_copy_to_is_refused_and_writes_nothing(ctx, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(QueryError, match="only read-only queries are allowed"):
        run_sql(ctx, f"copy source to '{target}' (format csv)")
    with pytest.raises(QueryError, match="only read-only queries are allowed"):
        run_sql(ctx, f"copy (select * from source) to '{target}'")
    assert not target.exists()


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("selec 1", 'SQL syntax error: syntax error at or near "selec"'),
        ("select nope from source", 'Referenced column "nope" not found'),
        ("select * from missing", "Table with name missing does not exist!"),
        ("select cast('x' as int)", "Could not convert string 'x' to INT32"),
        ("select 1; select 2", "single SQL statement"),
        ("select sum(s) from source", "No function matches the given name"),
    ],
)
def test_bad_sql_is_one_line(ctx, query: str, fragment: str) -> None:
    with pytest.raises(QueryError) as exc:
        run_sql(ctx, query)
    msg = str(exc.value)
    assert "\n" not in msg
    assert fragment in msg
    assert not msg.startswith("only read-only")
    assert "Binder Error" not in msg and "LINE 1" not in msg
    assert "pg_settings" not in msg  # no system table offered as what was meant


def test_reads_still_allowed(ctx) -> None:
    assert run_sql(ctx, "explain select * from source").num_rows >= 1
    names = run_sql(ctx, "show tables").column("name").to_pylist()
    assert "source" in names
    out = run_sql(ctx, "with t as (select a * 2 as b from source) select sum(b) from t")
    assert out.column(0)[0].as_py() == 12


def test_view_types_become_plain(ctx) -> None:
    out = run_sql(
        ctx,
        "select s as v, cast(s as blob) as b, [s] as l, {'k': s} as st, sum(a) as n "
        "from source group by s",
    )
    assert out.schema.field("v").type == pa.string()
    assert out.schema.field("b").type == pa.binary()
    assert out.schema.field("l").type.value_type == pa.string()
    assert out.schema.field("st").type.field("k").type == pa.string()
    # DuckDB sums integers as HUGEINT (decimal128(38, 0) in Arrow): read back as int64
    assert out.schema.field("n").type == pa.int64()


def test_time_functions_on_series(tmp_path: Path) -> None:
    ctx = make_context()
    register_parts(ctx, [disk_part(tmp_path / "a.parquet", series_table(0, 120))])
    out = run_sql(
        ctx,
        "select time_bucket(interval '1 hour', timestamp) as h, avg(value) as v "
        "from series group by 1 order by 1",
    )
    assert out.column("h").to_pylist() == [
        dt.datetime(1970, 1, 1, 0, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, 1, tzinfo=dt.UTC),
    ]
    assert out.column("v").to_pylist() == [29.5, 89.5]


@pytest.mark.parametrize("unit", ["s", "ms"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_window_on_an_arrow_table_of_coarse_timestamps_is_exact(unit, tz):
    # DuckDB rounds a filter pushed into an Arrow scan to the column's unit: a start of
    # 1.5 units kept the row at 1 (tz-aware columns). Registered tables read them as µs.
    step = 1_000 if unit == "ms" else 1_000_000
    times = pa.array([0, 1, 2, 3], pa.int64()).cast(pa.timestamp(unit, tz=tz))
    table = pa.table({"t": times, "v": [0, 1, 2, 3]})
    counts = []
    for start, end in ((step * 3 // 2, None), (None, step * 3 // 2)):
        ctx = make_context()
        register_table_arrow(ctx, table)
        window_source(ctx, "t", start, end)
        counts.append(
            run_sql(ctx, "SELECT list(v ORDER BY v) AS v FROM source").column(0)[0].as_py()
        )
    assert counts == [[2, 3], [0, 1]]
