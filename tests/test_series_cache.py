"""The series read cache (duckpond/seriescache.py, query/seriescache.py; issue 19 goal 2): a
read of a series of many inline versions writes their rows once as a Parquet file under
<pond>/cache/series/, later reads use it plus the newer versions only. Exactness first:
every change to the live versions (appends, revert, collapse, temporal bounds, rm) gives the
rows the versions hold, and a damaged, unwritable or half-written cache never fails a read."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_pond
from s3server import Remote

from duckpond import seriescache
from duckpond.errors import QueryError
from duckpond.pond import Pond
from duckpond.query.sql import make_context, within_limits
from duckpond.remotes.push import push

US = pa.timestamp("us", tz="UTC")
MIN = 60_000_000
T0 = 1_700_000_000_000_000
MANY = seriescache.MIN_PARTS  # 16: this many uncached inline versions build a cache
ROWS = 3  # rows per version
QUERY = "SELECT count(*) AS n, sum(value) AS s, min(timestamp) AS lo, max(timestamp) AS hi"
# its answer over versions 0..19 (`pond cat --format csv`)
LINE = '60,5760,"2023-11-14T22:13:20.000000Z","2023-11-14T23:12:20.000000Z"'


def version(k: int, offset: int = 0) -> pa.Table:
    """Version k: ROWS rows a minute apart, values k*10 + i + offset."""
    return pa.table(
        {
            "timestamp": pa.array(
                [T0 + (k * ROWS + i) * MIN for i in range(ROWS)], pa.int64()
            ).cast(US),
            "value": pa.array([k * 10 + i + offset for i in range(ROWS)], pa.int64()),
        }
    )


def append(root: Path, first: int, n: int, offset: int = 0) -> list[int]:
    """Versions first..first+n-1 appended to /s/t, one transaction each; their txn_seqs."""
    pond = Pond.open(root)
    seqs = []
    for k in range(first, first + n):
        with pond.transaction(args=["test", "append", str(k)]) as tx:
            tx.write_series("/s/t", version(k, offset), parents=True)
            seqs.append(tx.txn_seq)
    return seqs


def values(root: Path, **kw: object) -> list[int]:
    table = Pond.open(root).read("/s/t", **kw)  # type: ignore[arg-type]
    return table.column("value").to_pylist()


def expected(ks: range | list[int], offset: int = 0) -> list[int]:
    return [k * 10 + i + offset for k in ks for i in range(ROWS)]


def cache_files(root: Path) -> list[str]:
    """The cache segments' names as `<start>+<count>` (the key and size stripped), sorted;
    temporary files as `tmp`."""
    out = []
    for path in (root / "cache" / "series").rglob("*"):
        if path.is_file():
            out.append("tmp" if path.name.startswith(".tmp-") else "+".join(_fields(path)[:2]))
    return sorted(out, key=lambda x: (x == "tmp", [int(n) for n in x.split("+") if n.isdigit()]))


def _fields(path: Path) -> list[str]:
    return path.name[: -len(".parquet")].split("-")


def the_cache(root: Path) -> Path:
    found = [p for p in (root / "cache" / "series").rglob("*.parquet") if p.is_file()]
    assert len(found) == 1, found
    return found[0]


def plant(path: Path, table: pa.Table) -> Path:
    """Replace a cache file by `table` under a valid name (same count and key, its size):
    a read that returns these rows read the cache."""
    start, count, key, _ = _fields(path)
    path.unlink()
    tmp = path.parent / "planted"
    pq.write_table(table, tmp)
    final = path.parent / seriescache.file_name(int(start), int(count), key, tmp.stat().st_size)
    tmp.rename(final)
    return final


@pytest.fixture
def series(tmp_path: Path) -> Path:
    """A pond whose /s/t has MANY + 4 inline versions (k = 0..19), no cache yet."""
    root = tmp_path / "pond"
    Pond.create(root)
    append(root, 0, MANY + 4)
    return root


def test_first_read_writes_the_cache_and_later_reads_use_it(series: Path) -> None:
    assert not (series / "cache" / "series").exists()
    assert values(series) == expected(range(20))
    assert cache_files(series) == ["0+20"]
    name = the_cache(series).name
    assert values(series) == expected(range(20))  # the same rows from the cache
    assert [p.name for p in (series / "cache").rglob("*.parquet")] == [name]
    # the cache is what a read reads: a planted file's rows come back
    plant(the_cache(series), pa.table({"timestamp": version(0).column(0), "value": [7, 8, 9]}))
    assert values(series) == [7, 8, 9]


def test_appends_read_cache_plus_new_versions_and_refresh_past_the_threshold(
    series: Path,
) -> None:
    values(series)
    planted = plant(the_cache(series), version(0, offset=1000).slice(0, 1))
    append(series, 20, 1)
    # the planted cache stands for versions 0..19, version 20 is read as it is
    assert values(series) == [1000, *expected([20])]
    assert cache_files(series) == ["0+20"]
    append(series, 21, MANY - 2)  # 15 uncached: still below the threshold
    assert values(series) == [1000, *expected(range(20, 35))]
    assert cache_files(series) == ["0+20"]
    append(series, 35, 1)  # 16 uncached: this read writes a cache of all 36
    assert values(series) == [1000, *expected(range(20, 36))]
    assert cache_files(series) == ["0+20", "0+36"]
    assert planted.exists()
    # `pond maintain` keeps the longest cache that matches the live versions
    report = Pond.open(series).maintain()
    assert report.tables["series_cache"] == {"removed": 1}
    assert cache_files(series) == ["0+36"]
    assert values(series) == [1000, *expected(range(20, 36))]


def test_revert_of_an_append_is_never_answered_from_the_cache(series: Path) -> None:
    more = append(series, 20, 1)
    assert values(series) == expected(range(21))
    assert cache_files(series) == ["0+21"]
    Pond.open(series).revert(more[0])
    assert values(series) == expected(range(20))
    assert cache_files(series) == ["0+20", "0+21"]  # the live versions changed: a new key
    report = Pond.open(series).maintain()
    assert report.tables["series_cache"] == {"removed": 1}
    assert cache_files(series) == ["0+20"]


def test_rewritten_version_after_revert_gets_its_own_key(series: Path) -> None:
    more = append(series, 20, 1)
    values(series)
    Pond.open(series).revert(more[0])
    append(series, 20, 1, offset=5)  # version 20's times again, other values
    assert values(series) == expected(range(20)) + expected([20], offset=5)


def test_collapse_reads_the_collapsed_version(series: Path) -> None:
    values(series)
    planted = plant(the_cache(series), version(0, offset=1000))
    report = Pond.open(series).collapse_versions(1)
    assert report is not None
    assert values(series) == expected(range(20))  # the collapsed version, not the plant
    assert planted.exists()


def test_temporal_bounds_filter_rows_the_cache_holds(series: Path) -> None:
    values(series)
    lo, hi = T0 + 4 * MIN, T0 + 10 * MIN
    Pond.open(series).set_temporal_bounds("/s/t", lo, hi)
    assert values(series) == [11, 12, 20, 21, 22, 30, 31]
    Pond.open(series).set_temporal_bounds("/s/t", None, None)
    assert values(series) == expected(range(20))


def test_rm_and_a_new_series_at_the_same_path(series: Path) -> None:
    values(series)
    pond = Pond.open(series)
    pond.rm("/s/t")
    append(series, 0, MANY + 4, offset=3)
    assert values(series) == expected(range(20), offset=3)


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [
        (None, None, expected(range(20))),
        (T0, T0 + 59 * MIN, expected(range(20))),  # keeps every version: the cache is used
        (T0 - MIN, T0 + 2 * MIN, [0, 1, 2]),
        (T0 + 4 * MIN + 1, T0 + 10 * MIN, [12, 20, 21, 22, 30, 31]),
        (T0 + 59 * MIN, None, [192]),
        (T0 + 60 * MIN, None, []),
    ],
)
def test_windows_give_the_same_rows_with_and_without_the_cache(
    series: Path, start: int | None, end: int | None, want: list[int]
) -> None:
    before = values(series, time_range=(start, end))
    assert before == want
    values(series)  # the cache written
    assert cache_files(series) == ["0+20"]
    assert values(series, time_range=(start, end)) == want


def test_types_and_time_zones_read_alike_through_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    zone = pa.timestamp("us", tz="America/New_York")
    for k in range(MANY + 2):
        cols = {
            "timestamp": pa.array([T0 + k * MIN], pa.int64()).cast(zone),
            "local": pa.array([dt.datetime(2024, 3, 10, 1, k)], pa.timestamp("s")),
            "name": pa.array([f"n{k}" if k % 3 else None]),
            "score": pa.array([k / 4], pa.float32()),
        }
        if k >= 5:  # a column added later: null before
            cols["extra"] = pa.array([k], pa.int16())
        with pond.transaction(args=["test", str(k)]) as tx:
            tx.write_series("/s/t", pa.table(cols), parents=True)
    # a window keeping every version: read without building a cache
    everything = (T0 - MIN, T0 + 100 * MIN)
    uncached = Pond.open(root).read("/s/t", time_range=everything)
    assert not (root / "cache").exists()
    built = Pond.open(root).read("/s/t")  # writes the cache, reads it
    cached = Pond.open(root).read("/s/t")
    assert cache_files(root) == [f"0+{MANY + 2}"]
    assert built.schema == uncached.schema == cached.schema
    assert built.to_pylist() == uncached.to_pylist() == cached.to_pylist()
    assert cached.column("extra").to_pylist() == [None] * 5 + list(range(5, MANY + 2))
    assert str(cached.schema.field("timestamp").type) == str(
        Pond.open(root).read("/s/t", version=1).schema.field("timestamp").type
    )
    sql = "SELECT strftime(timestamp, '%H:%M') AS t FROM source ORDER BY timestamp LIMIT 2"
    assert Pond.open(root).sql(sql, path="/s/t").column("t").to_pylist() == ["22:13", "22:14"]


def test_garbage_in_the_cache_falls_back_to_the_versions(series: Path) -> None:
    values(series)
    path = the_cache(series)
    size = path.stat().st_size
    path.write_bytes(b"garbage!" * (size // 8) + b"g" * (size % 8))  # same size, no Parquet
    assert values(series) == expected(range(20))
    assert cache_files(series) == []  # the damaged file went
    assert values(series) == expected(range(20))  # the next read writes a good one
    assert pq.read_table(the_cache(series)).column("value").to_pylist() == expected(range(20))


def test_truncated_cache_is_not_used(series: Path) -> None:
    values(series)
    path = the_cache(series)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    assert values(series) == expected(range(20))
    assert pq.read_table(the_cache(series)).column("value").to_pylist() == expected(range(20))


def test_read_only_cache_directory_reads_without_a_cache(series: Path) -> None:
    if os.geteuid() == 0:
        # root writes anyway: a file where the directory should be makes it unwritable
        (series / "cache").mkdir()
        (series / "cache" / "series").write_bytes(b"not a directory")
    else:
        (series / "cache" / "series").mkdir(parents=True)
        (series / "cache" / "series").chmod(0o555)
    assert values(series) == expected(range(20))
    assert values(series) == expected(range(20))
    out = run_pond("cat", "--format", "csv", "--sql", f"{QUERY} FROM source", "/s/t", pond=series)
    assert out.stdout.decode().splitlines()[1] == LINE
    assert out.stderr == b""


def test_crash_while_writing_the_cache_leaves_reads_exact(series: Path) -> None:
    args = ["cat", "--format", "csv", "--sql", f"{QUERY} FROM source", "/s/t"]
    crashed = run_pond(
        *args, pond=series, env={"POND_CRASH_AT": "series_cache_before_publish"}, check=False
    )
    assert crashed.returncode == -signal.SIGKILL
    assert cache_files(series) == ["tmp"]  # the half-written file, never under a cache name
    assert run_pond(*args, pond=series).stdout.decode().splitlines()[1] == LINE
    assert cache_files(series) == ["0+20", "tmp"]
    # maintain leaves a young temporary file (a read may be writing it), removes an old one
    assert Pond.open(series).maintain().tables["series_cache"] == {"removed": 0}
    tmp = next((series / "cache").rglob(".tmp-*"))
    os.utime(tmp, (0, 0))
    assert Pond.open(series).maintain().tables["series_cache"] == {"removed": 1}
    assert cache_files(series) == ["0+20"]
    assert run_pond(*args, pond=series).stdout.decode().splitlines()[1] == LINE


def test_push_and_fsck_ignore_the_cache(series: Path, tmp_path: Path) -> None:
    values(series)
    name = the_cache(series).name
    store = Remote(url=f"file://{tmp_path / 'remote'}", options=None).store()
    push(series, store)
    pushed = [p.name for p in (tmp_path / "remote").rglob("*") if p.is_file()]
    assert pushed and name not in pushed
    assert not any("cache" in str(p) for p in (tmp_path / "remote").rglob("*"))
    result = Pond.open(series).fsck()
    assert result.ok and result.problems == []


def test_the_cache_write_stops_at_the_reads_time_limit(series: Path) -> None:
    """A cold read writes the cache within its own time limit: past it, no cache file (nor
    a temporary one) is left, and a read without a limit writes it."""
    pond = Pond.open(series)
    try:  # the limit passes before the write starts; the tiny query may still finish
        pond.read("/s/t", timeout=1e-9)
    except QueryError as e:
        assert "time limit" in str(e)
    assert cache_files(series) == []
    assert values(series) == expected(range(20))
    assert cache_files(series) == ["0+20"]


def test_within_limits_interrupts_work_at_the_deadline() -> None:
    ctx = make_context(timeout=0.2)
    try:
        endless = "SELECT sum(hash(i)) FROM range(1000000000000) t(i)"
        assert within_limits(ctx, lambda: ctx.con.execute(endless).fetchall()) is False
        assert ctx.con.execute("SELECT 42").fetchall() == [(42,)]  # still usable
    finally:
        ctx.close()


# --- segments (a refresh writes the tail only; merges as a binary counter) -------------


@pytest.fixture
def small_tail(monkeypatch: pytest.MonkeyPatch) -> int:
    """A new segment from 2 uncached versions on: a refresh after every other append."""
    monkeypatch.setattr(seriescache, "MIN_PARTS", 2)
    return 2


def segment_files(root: Path) -> dict[str, Path]:
    return {
        "+".join(_fields(p)[:2]): p
        for p in (root / "cache" / "series").rglob("*.parquet")
        if not p.name.startswith(".tmp-")
    }


def rows_in(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def test_refreshes_write_the_tail_and_merge_as_a_binary_counter(
    series: Path, small_tail: int
) -> None:
    values(series)
    planted = plant(the_cache(series), version(0, offset=1000).slice(0, 1))
    written = []
    for first in range(20, 30, 2):
        append(series, first, 2)
        before = set(segment_files(series))
        # the planted rows stand for versions 0..19 in every read, merged or not
        assert values(series) == [1000, *expected(range(20, first + 2))]
        new = {k: p for k, p in segment_files(series).items() if k not in before}
        assert len(new) == 1
        ((name, path),) = new.items()
        written.append((name, rows_in(path)))
    # [0,20) + 2: 20 > 2*2, kept; then 2 <= 2*2 merged, 4 <= 2*2 merged; 6 > 2*2 kept;
    # then 2 + 2 + 6 = 10, and 20 <= 2*10: all merged (31 rows: the plant holds 1)
    assert written == [("20+2", 6), ("20+4", 12), ("20+6", 18), ("26+2", 6), ("0+30", 31)]
    # 73 rows written in all where rewriting the series each time wrote 3 * (22 + ... + 30)
    assert sum(n for _, n in written) == 73
    # files merged away stay while young (a query may still read them): all of them here
    assert cache_files(series) == ["0+20", "0+30", "20+2", "20+4", "20+6", "26+2"]
    assert planted.exists()
    assert Pond.open(series).maintain().tables["series_cache"] == {"removed": 5}
    assert cache_files(series) == ["0+30"]
    assert values(series) == [1000, *expected(range(20, 30))]


def test_superseded_files_go_once_old_at_the_next_write(series: Path, small_tail: int) -> None:
    values(series)
    append(series, 20, 2)
    values(series)  # [20, 22) written
    append(series, 22, 2)
    values(series)  # merged into [20, 24)
    assert cache_files(series) == ["0+20", "20+2", "20+4"]
    old = segment_files(series)["20+2"]
    os.utime(old, (0, 0))  # out of the chain longer than a query may run
    legacy = old.parent / f"20-{'0' * 40}-99.parquet"  # as the cache once named a file
    legacy.write_bytes(b"x" * 99)
    os.utime(legacy, (0, 0))
    append(series, 24, 2)
    values(series)  # [20, 26): removes the old files, keeps the young one it merged away
    assert cache_files(series) == ["0+20", "20+4", "20+6"]
    assert not legacy.exists()
    append(series, 26, 2)
    values(series)
    assert cache_files(series) == ["0+20", "20+4", "20+6", "26+2"]
    assert values(series) == expected(range(28))


def test_a_revert_in_the_middle_keeps_the_segments_before_it(series: Path, small_tail: int) -> None:
    values(series)
    plant(the_cache(series), version(0, offset=1000).slice(0, 1))
    seqs = append(series, 20, 4)
    assert values(series) == [1000, *expected(range(20, 24))]
    assert cache_files(series) == ["0+20", "20+4"]
    Pond.open(series).revert(seqs[2], force=True)  # version 22 out
    # [0, 20) still read from its file; [20, 24) no longer matches: 20, 21, 23 read, and
    # written as [20, 23)
    assert values(series) == [1000, *expected([20, 21, 23])]
    assert cache_files(series) == ["0+20", "20+3", "20+4"]
    assert values(series) == [1000, *expected([20, 21, 23])]
    assert Pond.open(series).maintain().tables["series_cache"] == {"removed": 1}
    assert cache_files(series) == ["0+20", "20+3"]


def test_windows_use_the_segments_they_keep_whole(series: Path, small_tail: int) -> None:
    values(series)
    plant(the_cache(series), version(0, offset=1000).slice(0, 1))
    append(series, 20, 4)
    values(series)
    assert cache_files(series) == ["0+20", "20+4"]
    # keeps every version: both segments stand for them (the planted rows come back)
    assert values(series, time_range=(T0, T0 + 100 * MIN)) == [1000, *expected(range(20, 24))]
    # leaves version 0 out: no segment is exact, the versions are read
    assert values(series, time_range=(T0 + 3 * MIN, T0 + 100 * MIN)) == expected(range(1, 24))


def test_a_damaged_segment_drops_only_itself(series: Path, small_tail: int) -> None:
    values(series)
    append(series, 20, 4)
    values(series)
    assert cache_files(series) == ["0+20", "20+4"]
    path = segment_files(series)["20+4"]
    size = path.stat().st_size
    path.write_bytes(b"g" * size)  # same size, no Parquet
    assert values(series) == expected(range(24))
    assert cache_files(series) == ["0+20"]
    assert values(series) == expected(range(24))  # [20, 24) written again
    assert cache_files(series) == ["0+20", "20+4"]


def test_many_refreshes_keep_few_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One version per refresh, 40 refreshes: every older segment holds more than twice the
    versions of the next newer one (so at most log2(40) + 1 of them), and each version is
    written a few times, not once per refresh."""
    monkeypatch.setattr(seriescache, "MIN_PARTS", 1)
    root = tmp_path / "pond"
    Pond.create(root)
    rows_written = 0
    for k in range(40):
        append(root, k, 1)
        before = set(segment_files(root))
        assert values(root) == expected(range(k + 1))
        rows_written += sum(rows_in(p) for n, p in segment_files(root).items() if n not in before)
    chain = seriescache.lookup(
        next((root / "cache" / "series").glob("*/*")),
        Pond.open(root).fs.series_live_versions(*_ids(root)),
    )
    sizes = [e.count for e in chain]
    assert [(e.start, e.count) for e in chain] == [(0, 34), (34, 5), (39, 1)]
    assert all(a > 2 * b for a, b in zip(sizes, sizes[1:], strict=False))
    # each version written 3.9 times on average; rewriting the series at every refresh
    # wrote 3 * (1 + 2 + ... + 40) = 3 * 820 rows
    assert rows_written == 3 * 156


def _ids(root: Path) -> tuple[str, str]:
    loc = Pond.open(root).fs.require("/s/t")
    return loc.part_id, loc.node_id


def test_crash_while_merging_leaves_the_chain_and_reads_exact(series: Path) -> None:
    values(series)
    append(series, 20, MANY)  # 16 new versions: the next read writes [0, 36), merging
    args = ["cat", "--format", "csv", "--sql", "SELECT count(*) AS n, sum(value) AS s FROM source"]
    crashed = run_pond(
        *args,
        "/s/t",
        pond=series,
        env={"POND_CRASH_AT": "series_cache_before_publish"},
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL
    assert cache_files(series) == ["0+20", "tmp"]
    want = f"108,{sum(expected(range(36)))}"
    assert run_pond(*args, "/s/t", pond=series).stdout.decode().splitlines()[1] == want
    assert cache_files(series) == ["0+20", "0+36", "tmp"]
    assert run_pond(*args, "/s/t", pond=series).stdout.decode().splitlines()[1] == want


def test_types_read_alike_through_merged_segments(tmp_path: Path, small_tail: int) -> None:
    """Segments written as the versions come (a column added at version 5, nulls, a time
    zone), merged: the same schema and rows as the versions read as they are."""
    root = tmp_path / "pond"
    pond = Pond.create(root)
    zone = pa.timestamp("us", tz="America/New_York")
    for k in range(12):
        cols = {
            "timestamp": pa.array([T0 + k * MIN], pa.int64()).cast(zone),
            "name": pa.array([f"n{k}" if k % 3 else None]),
        }
        if k >= 5:
            cols["extra"] = pa.array([k], pa.int16())
        with pond.transaction(args=["test", str(k)]) as tx:
            tx.write_series("/s/t", pa.table(cols), parents=True)
        Pond.open(root).read("/s/t")
    assert cache_files(root) == ["0+2", "0+4", "0+6", "0+10", "6+2", "10+2"]
    chain = seriescache.lookup(
        next((root / "cache" / "series").glob("*/*")),
        Pond.open(root).fs.series_live_versions(*_ids(root)),
    )
    assert [(e.start, e.count) for e in chain] == [(0, 10), (10, 2)]  # 0..4 without `extra`
    uncached = Pond.open(root).read("/s/t", time_range=(T0 - MIN, T0 + 100 * MIN))
    cached = Pond.open(root).read("/s/t")
    assert cached.schema == uncached.schema
    assert cached.to_pylist() == uncached.to_pylist()
    assert cached.column("extra").to_pylist() == [None] * 5 + list(range(5, 12))
    assert cached.column("name").to_pylist() == [f"n{k}" if k % 3 else None for k in range(12)]
