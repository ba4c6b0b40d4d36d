"""temporal-reduce's sealed buckets (`allowed_lateness`, issue 21 item 4): appends update only
the open buckets, results equal a full recompute, late data for a sealed bucket is an error
naming it, `pond run NODE rebuild` takes it in, anything but an append recomputes, and a
SIGKILL while sealing leaves the old state or the new one.

The data is DuckPond's test 050: from 2026-07-15T00:00Z, a day per version, here in 15-minute
points (4 per hourly bucket) whose value is their index, so every sum and average is exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond import nodes
from duckpond.dynamic import Resolver
from duckpond.errors import FactoryError
from duckpond.pond import Pond

H = 3_600_000_000
Q = H // 4
DAY = 24 * H
T0 = 1_784_073_600_000_000  # 2026-07-15T00:00:00Z
OUT = "/r/a/res=1h.series"


def day_rows(day: int) -> list[tuple[int, float]]:
    return [(T0 + day * DAY + k * Q, float(day * 96 + k)) for k in range(96)]


def as_table(rows: list[tuple[int, float]]) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([t for t, _ in rows], pa.timestamp("us", tz="UTC")),
            "v": pa.array([v for _, v in rows], pa.float64()),
        }
    )


def append(pond: Pond, rows: list[tuple[int, float]], path: str = "/s/a") -> None:
    with pond.transaction() as tx:
        tx.write_series(path, as_table(rows), parents=True)


def expected(rows: list[tuple[int, float]]) -> list[tuple[int, float, int, float]]:
    """(bucket start, sum, count, avg) per hour, computed here from the rows."""
    buckets: dict[int, list[float]] = {}
    for t, v in rows:
        buckets.setdefault(t // H * H, []).append(v)
    return [(b, sum(vs), len(vs), sum(vs) / len(vs)) for b, vs in sorted(buckets.items())]


def reduce_config(**extra: Any) -> dict[str, Any]:
    return {
        "in_pattern": "/s/*",
        "resolutions": ["1h"],
        "aggregations": [
            {"type": "sum", "columns": ["v"]},
            {"type": "count", "columns": ["v"]},
            {"type": "avg", "columns": ["v"]},
        ],
        **extra,
    }


def read(pond: Pond, path: str = OUT) -> list[tuple[int, float, int, float]]:
    pond.refresh()
    t = Resolver.for_pond(pond, cache=False).require(path).scan()
    assert t.schema.names == ["timestamp", "v.sum", "v.count", "v.avg"]
    return list(
        zip(
            t.column("timestamp").cast(pa.int64()).to_pylist(),
            t.column("v.sum").to_pylist(),
            t.column("v.count").to_pylist(),
            t.column("v.avg").to_pylist(),
            strict=True,
        )
    )


def manifests(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("sealed/*/*/manifest.json"))]


def sealed_table(root: Path) -> pa.Table:
    """The rows saved as sealed (one reduced series): its runs, oldest first."""
    (m,) = manifests(root)
    (d,) = {p.parent for p in root.glob("sealed/*/*/manifest.json")}
    return pa.concat_tables([pa.ipc.open_file(d / f).read_all() for f in m["files"]])


def sealed_rows(root: Path) -> list[int]:
    """The bucket starts saved as sealed."""
    return [int(x) for x in sealed_table(root).column("timestamp").cast(pa.int64()).to_pylist()]


@pytest.fixture
def pond(tmp_path: Path) -> Pond:
    p = Pond.create(tmp_path / "pond")
    for day in range(4):
        append(p, day_rows(day))
    p.mknod("temporal-reduce", "/r", yaml.safe_dump(reduce_config()).encode())
    return p


def all_days(n: int) -> list[tuple[int, float]]:
    return [r for d in range(n) for r in day_rows(d)]


def test_appends_seal_old_buckets_and_update_only_open_ones(pond: Pond) -> None:
    assert read(pond) == expected(all_days(4))  # 96 buckets
    # the newest point is 07-18T23:45: buckets ending by 07-17T23:45 are sealed, 71 of them
    assert sealed_rows(pond.root) == [T0 + i * H for i in range(71)]
    assert manifests(pond.root)[0]["sealed_hi"] == T0 + 71 * H
    first = sealed_table(pond.root)
    (run,) = manifests(pond.root)[0]["files"]

    append(pond, day_rows(4))
    assert read(pond) == expected(all_days(5))
    assert sealed_rows(pond.root) == [T0 + i * H for i in range(95)]
    assert sealed_table(pond.root).slice(0, 71).equals(first)
    # the seal added a run of the 24 buckets it closed; the first run was kept as it was
    files = manifests(pond.root)[0]["files"]
    assert len(files) == 2 and files[0] == run

    # out of order but within the lateness: the open bucket 07-19T05:00 takes it
    late_ok = [(T0 + 4 * DAY + 5 * H + 10 * 60_000_000, 1000.0)]
    append(pond, late_ok)
    rows = all_days(5) + late_ok
    got = read(pond)
    assert got == expected(rows)
    assert got[4 * 24 + 5] == (T0 + 4 * DAY + 5 * H, 404.0 + 405 + 406 + 407 + 1000, 5, 2622.0 / 5)

    # a full recompute (the seals dropped) gives the very same numbers
    pond.run("/r", ["rebuild"])
    assert manifests(pond.root) == []
    assert read(pond) == got
    assert len(sealed_rows(pond.root)) == 95


def test_late_data_for_a_sealed_bucket_is_an_error_until_rebuilt(pond: Pond) -> None:
    root = pond.root
    out = run_pond("cat", OUT, "--format", "json", pond=root)
    assert len(json.loads(out.stdout)) == 96
    late = [(T0 + 5 * H + 10 * 60_000_000, 1000.0)]  # 07-15T05:10, long sealed
    append(pond, late)
    bad = run_pond("cat", OUT, "--format", "json", pond=root, check=1)
    assert bad.stdout == b""
    assert bad.stderr.decode() == (
        "error: /r/a/res=1h.series: version 5 of /s/a holds data for the sealed bucket "
        "starting 2026-07-15T05:00:00Z (resolution 1h): buckets before 2026-07-17T23:00:00Z "
        "are sealed (allowed_lateness 1d). To take it in, run `pond run /r rebuild` (or "
        "raise allowed_lateness)\n"
    )
    again = run_pond("cat", OUT, "--format", "json", pond=root, check=1)  # still refused
    assert again.stderr == bad.stderr

    done = run_pond("run", "/r", "rebuild", pond=root)
    assert done.stdout == b"rebuild: dropped the sealed buckets of 1 reduced series\n"
    got = json.loads(run_pond("cat", OUT, "--format", "json", pond=root).stdout)
    assert len(got) == 96
    assert got[5] == {
        "timestamp": "2026-07-15T05:00:00.000000Z",
        "v.sum": 20.0 + 21 + 22 + 23 + 1000,
        "v.count": 5,
        "v.avg": 1086.0 / 5,
    }
    bad_cmd = run_pond("run", "/r", "compact", pond=root, check=1)
    assert "the only command is `rebuild`" in bad_cmd.stderr.decode()


def test_collapse_into_one_version_recomputes_without_doubling(pond: Pond) -> None:
    before = read(pond)
    # what `maintain --collapse-versions` does, with today's storage: the series becomes
    # one version holding the identical content (the old version list is gone)
    with pond.transaction() as tx:
        tx.staged.remove("/s/a")
    append(pond, all_days(4))
    assert read(pond) == before  # no doubled count or sum
    (m,) = manifests(pond.root)
    assert m["count"] == 1 and m["sealed_hi"] == T0 + 71 * H
    # sealed again: late data is refused as before
    append(pond, [(T0, 5.0)])
    with pytest.raises(FactoryError, match="sealed bucket starting 2026-07-15T00:00:00Z"):
        read(pond)


def test_a_removed_version_recomputes(pond: Pond) -> None:
    read(pond)
    with pond.transaction() as tx:
        tx.staged.remove("/s/a")
    days = (0, 1, 3, 4, 5)  # day 2's version gone, and as many versions as before and more
    for day in days:
        append(pond, day_rows(day))
    assert read(pond) == expected([r for d in days for r in day_rows(d)])


def test_a_version_with_unknown_attributes_recomputes(pond: Pond) -> None:
    """A version carrying attributes beyond an ordinary append's (temporal bounds, a
    collapse marker) may change how every version reads: never taken as an append."""
    read(pond)
    late = [(T0 + 5 * H, 1000.0)]
    table = as_table(late)
    from duckpond.query import ingest

    with pond.transaction() as tx:
        tx.staged.write(
            "/s/a",
            nodes.FILE_SERIES,
            ingest.table_to_parquet_bytes(table),
            min_event_time=late[0][0],
            max_event_time=late[0][0],
            attrs={"time_column": "timestamp", "temporal_override": [0, 1]},
        )
    assert read(pond) == expected(all_days(4) + late)  # no late-data error: recomputed


def test_allowed_lateness_config(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "pond")
    for day in range(4):
        append(pond, day_rows(day))
    with pytest.raises(FactoryError, match="allowed_lateness 'soon' is not a duration"):
        pond.mknod(
            "temporal-reduce", "/r", yaml.safe_dump(reduce_config(allowed_lateness="soon")).encode()
        )
    pond.mknod(
        "temporal-reduce", "/r", yaml.safe_dump(reduce_config(allowed_lateness="14d")).encode()
    )
    assert read(pond) == expected(all_days(4))
    (m,) = manifests(pond.root)
    assert m["sealed_hi"] == T0 - 10 * DAY - H  # 1783206000 s as in DuckPond: nothing sealed
    append(pond, [(T0 + 5 * H, 1000.0)])  # old, but within 14 days of the newest
    assert read(pond) == expected(all_days(4) + [(T0 + 5 * H, 1000.0)])


@pytest.mark.parametrize("where", ["seal-before-manifest", "seal-after-manifest"])
def test_sigkill_while_sealing_leaves_old_or_new_state(pond: Pond, where: str) -> None:
    root = pond.root
    run_pond("cat", OUT, "--format", "json", pond=root)
    (old,) = manifests(root)
    append(pond, day_rows(4))
    killed = run_pond(
        "cat", OUT, "--format", "json", pond=root, env={"POND_CRASH_AT": where}, check=None
    )
    assert killed.returncode == -9
    (m,) = manifests(root)
    if where == "seal-before-manifest":
        assert m == old
    else:
        assert m["generation"] == old["generation"] + 1
        assert m["sealed_hi"] == T0 + 95 * H
    got = json.loads(run_pond("cat", OUT, "--format", "json", pond=root).stdout)
    want = expected(all_days(5))
    assert [(r["v.sum"], r["v.count"]) for r in got] == [(s, c) for _, s, c, _ in want]
    assert sealed_rows(root) == [T0 + i * H for i in range(95)]


def test_runs_are_merged_past_max_runs(pond: Pond, monkeypatch: pytest.MonkeyPatch) -> None:
    from duckpond.factories import seal_store

    monkeypatch.setattr(seal_store, "MAX_RUNS", 2)
    read(pond)
    for day in (4, 5):
        append(pond, day_rows(day))
        assert read(pond) == expected(all_days(day + 1))
    # runs of 71 and 24 buckets, then a third would pass 2: merged into one of 119
    assert len(manifests(pond.root)[0]["files"]) == 1
    assert sealed_rows(pond.root) == [T0 + i * H for i in range(119)]


@pytest.mark.parametrize("damage", ["{not json", '{"format": "sealed-0", "generation": 7}'])
def test_a_damaged_or_foreign_manifest_is_recomputed_and_replaced(pond: Pond, damage: str) -> None:
    read(pond)
    (path,) = pond.root.glob("sealed/*/*/manifest.json")
    path.write_text(damage)
    append(pond, [(T0 + 5 * H, 1000.0)])  # would be late for the lost seal: not an error
    assert read(pond) == expected(all_days(4) + [(T0 + 5 * H, 1000.0)])
    assert manifests(pond.root)[0]["count"] == 5
    assert sealed_rows(pond.root) == [T0 + i * H for i in range(71)]
