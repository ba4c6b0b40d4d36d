"""Many inline parts read as one Arrow dataset (query/sql.py, issue 19 goal 2): the same
rows, order, types and errors as when each part is read by DuckDB from a file, with no file
written for them; runs of inline and on-disk parts joined in version order."""

from __future__ import annotations

import datetime as dt
import decimal
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_pond

from duckpond.errors import FormatError
from duckpond.pond import Pond
from duckpond.query import relations
from duckpond.query import sql as sqlmod
from duckpond.query.ingest import table_to_parquet_bytes
from duckpond.query.relations import Part, register_parts
from duckpond.query.sql import make_context, run_sql

US = pa.timestamp("us", tz="UTC")
MIN = 60_000_000
MANY = relations._DATASET_MIN_PARTS  # a run this long is read as a dataset


def minutes(first: int, n: int, **extra: list) -> pa.Table:
    cols: dict[str, object] = {
        "timestamp": pa.array([(first + i) * MIN for i in range(n)], pa.int64()).cast(US),
        "value": pa.array([first + i for i in range(n)], pa.int64()),
    }
    cols.update(extra)
    return pa.table(cols)


def inline(table: pa.Table) -> Part:
    ts = table.column("timestamp").cast(pa.int64()).to_pylist()
    return Part(data=table_to_parquet_bytes(table), min_time=min(ts), max_time=max(ts))


@pytest.fixture
def query_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory inline parts written as files would go to (a root of the test's own)."""
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(sqlmod, "_LINK_ROOT", str(root))
    return root


def files_written(root: Path) -> list[str]:
    return [f for d in os.listdir(root) for f in os.listdir(root / d)]


def test_runs_keep_version_order_and_write_no_files(tmp_path: Path, query_root: Path) -> None:
    # MANY inline versions, one on disk, MANY inline, one on disk, two inline (a short run)
    n = 2 * MANY + 4
    parts = []
    for k in range(n):
        if k in (MANY, 2 * MANY + 1):
            disk = tmp_path / f"blob-{k}"
            pq.write_table(minutes(k, 1), disk)
            parts.append(Part(path=str(disk)))
        else:
            parts.append(inline(minutes(k, 1)))
    ctx = make_context()
    register_parts(ctx, parts)
    # no ORDER BY: the rows come in version order, as `pond cat` shows them
    got = run_sql(ctx, "select value from source").column(0).to_pylist()
    assert got == list(range(n))
    # the two long runs went as datasets; only the short run's two parts became files
    assert len(files_written(query_root)) == 2
    # a context is queried again, also after a later registration replays it on a new
    # connection: the dataset is scanned anew each time
    assert run_sql(ctx, "select sum(value) from source").column(0)[0].as_py() == sum(got)
    register_parts(ctx, [inline(minutes(0, 1))], names=["other"])
    assert run_sql(ctx, "select count(*) from series").column(0)[0].as_py() == n


def test_schema_evolution_across_many_inline_parts(query_root: Path) -> None:
    parts = [inline(minutes(k, 1)) for k in range(MANY)]
    # an added column, and the value column widened from int32 to float64 then
    parts.append(inline(minutes(MANY, 1, unit=["C"])))
    narrow = minutes(MANY + 1, 1).set_column(1, "value", pa.array([MANY + 1], pa.int32()))
    parts.append(inline(narrow))
    wide = minutes(MANY + 2, 1).set_column(1, "value", pa.array([0.5], pa.float64()))
    parts.append(inline(wide))
    ctx = make_context()
    register_parts(ctx, parts)
    out = run_sql(ctx, "select value, unit from source")
    assert out.schema.field("value").type == pa.float64()
    assert out.schema.field("unit").type == pa.string()
    assert out.column("value").to_pylist() == [float(k) for k in range(MANY + 2)] + [0.5]
    assert out.column("unit").to_pylist() == [None] * MANY + ["C", None, None]
    assert files_written(query_root) == []


def test_incompatible_inline_parts_are_one_error() -> None:
    parts = [Part(data=table_to_parquet_bytes(pa.table({"x": [k]}))) for k in range(MANY)]
    parts.append(Part(data=table_to_parquet_bytes(pa.table({"x": [[1]]}))))
    with pytest.raises(
        FormatError, match="^the file's versions have incompatible schemas: .*Field x"
    ):
        register_parts(make_context(), parts)


def test_broken_inline_part_is_named() -> None:
    parts = [inline(minutes(k, 1)) for k in range(MANY)]
    parts.insert(3, Part(data=b"not parquet"))
    with pytest.raises(FormatError, match=r"^not a Parquet file: <inline 11 bytes>$"):
        register_parts(make_context(), parts)


@pytest.mark.parametrize(
    ("arrow_type", "values", "start", "end", "inside"),
    [
        # a start between two units rounds up, an end down: exact in every unit
        (pa.timestamp("s"), [1, 2, 3], 1_500_000, 3_000_000, {1, 2}),
        (pa.timestamp("ms", tz="UTC"), [1, 2, 3], 1_500, 3_000, {1, 2}),
        (pa.timestamp("us", tz="UTC"), [1, 2, 3], 2, 2, {1}),
        (pa.timestamp("ns"), [1_000, 1_500, 2_000], 1, 1, {0}),
        (pa.int64(), [10, 20, 30], 15, 30, {1, 2}),
    ],
)
def test_window_over_many_inline_parts(arrow_type, values, start, end, inside) -> None:
    # MANY parts of one row each, cycling through `values`; `inside`: which are in the window
    parts = []
    for k in range(MANY):
        raw = pa.array([values[k % 3]], pa.int64()).cast(arrow_type)
        parts.append(Part(data=table_to_parquet_bytes(pa.table({"t": raw}))))
    ctx = make_context()
    register_parts(ctx, parts, time_column="t", time_start=start, time_end=end)
    want = sum(1 for k in range(MANY) if k % 3 in inside)
    assert run_sql(ctx, "select count(*) from source").column(0)[0].as_py() == want


def test_types_read_as_from_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every column type reads back the same whether the parts go as a dataset or as files
    (DuckDB's Parquet reader decides the types; the dataset is made to agree)."""
    one = pa.table(
        {
            "ts_s": pa.array([1, 2], pa.int64()).cast(pa.timestamp("s")),
            "ts_ms": pa.array([1, 2], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "ts_ns": pa.array([1, 2], pa.int64()).cast(pa.timestamp("ns")),
            "berlin": pa.array([1, 2], pa.int64()).cast(pa.timestamp("ms", tz="Europe/Berlin")),
            "day": pa.array([dt.date(2024, 1, 1), None]),
            "d64": pa.array([0, 86_400_000], pa.int64()).cast(pa.date64()),
            "text": pa.array(["a", None], pa.large_string()),
            "dict": pa.array(["x", "y"]).dictionary_encode(),
            "dec": pa.array([decimal.Decimal("1.5"), None], pa.decimal128(10, 2)),
            "lst": pa.array([[1], [2, 3]]),
            "ms_list": pa.array([[1], []], pa.list_(pa.timestamp("ms"))),
            "st": pa.array([{"a": 1}, {"a": 2}]),
            "flag": pa.array([True, None]),
            "raw": pa.array([b"x", b"y"]),
            "u64": pa.array([1, 2], pa.uint64()),
            "tod": pa.array([1, 2], pa.time32("s")),
            "dur": pa.array([1, 2], pa.duration("ms")),
        }
    )
    data = table_to_parquet_bytes(one)
    results = []
    for threshold in (MANY, 10**9):
        monkeypatch.setattr(relations, "_DATASET_MIN_PARTS", threshold)
        ctx = make_context()
        register_parts(ctx, [Part(data=data) for _ in range(MANY)])
        results.append(run_sql(ctx, "select * from source"))
    as_dataset, as_files = results
    assert as_dataset.schema == as_files.schema
    assert as_dataset.equals(as_files)
    assert as_dataset.schema.field("ts_s").type == pa.timestamp("us")
    assert as_dataset.schema.field("dur").type == pa.int64()


def test_many_versions_through_cli(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    for k in range(MANY + 4):
        with pond.transaction() as tx:
            tx.write_series("/s/t", minutes(10 * k, 10), parents=True)
    n = 10 * (MANY + 4)
    q = "SELECT count(*) AS n, sum(value) AS s, min(timestamp) AS lo FROM source"
    out = run_pond("cat", "--format", "csv", "--sql", q, "/s/t", pond=pond_dir)
    assert out.stdout.decode().splitlines() == [
        '"n","s","lo"',
        f'{n},{sum(range(n))},"1970-01-01T00:00:00.000000Z"',
    ]
    # a window: versions 3 to 5 hold minutes 35..59
    start, end = 35 * MIN, 59 * MIN
    windowed = run_pond(
        "cat",
        "--format",
        "csv",
        "--sql",
        q,
        "--time-start",
        start,
        "--time-end",
        end,
        "/s/t",
        pond=pond_dir,
    )
    assert windowed.stdout.decode().splitlines()[1] == (
        f'25,{sum(range(35, 60))},"1970-01-01T00:35:00.000000Z"'
    )
    # the whole series in version order
    rows = run_pond("cat", "--format", "csv", "/s/t", pond=pond_dir).stdout.decode().splitlines()
    assert [int(r.split(",")[1]) for r in rows[1:]] == list(range(n))
