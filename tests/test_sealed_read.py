"""A sealed temporal-reduce read after appends lists only the versions since its seal
(issue 21 bench 26a), and stays exact when the history before it changed: the seal checks
its last seen version (node, version, content hash, transaction) at its position, so a
revert, a series written again with as many versions and the same last content, or a
removed version make the read recompute everything (never a late-data error, never a
stale or doubled number)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond.dynamic import Resolver
from duckpond.pond import Pond
from duckpond.storage.fs import PondFS

H = 3_600_000_000
Q = H // 4
DAY = 24 * H
T0 = 1_784_073_600_000_000  # 2026-07-15T00:00:00Z
OUT = "/r/a/res=1h.series"


def day_rows(day: int, scale: float = 1.0) -> list[tuple[int, float]]:
    return [(T0 + day * DAY + k * Q, scale * (day * 96 + k)) for k in range(96)]


def append(pond: Pond, rows: list[tuple[int, float]]) -> int:
    """Append `rows` to /s/a as one version; returns the transaction's txn_seq."""
    table = pa.table(
        {
            "timestamp": pa.array([t for t, _ in rows], pa.timestamp("us", tz="UTC")),
            "v": pa.array([v for _, v in rows], pa.float64()),
        }
    )
    with pond.transaction() as tx:
        tx.write_series("/s/a", table, parents=True)
    return pond.data.last_txn_seq()


def expected(rows: list[tuple[int, float]]) -> list[tuple[int, float, int]]:
    """(bucket start, sum, count) per hour, computed here from the rows."""
    buckets: dict[int, list[float]] = {}
    for t, v in rows:
        buckets.setdefault(t // H * H, []).append(v)
    return [(b, sum(vs), len(vs)) for b, vs in sorted(buckets.items())]


def days(*which: int) -> list[tuple[int, float]]:
    return [r for d in which for r in day_rows(d)]


def read(pond: Pond) -> list[tuple[int, float, int]]:
    pond.refresh()
    t = Resolver.for_pond(pond, cache=False).require(OUT).scan()
    return list(
        zip(
            t.column("timestamp").cast(pa.int64()).to_pylist(),
            t.column("v.sum").to_pylist(),
            t.column("v.count").to_pylist(),
            strict=True,
        )
    )


def cli_read(root: Path) -> list[tuple[float, int]]:
    out = run_pond("cat", OUT, "--format", "json", pond=root).stdout
    return [(r["v.sum"], r["v.count"]) for r in json.loads(out)]


def manifest(root: Path) -> dict[str, Any]:
    (path,) = root.glob("sealed/*/*/manifest.json")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.fixture
def pond(tmp_path: Path) -> Pond:
    p = Pond.create(tmp_path / "pond")
    for day in range(4):
        append(p, day_rows(day))
    config = {
        "in_pattern": "/s/*",
        "resolutions": ["1h"],
        "aggregations": [{"type": "sum", "columns": ["v"]}, {"type": "count", "columns": ["v"]}],
    }
    p.mknod("temporal-reduce", "/r", yaml.safe_dump(config).encode())
    assert read(p) == expected(days(0, 1, 2, 3))  # seals days 0-2 and 3 hours of day 3
    return p


def test_a_read_after_appends_lists_only_the_versions_since_the_seal(
    pond: Pond, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[tuple[int, int, list[int]]] = []
    opened: list[list[int]] = []
    passes: list[str] = []  # the listings of every version a plain read makes
    real_tail, real_parts = PondFS.version_tail, PondFS.version_parts

    def tail_spy(fs: PondFS, part_id: str, node_id: str, first: int) -> Any:
        total, columns = real_tail(fs, part_id, node_id, first)
        listed.append((first, total, columns.version))
        return total, columns

    def parts_spy(fs: PondFS, part_id: str, node_id: str, versions: list[int]) -> Any:
        opened.append(versions)
        return real_parts(fs, part_id, node_id, versions)

    monkeypatch.setattr(PondFS, "version_tail", tail_spy)
    monkeypatch.setattr(PondFS, "version_parts", parts_spy)
    for name in ("series_parts", "series_bounds", "version_columns"):
        monkeypatch.setattr(PondFS, name, lambda *a, name=name, **k: passes.append(name))
    append(pond, day_rows(4))
    txn = append(pond, day_rows(5))
    assert read(pond) == expected(days(0, 1, 2, 3, 4, 5))
    # the seal had seen 4 versions: its last one and the 2 new ones, of 6
    assert listed == [(3, 6, [4, 5, 6])]
    # the seal ended at day 2, 23:00: days 2 and 3 (versions 3, 4) reach the open buckets
    assert opened == [[3, 4, 5, 6]]
    assert passes == []
    loc = pond.fs.require("/s/a")
    row = loc.row
    m = manifest(pond.root)
    assert (m["count"], m["last"]) == (6, f"{loc.node_id}@6#{row.content_hash}/{txn}")
    assert (m["format"], m["seen_txn"]) == ("sealed-3", txn)

    assert m["hot"] == [[5, T0 + 5 * DAY - Q], [6, T0 + 6 * DAY - Q]]  # days 4 and 5

    listed.clear()  # nothing new: the last seen version alone
    opened.clear()
    assert read(pond) == expected(days(0, 1, 2, 3, 4, 5))
    assert (listed, opened, passes) == ([(5, 6, [6])], [[5, 6]], [])


def test_bounds_set_before_the_seal_hide_appended_rows(pond: Pond) -> None:
    """Appends after the seal read through the bounds it recorded: rows past the series'
    max time stay hidden, as in a full recompute."""
    root = pond.root
    lo, hi = T0 + DAY, T0 + 4 * DAY + 12 * H
    run_pond("set-temporal-bounds", "/s/a", "--min-time", lo, "--max-time", hi, pond=root)
    assert read(pond) == expected(days(1, 2, 3))  # a bounds record: recomputed
    assert manifest(root)["bounds"] == [lo, hi]
    append(pond, day_rows(4))
    want = expected(days(1, 2, 3) + [r for r in day_rows(4) if r[0] <= hi])
    assert read(pond) == want
    append(pond, day_rows(5))  # wholly past the bounds
    assert read(pond) == want
    assert manifest(root)["count"] == 7  # 6 appends and the bounds record, seen as appends
    run_pond("run", "/r", "rebuild", pond=root)
    assert read(pond) == want  # what a full recompute gives


def test_revert_of_a_sealed_append_recomputes(pond: Pond) -> None:
    root = pond.root
    before = manifest(root)
    # day 1 appended by mistake a second time, read (sealed with it), then reverted
    dup = append(pond, day_rows(1))
    dup_sums = expected(days(0, 1, 1, 2, 3))
    with pytest.raises(Exception, match="sealed bucket starting 2026-07-16T00:00:00Z"):
        read(pond)  # late data for day 1's sealed buckets
    run_pond("run", "/r", "rebuild", pond=root)
    assert read(pond) == dup_sums
    assert manifest(root)["count"] == before["count"] + 1
    run_pond("revert", dup, pond=root)
    append(pond, day_rows(4))
    assert cli_read(root) == [(s, c) for _, s, c in expected(days(0, 1, 2, 3, 4))]


def test_a_series_written_again_with_the_same_last_version_recomputes(pond: Pond) -> None:
    """Removed and written again: as many versions, the last one's content identical, day 1
    different. Another node (and transaction): recomputed, day 1's new values counted."""
    root = pond.root
    before = manifest(root)
    run_pond("rm", "/s/a", pond=root)
    for day, scale in ((0, 1.0), (1, 2.0), (2, 1.0), (3, 1.0)):
        append(pond, day_rows(day, scale))
    want = expected(days(0) + day_rows(1, 2.0) + days(2, 3))
    assert cli_read(root) == [(s, c) for _, s, c in want]
    after = manifest(root)
    assert after["count"] == before["count"] == 4
    assert after["last"].split("#")[1].split("/")[0] == before["last"].split("#")[1].split("/")[0]
    assert after["last"] != before["last"]


def run_sizes(root: Path) -> list[tuple[str, int]]:
    """(file, rows) of each sealed run, oldest first."""
    (d,) = {p.parent for p in root.glob("sealed/*/*/manifest.json")}
    return [(f, pa.ipc.open_file(d / f).read_all().num_rows) for f in manifest(root)["files"]]


def test_runs_merge_as_a_binary_counter_and_keep_the_old_run(pond: Pond) -> None:
    """Each run stays more than twice the size of the next newer one: a seal merges only
    the newest runs, and the big old run is not rewritten every few seals."""
    root = pond.root
    sizes = []
    for day in range(4, 12):
        append(pond, day_rows(day))
        assert read(pond) == expected(days(*range(day + 1)))
        sizes.append(run_sizes(root))
    assert [[n for _, n in runs] for runs in sizes] == [
        [71, 24],
        [119],  # 24 + 24 reach half of 71: all merged
        [119, 24],
        [119, 48],
        [191],  # 24 + 48 reach half of 119
        [191, 24],
        [191, 48],
        [191, 72],  # only the newer runs merged
    ]
    # the 191-row run written by the seal of day 8 is the same file through day 11
    assert len({runs[0][0] for runs in sizes[4:]}) == 1
    assert sealed_buckets(root) == [T0 + i * H for i in range(263)]


def sealed_buckets(root: Path) -> list[int]:
    (d,) = {p.parent for p in root.glob("sealed/*/*/manifest.json")}
    runs = [pa.ipc.open_file(d / f).read_all() for f in manifest(root)["files"]]
    column = pa.concat_tables(runs).column("timestamp").cast(pa.int64())
    return [int(x) for x in column.to_pylist()]
