from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from duckpond.errors import FormatError, NotFoundError
from duckpond.query import ingest
from duckpond.query.ingest import (
    csv_to_parquet_file,
    decompress_bytes,
    detect_time_column,
    event_time_range,
    event_time_range_parquet,
    read_csv_bytes,
    read_csv_file,
    read_host_bytes,
    read_parquet_bytes,
    read_parquet_file,
    read_parquet_schema,
    table_to_parquet_bytes,
)

CSV = b"timestamp,value,name\n2024-01-01T00:00:00Z,1.5,a\n2024-01-01T00:01:00Z,2.5,b\n"


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- host bytes -------------------------------------------------------------------------------


def test_read_host_bytes(tmp_path: Path) -> None:
    p = write(tmp_path / "x.bin", b"\x00\x01hello")
    assert read_host_bytes(p) == b"\x00\x01hello"
    g = write(tmp_path / "x.gz", gzip.compress(b"hello"))
    assert read_host_bytes(g, "gzip") == b"hello"
    z = write(tmp_path / "x.zst", zstd(b"hello"))
    assert read_host_bytes(z, "zstd") == b"hello"


def test_read_host_bytes_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such host file: .*nope"):
        read_host_bytes(tmp_path / "nope")
    with pytest.raises(FormatError, match="directory"):
        read_host_bytes(tmp_path)


def test_decompress_errors() -> None:
    with pytest.raises(FormatError, match="not gzip-compressed"):
        decompress_bytes(b"plain text", "gzip", "x")
    with pytest.raises(FormatError, match="cannot decompress x as gzip"):
        decompress_bytes(b"\x1f\x8b\x08\x00garbage", "gzip", "x")
    assert decompress_bytes(b"same", None) == b"same"


# --- Parquet ----------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    data = table_to_parquet_bytes(table)
    assert pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0).compression == (
        "ZSTD"
    )
    assert read_parquet_bytes(data, "mem").equals(table)
    p = write(tmp_path / "t.parquet", data)
    assert read_parquet_file(p).equals(table)
    assert read_parquet_schema(p).names == ["a", "b"]
    assert read_parquet_schema(data).names == ["a", "b"]


def test_text_file_given_as_parquet(tmp_path: Path) -> None:
    p = write(tmp_path / "notes.parquet", b"just some text\n" * 10)
    with pytest.raises(FormatError, match=r"^not a Parquet file: .*notes\.parquet"):
        read_parquet_file(p)
    with pytest.raises(FormatError, match="not a Parquet file: notes"):
        read_parquet_bytes(p.read_bytes(), "notes")
    with pytest.raises(FormatError, match="not a Parquet file"):
        read_parquet_schema(p, "notes")
    with pytest.raises(FormatError, match="not a Parquet file"):
        read_parquet_file(write(tmp_path / "empty.parquet", b""))


def test_corrupt_parquet_with_valid_magic(tmp_path: Path) -> None:
    data = table_to_parquet_bytes(pa.table({"a": list(range(100))}))
    broken = data[:4] + b"\xff" * (len(data) - 8) + data[-4:]
    with pytest.raises(FormatError) as exc:
        read_parquet_bytes(broken, "broken")
    assert "not a Parquet file: broken" in str(exc.value)
    assert "\n" not in str(exc.value)
    with pytest.raises(NotFoundError):
        read_parquet_file(tmp_path / "missing.parquet")


# --- CSV --------------------------------------------------------------------------------------


def test_read_csv_file_and_bytes(tmp_path: Path) -> None:
    t = read_csv_file(write(tmp_path / "a.csv", CSV))
    assert t.num_rows == 2
    assert t.schema.field("timestamp").type == pa.timestamp("s", tz="UTC")
    assert t.column("value").to_pylist() == [1.5, 2.5]
    assert read_csv_bytes(CSV).equals(t)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_csv(tmp_path: Path, codec: str) -> None:
    data = gzip.compress(CSV) if codec == "gzip" else zstd(CSV)
    p = write(tmp_path / f"a.csv.{codec}", data)
    assert read_csv_file(p, codec).num_rows == 2
    assert read_csv_bytes(data, codec).num_rows == 2
    # compressed input without the +codec flag gets a hint instead of a parse error
    with pytest.raises(FormatError, match=f"looks {codec}-compressed: add \\+{codec}"):
        read_csv_file(p)
    other = "zstd" if codec == "gzip" else "gzip"
    with pytest.raises(FormatError, match=f"not {other}-compressed"):
        read_csv_file(p, other)
    dest = tmp_path / "out.parquet"
    csv_to_parquet_file(p, dest, codec)
    assert pq.read_table(dest).num_rows == 2


def test_malformed_csv_reports_row(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.csv", b"a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(FormatError) as exc:
        read_csv_file(p)
    msg = str(exc.value)
    assert msg.startswith("malformed CSV in ")
    assert "Row #3" in msg and "Expected 2 columns, got 3" in msg
    assert "\n" not in msg
    with pytest.raises(FormatError, match="Row #3"):
        read_csv_bytes(p.read_bytes())
    dest = tmp_path / "bad.parquet"
    with pytest.raises(FormatError, match="Row #3"):
        csv_to_parquet_file(p, dest)
    assert not dest.exists()  # no half-written output


def test_unterminated_quote_is_one_line(tmp_path: Path) -> None:
    p = write(tmp_path / "q.csv", b'a,b\n1,2\n"x,3\n4,5\n')
    with pytest.raises(FormatError) as exc:
        read_csv_file(p)
    assert "\n" not in str(exc.value)


def test_empty_csv(tmp_path: Path) -> None:
    p = write(tmp_path / "e.csv", b"")
    with pytest.raises(FormatError, match="empty CSV file"):
        read_csv_file(p)
    with pytest.raises(FormatError, match="empty CSV file"):
        csv_to_parquet_file(p, tmp_path / "e.parquet")
    with pytest.raises(NotFoundError, match="no such host file"):
        read_csv_file(tmp_path / "missing.csv")


def test_csv_to_parquet_streams_in_row_groups(tmp_path: Path, monkeypatch) -> None:
    # small buffers force many blocks and row groups: proof that the file is streamed
    monkeypatch.setattr(ingest, "WHOLE_FILE_CSV_BYTES", 0)  # the path for files too big
    monkeypatch.setattr(ingest, "_CSV_STREAM_BLOCK", 4096)
    monkeypatch.setattr(ingest, "_ROW_GROUP_ROWS", 1000)
    rows = "".join(f"2024-01-01T00:00:{i % 60:02d}Z,{i},{i * 0.5}\n" for i in range(5000))
    src = write(tmp_path / "big.csv", ("ts,n,x\n" + rows).encode())
    dest = tmp_path / "big.parquet"
    schema = csv_to_parquet_file(src, dest)
    meta = pq.ParquetFile(dest).metadata
    assert meta.num_rows == 5000
    assert meta.num_row_groups >= 5
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert schema == pq.read_schema(dest).remove_metadata()
    whole = read_csv_file(src)
    assert pq.read_table(dest).equals(whole.cast(schema))


def test_csv_to_parquet_whole_file_and_stream_agree(tmp_path: Path, monkeypatch) -> None:
    rows = "".join(f"2024-01-01T00:00:{i % 60:02d}Z,{i},{i * 0.5},s{i % 7}\n" for i in range(3000))
    src = write(tmp_path / "x.csv", ("ts,n,x,s\n" + rows).encode())
    whole = csv_to_parquet_file(src, tmp_path / "whole.parquet")
    monkeypatch.setattr(ingest, "WHOLE_FILE_CSV_BYTES", 0)
    monkeypatch.setattr(ingest, "_CSV_STREAM_BLOCK", 2048)
    streamed = csv_to_parquet_file(src, tmp_path / "stream.parquet")
    assert whole == streamed
    a = pq.read_table(tmp_path / "whole.parquet")
    b = pq.read_table(tmp_path / "stream.parquet")
    assert a.equals(b)


def test_csv_to_parquet_widens_late_type_changes(tmp_path: Path, monkeypatch) -> None:
    # the first block says int; later blocks hold a float then text: the whole-file type wins
    monkeypatch.setattr(ingest, "WHOLE_FILE_CSV_BYTES", 0)
    monkeypatch.setattr(ingest, "_CSV_STREAM_BLOCK", 1024)
    body = "".join(f"{i},{i}\n" for i in range(2000)) + "2000,2.5\n2001,oops\n"
    src = write(tmp_path / "w.csv", ("id,v\n" + body).encode())
    dest = tmp_path / "w.parquet"
    schema = csv_to_parquet_file(src, dest)
    assert schema.field("id").type == pa.int64()
    assert schema.field("v").type == pa.string()
    out = pq.read_table(dest)
    assert out.num_rows == 2002
    assert out.column("v").to_pylist()[-2:] == ["2.5", "oops"]
    assert out.schema.remove_metadata() == read_csv_file(src).schema

    body = "".join(f"{i},{i}\n" for i in range(2000)) + "2000,2.5\n"
    src = write(tmp_path / "f.csv", ("id,v\n" + body).encode())
    schema = csv_to_parquet_file(src, dest)
    assert schema.field("v").type == pa.float64()


def test_csv_header_only(tmp_path: Path) -> None:
    src = write(tmp_path / "h.csv", b"a,b\n")
    dest = tmp_path / "h.parquet"
    schema = csv_to_parquet_file(src, dest)
    assert schema.names == ["a", "b"]
    assert pq.read_table(dest).num_rows == 0


# --- time column and event-time range --------------------------------------------------------


def test_detect_time_column() -> None:
    ts = pa.timestamp("us", tz="UTC")
    assert detect_time_column(pa.schema([("v", pa.float64()), ("timestamp", ts)])) == "timestamp"
    assert detect_time_column(pa.schema([("time", pa.int64()), ("at", ts)])) == "time"
    assert detect_time_column(pa.schema([("event_time", pa.date32())])) == "event_time"
    # a column called "time" that holds text is not a time column
    assert detect_time_column(pa.schema([("time", pa.string()), ("at", ts)])) == "at"
    assert detect_time_column(pa.schema([("v", pa.float64())])) is None
    assert detect_time_column(pa.schema([("a", ts), ("b", ts)]), "b") == "b"
    assert detect_time_column(pa.schema([("n", pa.int32())]), "n") == "n"
    with pytest.raises(FormatError, match="'missing' not found"):
        detect_time_column(pa.schema([("a", ts)]), "missing")
    with pytest.raises(FormatError, match="must be a timestamp, date or integer"):
        detect_time_column(pa.schema([("s", pa.string())]), "s")


T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T0_US = 1_704_067_200_000_000


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_event_time_range_units(unit: str, tz: str | None) -> None:
    values = [T0 + dt.timedelta(seconds=10), None, T0]
    if tz is None:
        values = [v.replace(tzinfo=None) if v else None for v in values]
    table = pa.table({"t": pa.array(values, pa.timestamp(unit, tz=tz))})
    assert event_time_range(table, "t") == (T0_US, T0_US + 10_000_000)


def test_event_time_range_ns_floors() -> None:
    table = pa.table({"t": pa.array([1_500, 2_999], pa.timestamp("ns"))})
    assert event_time_range(table, "t") == (1, 2)


def test_event_time_range_other_types() -> None:
    dates = pa.table({"d": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 1)], pa.date32())})
    assert event_time_range(dates, "d") == (T0_US, T0_US + 86_400_000_000)
    d64 = pa.table({"d": pa.array([dt.date(2024, 1, 1)], pa.date64())})
    assert event_time_range(d64, "d") == (T0_US, T0_US)
    ints = pa.table({"i": pa.array([5, -3, 7], pa.int32())})
    assert event_time_range(ints, "i") == (-3, 7)
    empty = pa.table({"t": pa.array([], pa.timestamp("us"))})
    assert event_time_range(empty, "t") == (None, None)
    nulls = pa.table({"t": pa.array([None, None], pa.timestamp("us"))})
    assert event_time_range(nulls, "t") == (None, None)
    with pytest.raises(FormatError, match="not found"):
        event_time_range(ints, "zzz")
    with pytest.raises(FormatError, match="not a timestamp"):
        event_time_range(pa.table({"s": ["a"]}), "s")


def test_event_time_range_parquet_reads_only_that_column(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + dt.timedelta(minutes=1)], pa.timestamp("us", "UTC")),
            "value": [1.0, 2.0],
        }
    )
    data = table_to_parquet_bytes(table)
    p = write(tmp_path / "s.parquet", data)
    expected = (T0_US, T0_US + 60_000_000)
    assert event_time_range_parquet(p, "timestamp") == expected
    assert event_time_range_parquet(str(p), "timestamp") == expected
    assert event_time_range_parquet(data, "timestamp") == expected
    assert event_time_range_parquet(io.BytesIO(data), "timestamp") == expected
    with pytest.raises(FormatError, match="'nope' not found"):
        event_time_range_parquet(p, "nope")
    with pytest.raises(FormatError, match="not a Parquet file"):
        event_time_range_parquet(b"not parquet at all", "timestamp")
    with pytest.raises(NotFoundError):
        event_time_range_parquet(tmp_path / "missing.parquet", "timestamp")
