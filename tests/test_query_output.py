from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from duckpond.query import output
from duckpond.query.output import (
    column_values,
    format_value,
    print_table,
    to_csv_bytes,
    to_json_records,
    to_json_text,
    to_parquet_bytes,
)
from duckpond.query.relations import register_table_arrow
from duckpond.query.sql import make_context, run_sql

T = 1_704_164_645_123_456  # 2024-01-02T03:04:05.123456Z in µs


def values(arr: pa.Array) -> list:
    return column_values(arr)


@pytest.mark.parametrize(
    ("arrow_type", "raw", "expected"),
    [
        (pa.timestamp("us", tz="UTC"), T, "2024-01-02T03:04:05.123456Z"),
        (pa.timestamp("us"), T, "2024-01-02T03:04:05.123456"),
        (pa.timestamp("s", tz="UTC"), T // 1_000_000, "2024-01-02T03:04:05Z"),
        (pa.timestamp("ms", tz="UTC"), T // 1_000, "2024-01-02T03:04:05.123Z"),
        (pa.timestamp("ns", tz="UTC"), T * 1_000 + 789, "2024-01-02T03:04:05.123456789Z"),
        (pa.timestamp("ns"), -1, "1969-12-31T23:59:59.999999999"),
        (pa.timestamp("us", tz="+05:30"), T, "2024-01-02T08:34:05.123456+05:30"),
        (pa.timestamp("s", tz="Europe/Paris"), 1_704_164_645, "2024-01-02T04:04:05+01:00"),
    ],
)
def test_timestamps(arrow_type, raw, expected) -> None:
    arr = pa.array([raw, None], pa.int64()).cast(arrow_type)
    assert values(arr) == [expected, None]


def test_utc_timestamps_parse_back() -> None:
    arr = pa.array([T], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    (text,) = values(arr)
    parsed = dt.datetime.fromisoformat(text)
    assert parsed == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def test_other_scalars() -> None:
    assert values(pa.array([dt.date(2024, 1, 2), None])) == ["2024-01-02", None]
    assert values(pa.array([0], pa.date64())) == ["1970-01-01"]
    assert values(pa.array([3_723_000_001], pa.time64("us"))) == ["01:02:03.000001"]
    assert values(pa.array([3_723], pa.time32("s"))) == ["01:02:03"]
    assert values(pa.array([90_500_000, -1_000_000], pa.duration("us"))) == [
        "PT90.5S",
        "-PT1S",
    ]
    assert values(pa.array([b"hello", b"\xff\x00", None])) == [
        "hello",
        base64.b64encode(b"\xff\x00").decode(),
        None,
    ]
    assert values(pa.array([decimal.Decimal("1.10")], pa.decimal128(5, 2))) == ["1.10"]
    assert values(pa.array([1.5, float("nan"), float("inf"), None])) == [1.5, None, None, None]
    assert values(pa.array(["a", "b"]).dictionary_encode()) == ["a", "b"]
    assert values(pa.array([True, None])) == [True, None]


def test_nested() -> None:
    lists = pa.array([[1, 2], None, []])
    assert values(lists) == [[1, 2], None, []]
    structs = pa.array([{"a": 1, "b": b"\xff"}], pa.struct([("a", pa.int8()), ("b", pa.binary())]))
    assert values(structs) == [{"a": 1, "b": "/w=="}]
    maps = pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64()))
    assert values(maps) == [{"k": 1}]
    int_maps = pa.array([[(1, "x")]], pa.map_(pa.int64(), pa.string()))
    assert values(int_maps) == [[[1, "x"]]]
    ts_type = pa.list_(pa.timestamp("us", "UTC"))
    ts_list = pa.array([[dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]], ts_type)
    assert values(ts_list) == [["2024-01-01T00:00:00Z"]]


def sample() -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([T, T + 1_000_000], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "value": [1.25, None],
            "name": ["a", "b,c"],
            "raw": [b"ok", b"\xff"],
            "tags": [["x"], []],
        }
    )


def test_json_records_and_text() -> None:
    records = to_json_records(sample())
    assert records[0] == {
        "timestamp": "2024-01-02T03:04:05.123456Z",
        "value": 1.25,
        "name": "a",
        "raw": "ok",
        "tags": ["x"],
    }
    assert records[1]["value"] is None
    text = to_json_text(sample())
    assert text.endswith("\n")
    assert json.loads(text) == records
    assert json.loads(to_json_text(sample().slice(0, 0))) == []


def test_csv_matches_json_spelling() -> None:
    data = to_csv_bytes(sample())
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert rows[0]["timestamp"] == "2024-01-02T03:04:05.123456Z"
    assert rows[0]["value"] == "1.25"
    assert rows[1]["value"] == ""
    assert rows[1]["name"] == "b,c"
    assert rows[1]["raw"] == base64.b64encode(b"\xff").decode()
    assert rows[0]["tags"] == '["x"]'
    assert data.splitlines()[0] == b'"timestamp","value","name","raw","tags"'


def test_csv_of_query_result_with_view_types() -> None:
    ctx = make_context()
    register_table_arrow(ctx, pa.table({"s": ["x", None]}))
    # an engine may hand string_view columns over (DataFusion did): the writers take them
    table = pa.table({"v": pa.array(["x", None]).cast(pa.string_view())})
    assert to_csv_bytes(table).splitlines() == [b'"v"', b'"x"', b""]
    assert to_json_records(run_sql(ctx, "select s from source")) == [{"s": "x"}, {"s": None}]


def test_parquet_bytes_round_trip() -> None:
    table = sample()
    data = to_parquet_bytes(table)
    assert data[:4] == b"PAR1"
    back = pq.read_table(pa.BufferReader(data))
    assert back.equals(table)


def test_format_value() -> None:
    assert format_value(None) == "NULL"
    assert format_value(True) == "true"
    assert format_value(1.5) == "1.5"
    assert format_value({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert format_value("[bold]x[/bold]") == "[bold]x[/bold]"


def render(table: pa.Table, **kwargs) -> str:
    console = Console(record=True, width=120, color_system=None)
    print_table(table, console, **kwargs)
    return console.export_text()


def test_print_table() -> None:
    out = render(sample(), title="result")
    assert "result" in out
    for header in ("timestamp", "value", "name", "raw", "tags"):
        assert header in out
    assert "2024-01-02T03:04:05.123456Z" in out
    assert "NULL" in out
    assert "2 rows" in out
    # numbers are right-aligned: the shorter number is padded on the left
    table = pa.table({"n": [1, 1000]})
    lines = [ln for ln in render(table).splitlines() if "1" in ln and "row" not in ln]
    assert lines[0].index("1") > lines[1].index("1")


def test_print_table_truncates() -> None:
    out = render(pa.table({"i": list(range(50))}), max_rows=5)
    assert "5 of 50 rows shown" in out
    assert " 49 " not in out
    assert "50 rows" in render(pa.table({"i": list(range(50))}), max_rows=None)
    assert "0 rows" in render(pa.table({"i": pa.array([], pa.int64())}))
    assert "1 row" in render(pa.table({"i": [1]}))


def test_print_table_does_not_interpret_markup() -> None:
    out = render(pa.table({"s": ["[bold]x[/bold]"]}))
    assert "[bold]x[/bold]" in out


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["s", "ms", "us", "ns"]),
    st.sampled_from([None, "UTC"]),
    # years 1000..9999 in any unit (the range both formatters agree on)
    st.integers(min_value=-30_000_000_000, max_value=253_402_300_799),
    st.integers(min_value=0, max_value=999_999_999),
)
def test_vectorised_and_per_value_timestamps_agree(unit, tz, seconds, sub) -> None:
    per = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    raw = seconds * per + sub % per
    assume(-(2**63) <= raw < 2**63)  # ns only spans 1677..2262
    t = pa.timestamp(unit, tz=tz)
    arr = pa.array([raw], pa.int64()).cast(t)
    fast = output._timestamp_text(arr)
    assert fast is not None
    assert fast.to_pylist() == [output._timestamp_formatter(t)(raw)]
