"""Locating a series' parts in one batched lookup (storage/seriesparts.py, issue 19):
inline and blob versions, time windows pruning before any content is read, and reads
whose contents do not fit the content cache, all with exact results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond import nodes
from duckpond.errors import PondError
from duckpond.pond import Pond
from duckpond.storage import datatable

HOUR = 3_600_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def hours(first: int, n: int, seed: int = 0, pad: int = 0) -> pa.Table:
    """n hourly rows from hour `first` on; value = the hour; `pad` bytes of noise per row
    (incompressible) to make the version's Parquet big."""
    ts = T0 + (first + np.arange(n, dtype=np.int64)) * HOUR
    cols = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "value": pa.array(first + np.arange(n, dtype=np.int64)),
    }
    if pad:
        noise = np.random.default_rng(seed).bytes(pad * n)
        cols["noise"] = pa.array([noise[i * pad : (i + 1) * pad] for i in range(n)], pa.binary())
    return pa.table(cols)


@pytest.fixture
def pond(pond_dir: Path) -> Pond:
    return Pond.open(pond_dir)


def write_versions(pond: Pond, path: str, tables: list[pa.Table]) -> None:
    for table in tables:
        with pond.transaction() as tx:
            tx.write_series(path, table, parents=True)


def test_parts_of_inline_and_blob_versions(pond: Pond) -> None:
    # versions 1 and 3 inline, 2 in the blob store (its Parquet is over 64 KiB)
    write_versions(pond, "/s", [hours(0, 3), hours(10, 4, pad=40_000), hours(20, 2)])
    loc = pond.fs.require("/s")
    rows = pond.fs.versions(loc.part_id, loc.node_id)
    parts = pond.fs.series_parts(loc.part_id, loc.node_id)
    assert [p.version for p in parts] == [1, 2, 3]
    assert [p.path is None for p in parts] == [True, False, True]
    assert parts[1].path == str(pond.blobs.path_for(rows[1].content_hash or ""))
    assert Path(parts[1].path or "").stat().st_size == rows[1].size
    assert [p.data for p in parts] == [rows[0].content, None, rows[2].content]
    assert [(p.min_time, p.max_time) for p in parts] == [
        (T0, T0 + 2 * HOUR),
        (T0 + 10 * HOUR, T0 + 13 * HOUR),
        (T0 + 20 * HOUR, T0 + 21 * HOUR),
    ]
    # a window keeps the versions whose range can meet it (bounds inclusive)
    window = pond.fs.series_parts(loc.part_id, loc.node_id, T0 + 2 * HOUR, T0 + 10 * HOUR)
    assert [p.version for p in window] == [1, 2]
    after = pond.fs.series_parts(loc.part_id, loc.node_id, T0 + 14 * HOUR, None)
    assert [p.version for p in after] == [3]
    # none can: the newest alone, whose footer gives an empty result its columns
    gap = pond.fs.series_parts(loc.part_id, loc.node_id, T0 + 15 * HOUR, T0 + 19 * HOUR)
    assert [p.version for p in gap] == [3]


def test_window_reads_exact_rows_through_cli(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    write_versions(pond, "/s/t", [hours(10 * k, 10) for k in range(12)])
    q = "SELECT count(*) AS n, sum(value) AS s FROM source"

    def cat(*window: str) -> str:
        out = run_pond("cat", "--format", "csv", "--sql", q, *window, "/s/t", pond=pond_dir)
        return out.stdout.decode().splitlines()[1]

    assert cat() == f"120,{sum(range(120))}"
    start, end = str(T0 + 35 * HOUR), str(T0 + 64 * HOUR)  # parts of versions 4 to 7
    assert cat("--time-start", start, "--time-end", end) == f"30,{sum(range(35, 65))}"
    assert cat("--time-start", str(T0 + 500 * HOUR)) == "0,"
    # an empty window still has the series' columns
    cols = run_pond(
        "cat", "--format", "csv", "--time-start", str(T0 + 500 * HOUR), "/s/t", pond=pond_dir
    )
    assert cols.stdout.decode().splitlines() == ['"ts","value"']


def test_read_bigger_than_the_content_cache(pond: Pond, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline versions whose contents overflow the bounded cache: every row group is read
    once per read, and a second read in the same process gives the same rows."""
    monkeypatch.setattr(datatable, "CONTENT_CACHE_BYTES", 64 * 1024)
    tables = [hours(40 * k, 40, seed=k, pad=600) for k in range(30)]
    write_versions(pond, "/s", tables)
    assert all(v.in_blob is False for v in pond.versions("/s"))
    fresh = Pond.open(pond.root)
    q = "SELECT count(*) AS n, sum(value) AS s FROM source"
    want = [{"n": 1200, "s": sum(range(1200))}]
    assert fresh.sql(q, path="/s").to_pylist() == want
    assert fresh.sql(q, path="/s").to_pylist() == want
    assert fresh.data.cache_size()["content_bytes"] <= 64 * 1024 + 40 * 1024
    got = fresh.sql(q, path="/s", time_start=T0 + 400 * HOUR, time_end=T0 + 479 * HOUR)
    assert got.to_pylist() == [{"n": 80, "s": sum(range(400, 480))}]


def test_derived_series_window_over_stored_series(pond: Pond) -> None:
    for name in ("a", "b"):
        write_versions(pond, f"/raw/{name}", [hours(10 * k, 10) for k in range(5)])
    cfg = {"patterns": {"m": "series:///raw/*"}, "query": "SELECT * FROM m WHERE value % 2 = 0"}
    pond.mknod("sql-derived-series", "/derived/even", yaml.safe_dump(cfg).encode())
    q = "SELECT count(*) AS n, sum(value) AS s FROM source"
    assert pond.sql(q, path="/derived/even").to_pylist() == [{"n": 50, "s": 2 * 600}]
    got = pond.sql(q, path="/derived/even", time_start=T0 + 15 * HOUR, time_end=T0 + 24 * HOUR)
    # hours 16, 18, 20, 22, 24 of each input
    assert got.to_pylist() == [{"n": 10, "s": 2 * 100}]
    none = pond.sql(q, path="/derived/even", time_start=T0 + 90 * HOUR)
    assert none.to_pylist() == [{"n": 0, "s": None}]


def test_lost_blob_inside_the_window_is_an_error(pond: Pond) -> None:
    write_versions(pond, "/s", [hours(0, 4, pad=40_000), hours(10, 3)])
    lost = pond.versions("/s")[0]
    assert lost.in_blob and nodes.is_series(lost.file_type)
    pond.blobs.path_for(lost.content_hash or "").unlink()
    q = "SELECT count(*) AS n FROM source"
    assert pond.sql(q, path="/s", time_start=T0 + 5 * HOUR).to_pylist() == [{"n": 3}]
    with pytest.raises(PondError, match="no such file"):
        pond.sql(q, path="/s", time_end=T0 + 5 * HOUR)


def test_version_columns_list_every_version_without_contents(pond: Pond) -> None:
    """The listing temporal-reduce's seals check (storage/seriesparts.version_columns):
    every stored version, a bounds record too, as the rows give it, and no content read."""
    write_versions(pond, "/s", [hours(0, 3), hours(10, 4, pad=40_000), hours(20, 2)])
    pond.set_temporal_bounds("/s", min_time=T0 + HOUR)
    rows = pond.versions("/s")
    fresh = Pond.open(pond.root)
    loc = fresh.fs.require("/s")
    read_before = fresh.data.cache_size()["content_bytes"]  # the directories' on the way
    got = fresh.fs.version_columns(loc.part_id, loc.node_id)
    assert fresh.data.cache_size()["content_bytes"] == read_before
    assert got.version == [1, 2, 3, 4] == [r.version for r in rows]
    assert got.txn_seq == [r.txn_seq for r in rows]
    assert got.content_hash == [r.content_hash for r in rows]
    assert got.attributes == [r.extended_attributes for r in rows]
    assert list(zip(got.min_time, got.max_time, strict=True))[:3] == [
        (T0, T0 + 2 * HOUR),
        (T0 + 10 * HOUR, T0 + 13 * HOUR),
        (T0 + 20 * HOUR, T0 + 21 * HOUR),
    ]
    assert got.attributes[3]["temporal_bounds"] == {"min": T0 + HOUR, "max": None}


def test_listings_follow_appends_in_one_process(pond: Pond) -> None:
    """A series listed, then appended to and listed again by the same Pond: the new version
    shows in its parts, its versions and its bounds (the listing is memoized per index
    list, which the index replaces when the node changes)."""
    write_versions(pond, "/s", [hours(0, 3), hours(10, 2)])
    loc = pond.fs.require("/s")
    assert [p.version for p in pond.fs.series_parts(loc.part_id, loc.node_id)] == [1, 2]
    assert pond.fs.version_columns(loc.part_id, loc.node_id).version == [1, 2]
    write_versions(pond, "/s", [hours(20, 1)])
    pond.set_temporal_bounds("/s", max_time=T0 + 15 * HOUR)
    loc = pond.fs.require("/s")
    assert pond.fs.version_columns(loc.part_id, loc.node_id).version == [1, 2, 3, 4]
    assert [p.version for p in pond.fs.series_parts(loc.part_id, loc.node_id)] == [1, 2, 3]
    assert pond.fs.series_bounds(loc.part_id, loc.node_id) == (None, T0 + 15 * HOUR)
    q = "SELECT count(*) AS n, sum(value) AS s FROM source"
    assert pond.sql(q, path="/s").to_pylist() == [{"n": 5, "s": 0 + 1 + 2 + 10 + 11}]
