"""Factories read a stored series through the series read cache, as `pond cat` does
(dynamic/physical.py StoredFile -> query/seriescache.py): a factory's whole read of a series
of many inline versions writes a segment and later reads use it, windowed reads and
temporal bounds read as before, answers never change (appends, revert, collapse, bounds),
and `StoredFile.schema()` takes the segments' recorded schemas plus the tail's footers,
equal to the schema unified over every version's footer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import run_pond

from duckpond import seriescache
from duckpond.dynamic import Resolver
from duckpond.dynamic.physical import StoredFile
from duckpond.pond import Pond
from duckpond.query import ingest, relations
from duckpond.query import seriescache as query_cache

US = pa.timestamp("us", tz="UTC")
MIN = 60_000_000
H = 60 * MIN
T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
ROWS = 3  # rows per version, a minute apart
N = 40  # versions at the start
DERIVED = "/d"
REDUCED = "/r/t/res=1h.series"
AGG = "SELECT count(*) AS n, sum(v2) AS s, min(timestamp) AS lo, max(timestamp) AS hi FROM source"


def version(k: int) -> pa.Table:
    """Version k: ROWS rows a minute apart from T0 + k * ROWS minutes, values k*10 + i."""
    return pa.table(
        {
            "timestamp": pa.array(
                [T0 + (k * ROWS + i) * MIN for i in range(ROWS)], pa.int64()
            ).cast(US),
            "value": pa.array([k * 10 + i for i in range(ROWS)], pa.int64()),
        }
    )


def append(root: Path, ks: range, make: Any = version) -> list[int]:
    """Versions `ks` appended to /s/t, one transaction each; their txn_seqs."""
    pond = Pond.open(root)
    seqs = []
    for k in ks:
        with pond.transaction(args=["test", "append", str(k)]) as tx:
            tx.write_series("/s/t", make(k), parents=True)
            seqs.append(tx.txn_seq)
    return seqs


def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows_of(ks: list[int], lo: int | None = None, hi: int | None = None) -> list[tuple[int, int]]:
    """(time, value) of versions `ks`, within [lo, hi]."""
    out = [(T0 + (k * ROWS + i) * MIN, k * 10 + i) for k in ks for i in range(ROWS)]
    return [(t, v) for t, v in out if (lo is None or t >= lo) and (hi is None or t <= hi)]


def derived_answer(rows: list[tuple[int, int]]) -> list[list[str]]:
    """`AGG` over /d (v2 = value * 2) as `pond cat --format csv` prints it."""
    times = [t for t, _ in rows]
    return [
        ["n", "s", "lo", "hi"],
        [str(len(rows)), str(sum(2 * v for _, v in rows)), iso(min(times)), iso(max(times))],
    ]


def reduced_answer(rows: list[tuple[int, int]]) -> list[list[str]]:
    """/r's hourly sum and count as `pond cat --format csv` prints them."""
    buckets: dict[int, list[int]] = {}
    for t, v in rows:
        buckets.setdefault(t // H * H, []).append(v)
    return [["timestamp", "value.sum", "value.count"]] + [
        [iso(b), str(sum(vs)), str(len(vs))] for b, vs in sorted(buckets.items())
    ]


def cat(root: Path, path: str, *args: str, fresh: bool = True) -> list[list[str]]:
    """`pond cat PATH ARGS --format csv`, parsed; `fresh`: the derived-result cache dropped
    first, so the factory really reads its input."""
    if fresh:
        shutil.rmtree(root / "cache" / "derived", ignore_errors=True)
    out = run_pond("cat", path, *args, "--format", "csv", pond=root).stdout.decode()
    return list(csv.reader(io.StringIO(out)))


def segments(root: Path) -> list[str]:
    """The series cache's segments as `<start>+<count>`, sorted; temporary files as `tmp`."""
    out = []
    for path in (root / "cache" / "series").rglob("*"):
        if path.is_file():
            fields = path.name[: -len(".parquet")].split("-")
            out.append("tmp" if path.name.startswith(".tmp-") else f"{fields[0]}+{fields[1]}")
    return sorted(out)


def mknod(root: Path, factory: str, path: str, config: dict[str, Any]) -> None:
    Pond.open(root).mknod(factory, path, yaml.safe_dump(config).encode())


@pytest.fixture
def pond(tmp_path: Path) -> Path:
    """/s/t of N inline versions (no cache yet), /d = sql-derived-series over it,
    /r = temporal-reduce of it to hourly sum and count."""
    root = tmp_path / "pond"
    Pond.create(root)
    append(root, range(N))
    derived = {"patterns": {"t": "/s/t"}, "query": "SELECT timestamp, value * 2 AS v2 FROM t"}
    mknod(root, "sql-derived-series", DERIVED, derived)
    reduce = {
        "in_pattern": "/s/*",
        "resolutions": ["1h"],
        "aggregations": [{"type": "sum", "columns": ["value"]}, {"type": "count", "columns": []}],
    }
    mknod(root, "temporal-reduce", "/r", reduce)
    return root


def test_factory_reads_write_and_use_the_cache_with_the_same_answers(pond: Path) -> None:
    live = list(range(N))
    assert not (pond / "cache" / "series").exists()
    # the factory's read of /s/t (no cache yet) writes the segment, as `pond cat` would
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))
    assert segments(pond) == [f"0+{N}"]
    # the reduction's first read (a full recompute) goes through that segment
    assert cat(pond, REDUCED) == reduced_answer(rows_of(live))
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))

    # appends: the segment plus the tail, then the tail merged into a new one
    seqs = append(pond, range(N, N + seriescache.MIN_PARTS + 2))
    live += list(range(N, N + seriescache.MIN_PARTS + 2))
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))
    assert segments(pond) == [f"0+{N}", f"{N}+{len(live) - N}"]
    assert cat(pond, REDUCED) == reduced_answer(rows_of(live))

    # the last append undone: never answered from the segment that holds it
    run_pond("revert", seqs[-1], pond=pond)
    live.pop()
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))
    assert cat(pond, REDUCED) == reduced_answer(rows_of(live))

    # temporal bounds: rows outside them never shown, also through the cache
    lo, hi = T0 + 10 * MIN, T0 + 100 * MIN
    run_pond("set-temporal-bounds", "/s/t", "--min-time", lo, "--max-time", hi, pond=pond)
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live, lo, hi))
    assert cat(pond, REDUCED) == reduced_answer(rows_of(live, lo, hi))
    run_pond("set-temporal-bounds", "/s/t", "--clear", pond=pond)
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))

    # versions collapsed into one: its rows, not the segments'
    run_pond("maintain", "--collapse-versions", 1, pond=pond)
    assert cat(pond, DERIVED, "--sql", AGG) == derived_answer(rows_of(live))
    assert cat(pond, REDUCED) == reduced_answer(rows_of(live))


def plant(path: Path, table: pa.Table, schema: pa.Schema | None) -> Path:
    """Replace a segment by `table` under a valid name (its start, count and key, the new
    size), recording `schema` as a segment does (None: none recorded): what a read then
    returns came from the segment."""
    start, count, key, _ = path.name[: -len(".parquet")].split("-")
    path.unlink()
    tmp = path.parent / "planted"
    if schema is not None:
        table = table.replace_schema_metadata(
            {query_cache.SCHEMA_KEY: query_cache._encode_schema(schema)}
        )
    pq.write_table(table, tmp)
    final = path.parent / seriescache.file_name(int(start), int(count), key, tmp.stat().st_size)
    tmp.rename(final)
    return final


def the_segment(root: Path) -> Path:
    (found,) = (root / "cache" / "series").rglob("*.parquet")
    return found


def test_a_factory_read_takes_its_rows_from_the_segment(pond: Path) -> None:
    assert cat(pond, "/s/t", "--sql", "SELECT count(*) AS n FROM source") == [["n"], ["120"]]
    assert segments(pond) == [f"0+{N}"]
    planted = pa.table({"timestamp": version(0).column(0), "value": [7, 8, 9]})
    plant(the_segment(pond), planted, planted.schema)
    assert cat(pond, DERIVED, "--sql", "SELECT v2 FROM source ORDER BY timestamp") == [
        ["v2"],
        ["14"],
        ["16"],
        ["18"],
    ]


def test_a_windowed_factory_read_writes_no_segment_and_reads_the_window(pond: Path) -> None:
    lo, hi = T0 + 30 * MIN, T0 + 44 * MIN
    window = ("--time-start", str(lo), "--time-end", str(hi))
    got = cat(pond, DERIVED, *window, "--sql", AGG)
    assert got == derived_answer(rows_of(list(range(N)), lo, hi))
    assert not (pond / "cache" / "series").exists()  # a window is not every version


# ---------------------------------------------------------------------------------------------
# schema()

A32 = pa.field("a", pa.int32(), metadata={"unit": "m"})


def evolving(k: int) -> pa.Table:
    """Versions whose schemas differ: a:int32 (with field metadata) first, then a column b
    before a and a widened to int64, then a column c added at the end."""
    times = pa.array([T0 + (k * ROWS + i) * MIN for i in range(ROWS)], pa.int64()).cast(US)
    values = [k * 10 + i for i in range(ROWS)]
    if k < 20:
        return pa.Table.from_arrays(
            [times, pa.array(values, pa.int32())], schema=pa.schema([("timestamp", US), A32])
        )
    if k < 40:
        return pa.table(
            {
                "timestamp": times,
                "b": pa.array([v / 2 for v in values], pa.float64()),
                "a": pa.array(values, pa.int64()),
            }
        )
    return pa.table(
        {"timestamp": times, "a": pa.array(values, pa.int64()), "c": [str(v) for v in values]}
    )


EVOLVED = pa.schema(
    [
        ("timestamp", US),
        pa.field("a", pa.int64(), metadata={"unit": "m"}),
        ("b", pa.float64()),
        ("c", pa.string()),
    ]
)


def stored(root: Path) -> StoredFile:
    node = Resolver.for_pond(Pond.open(root), cache=False).require("/s/t")
    assert isinstance(node, StoredFile)
    return node


def every_footer(node: StoredFile) -> pa.Schema:
    """The schema unified over every live version's own footer (no cache)."""
    found = node.fs.series_parts(node.loc.part_id, node.loc.node_id)
    assert len(found) == len([p for p in found if p.cache_key is None])
    return relations.unify_schemas(
        [ingest.read_parquet_schema(p.path or p.data or b"") for p in found]
    )


def test_schema_from_segments_and_tail_is_every_versions_unified(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    Pond.create(root)
    append(root, range(40), evolving)
    mknod(
        root, "sql-derived-series", "/all", {"patterns": {"t": "/s/t"}, "query": "SELECT * FROM t"}
    )
    cat(root, "/s/t", "--sql", "SELECT count(*) AS n FROM source")  # writes the segment
    append(root, range(40, 43), evolving)  # a tail too short to be cached
    assert segments(root) == ["0+40"]
    # the segment's own Parquet schema is DuckDB's (no field metadata): the recorded one
    # is what keeps the schema exact
    assert pq.read_schema(the_segment(root)).field("a").metadata is None

    node = stored(root)
    assert node.schema().equals(EVOLVED, check_metadata=True)
    assert node.schema().equals(every_footer(node), check_metadata=True)
    # a factory over it describes the same columns
    out = run_pond("describe", "/all", pond=root).stdout.decode()
    assert "  timestamp: timestamp[us, tz=UTC]\n  a: int64\n  b: double\n  c: string\n" in out


def _cached(tmp_path: Path) -> tuple[Path, Path]:
    """A pond whose series of 40 evolving versions has one cache segment: (root, segment)."""
    root = tmp_path / "pond"
    Pond.create(root)
    append(root, range(40), evolving)
    cat(root, "/s/t", "--sql", "SELECT count(*) AS n FROM source")
    return root, the_segment(root)


def test_schema_is_read_from_the_segments_record(tmp_path: Path) -> None:
    root, segment = _cached(tmp_path)
    rows = pq.read_table(segment)
    # a record naming a column no version has: schema() took it, not 40 footers
    marked = relations.unify_schemas([EVOLVED.remove(3), pa.schema([("planted", pa.int8())])])
    plant(segment, rows, marked)
    assert stored(root).schema().equals(marked, check_metadata=True)


def test_a_segment_without_a_record_falls_back_to_every_footer(tmp_path: Path) -> None:
    root, segment = _cached(tmp_path)
    plant(segment, pq.read_table(segment), None)  # as a cache written before records
    node = stored(root)
    assert node.schema().equals(EVOLVED.remove(3), check_metadata=True)
    assert node.schema().equals(every_footer(node), check_metadata=True)
