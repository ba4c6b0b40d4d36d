"""`pond maintain --collapse-versions N` through the CLI: the series' rows are unchanged,
old versions stay readable by number, derived series (sql-derived, temporal-reduce) give
the same exact COUNT and SUM before and after (DuckPond's suspected doubling), and a
SIGKILL mid-collapse leaves the old or the new state, never a mix (issue 21.3)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond.pond import Pond

H = 3_600_000_000  # one hour in µs
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
ALL = "SELECT * FROM source ORDER BY timestamp"


def append(root: Path, path: str, table: pa.Table) -> None:
    with Pond.open(root).transaction() as tx:
        tx.write_series(path, table, parents=True)


def event(i: int) -> pa.Table:
    """What DuckPond's scenario 716 appends per run: one line, `event-i at line i`."""
    t = pa.array([T0 + i * H], pa.timestamp("us", tz="UTC"))
    return pa.table({"timestamp": t, "line": [f"event-{i} at line {i}"]})


def query(root: Path, path: str, sql: str, *extra: object) -> list[dict[str, Any]]:
    out = run_pond("cat", path, "--sql", sql, "--format", "json", *extra, pond=root)
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def version_numbers(root: Path, path: str) -> list[int]:
    return [r.version for r in Pond.open(root).versions(path)]


def collapse(root: Path, n: int, **kw: Any) -> str:
    out = run_pond("maintain", "--collapse-versions", n, pond=root, **kw)
    return out.stdout.decode().splitlines()[-1] if out.returncode == 0 else ""


def test_study_scenario_716(pond_dir: Path) -> None:
    for i in range(1, 6):
        append(pond_dir, "/logs/events", event(i))
    before = query(pond_dir, "/logs/events", ALL)
    assert [r["line"] for r in before] == [f"event-{i} at line {i}" for i in range(1, 6)]
    line = collapse(pond_dir, 1)
    assert line == "collapse: 1 file(s) collapsed, 5 version(s) superseded (1 candidate(s))"
    assert query(pond_dir, "/logs/events", ALL) == before
    assert version_numbers(pond_dir, "/logs/events") == [1, 2, 3, 4, 5, 6]
    d = json.loads(run_pond("describe", "/logs/events", "--format", "json", pond=pond_dir).stdout)
    assert d["collapsed_through"] == 5
    # history is kept: an old version reads as it was written
    assert [r["line"] for r in query(pond_dir, "/logs/events", ALL, "--version", 2)] == [
        "event-2 at line 2"
    ]
    # a second run finds nothing and writes nothing
    seq = Pond.open(pond_dir).data.last_txn_seq()
    assert collapse(pond_dir, 1) == (
        "collapse: 0 file(s) collapsed, 0 version(s) superseded (0 candidate(s))"
    )
    assert Pond.open(pond_dir).data.last_txn_seq() == seq
    # appends continue after the collapsed version
    append(pond_dir, "/logs/events", event(6))
    after = query(pond_dir, "/logs/events", ALL)
    assert [r["line"] for r in after] == [f"event-{i} at line {i}" for i in range(1, 7)]
    assert version_numbers(pond_dir, "/logs/events") == [1, 2, 3, 4, 5, 6, 7]


def test_only_series_over_the_threshold(pond_dir: Path) -> None:
    for i in range(3):
        append(pond_dir, "/s/three", event(i))
    for i in range(4):
        append(pond_dir, "/s/four", event(i))
    out = run_pond("maintain", "--collapse-versions", 3, "--format", "json", pond=pond_dir)
    report = json.loads(out.stdout)
    assert report["collapse"] == {
        "candidates": 1,
        "superseded": 4,
        "collapsed": [{"path": "/s/four", "versions": 4, "new_version": 5, "rows": 4}],
    }
    assert version_numbers(pond_dir, "/s/three") == [1, 2, 3]
    assert query(pond_dir, "/s/four", "SELECT count(*) AS n FROM source") == [{"n": 4}]
    run_pond("maintain", "--collapse-versions", 0, pond=pond_dir, check=2)


def test_schema_changes_bounds_and_large_content_survive(pond_dir: Path) -> None:
    n = 20_000  # the collapsed version is well over 64 KiB: it goes to the blob store
    times = pa.array([T0 + i * 1_000_000 for i in range(n)], pa.timestamp("us", tz="UTC"))
    append(pond_dir, "/s/x", pa.table({"timestamp": times, "v": [i * 0.5 for i in range(n)]}))
    later = pa.array([T0 + (n + i) * 1_000_000 for i in range(3)], pa.timestamp("us", tz="UTC"))
    append(pond_dir, "/s/x", pa.table({"timestamp": later, "v": [1.0, 2.0, 3.0], "w": [7, 8, 9]}))
    run_pond("set-temporal-bounds", "/s/x", "--min-time", str(T0 + 10 * 1_000_000), pond=pond_dir)
    stats = "SELECT count(*) AS n, count(w) AS nw, sum(v) AS sv, sum(w) AS sw FROM source"
    want = [{"n": n - 10 + 3, "nw": 3, "sv": sum(i * 0.5 for i in range(10, n)) + 6.0, "sw": 24}]
    assert query(pond_dir, "/s/x", stats) == want
    assert collapse(pond_dir, 1) == (
        "collapse: 1 file(s) collapsed, 2 version(s) superseded (1 candidate(s))"
    )
    assert query(pond_dir, "/s/x", stats) == want  # bounds carried over, columns merged
    d = json.loads(run_pond("describe", "/s/x", "--format", "json", pond=pond_dir).stdout)
    assert d["temporal_bounds"] == {"min": "2024-01-01T00:00:10Z", "max": None}
    newest = d["versions"][-1]
    assert newest["size"] > 64 * 1024
    assert (newest["min_event_time"], newest["max_event_time"]) == (
        "2024-01-01T00:00:00Z",
        "2024-01-01T05:33:22Z",
    )
    # the bounds are still undone by another call, after the collapse
    run_pond("set-temporal-bounds", "/s/x", "--clear", pond=pond_dir)
    assert query(pond_dir, "/s/x", "SELECT count(*) AS n FROM source") == [{"n": n + 3}]


def mknod(root: Path, tmp_path: Path, factory: str, path: str, config: dict[str, Any]) -> None:
    cfg = tmp_path / f"{path.strip('/').replace('/', '_')}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run_pond("mknod", factory, path, "--config-path", cfg, pond=root)


def test_derived_series_stay_exact(pond_dir: Path, tmp_path: Path) -> None:
    # five collector runs of 24 hourly readings each, v = the hour's index
    for day in range(5):
        times = [T0 + (day * 24 + h) * H for h in range(24)]
        values = [float(day * 24 + h) for h in range(24)]
        append(
            pond_dir,
            "/hydro/w1",
            pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")), "v": values}),
        )
    mknod(
        pond_dir,
        tmp_path,
        "temporal-reduce",
        "/reduced",
        {
            "in_pattern": "/hydro/*",
            "resolutions": ["1d", "7d"],
            "aggregations": [
                {"type": "count", "columns": ["v"]},
                {"type": "sum", "columns": ["v"]},
            ],
        },
    )
    mknod(
        pond_dir,
        tmp_path,
        "sql-derived-series",
        "/derived/daily",
        {
            "patterns": {"r": "/hydro/*"},
            "query": "SELECT timestamp, v FROM r WHERE v >= 12",
        },
    )
    day = 'SELECT CAST(timestamp AS VARCHAR) AS t, "v.count" AS n, "v.sum" AS s FROM source'
    want_days = [(24, float(sum(range(d * 24, d * 24 + 24)))) for d in range(5)]
    totals = "SELECT count(*) AS n, sum(v) AS s FROM source"

    def snapshot() -> tuple[Any, ...]:
        return (
            query(pond_dir, "/reduced/w1/res=1d.series", day + " ORDER BY t"),
            query(pond_dir, "/reduced/w1/res=7d.series", day + " ORDER BY t"),
            query(pond_dir, "/derived/daily", totals),
        )

    before = snapshot()
    assert [(r["n"], r["s"]) for r in before[0]] == want_days
    assert [(r["n"], r["s"]) for r in before[1]] == [
        (72, float(sum(range(72)))),
        (48, float(sum(range(72, 120)))),
    ]
    assert before[2] == [{"n": 108, "s": float(sum(range(12, 120)))}]
    assert collapse(pond_dir, 2) == (
        "collapse: 1 file(s) collapsed, 5 version(s) superseded (1 candidate(s))"
    )
    assert snapshot() == before  # no doubled COUNT or SUM
    # a new version after the collapse adds exactly its own rows
    t = pa.array([T0 + 120 * H], pa.timestamp("us", tz="UTC"))
    append(pond_dir, "/hydro/w1", pa.table({"timestamp": t, "v": [1000.0]}))
    after = snapshot()
    assert [(r["n"], r["s"]) for r in after[0]] == [*want_days, (1, 1000.0)]
    assert after[2] == [{"n": 109, "s": float(sum(range(12, 120))) + 1000.0}]


@pytest.mark.parametrize(
    ("crash_at", "collapsed"),
    [("collapse_staged_one", False), ("before_data_commit", False), ("after_data_commit", True)],
)
def test_crash_mid_collapse(pond_dir: Path, crash_at: str, collapsed: bool) -> None:
    for i in range(1, 4):
        append(pond_dir, "/a/s", event(i))
        append(pond_dir, "/b/s", event(10 + i))
    before = {p: query(pond_dir, p, ALL) for p in ("/a/s", "/b/s")}
    out = run_pond(
        "maintain",
        "--collapse-versions",
        1,
        pond=pond_dir,
        env={"POND_CRASH_AT": crash_at},
        check=-signal.SIGKILL,
    )
    assert out.stdout == b""
    run_pond("recover", pond=pond_dir)
    want = [1, 2, 3, 4] if collapsed else [1, 2, 3]
    for path in ("/a/s", "/b/s"):  # both series or neither
        assert version_numbers(pond_dir, path) == want
        assert query(pond_dir, path, ALL) == before[path]
    # the next maintain finishes the job (or finds it done)
    line = collapse(pond_dir, 1)
    done = 0 if collapsed else 2
    assert line == (
        f"collapse: {done} file(s) collapsed, {3 * done} version(s) superseded "
        f"({done} candidate(s))"
    )
    for path in ("/a/s", "/b/s"):
        assert version_numbers(pond_dir, path) == [1, 2, 3, 4]
        assert query(pond_dir, path, ALL) == before[path]


def test_the_library_calls(pond_dir: Path) -> None:
    """The same three tools as `Pond` methods, with typed results."""
    import datetime as dt

    pond = Pond.open(pond_dir)
    for i in (1, 2, 2):  # event 2 ingested twice
        append(pond_dir, "/s/e", event(i))
    report = pond.detect_overlaps("/s/*")
    assert [(s.path, s.versions, s.overlapping_rows) for s in report.series] == [("/s/e", 3, 2)]
    assert [(o.first, o.second, o.same_times) for o in report.series[0].overlaps] == [(2, 3, 1)]
    bounds = pond.set_temporal_bounds("/s/e", dt.datetime(2024, 1, 1, 2))
    assert (bounds.min_time, bounds.max_time, bounds.version, bounds.changed) == (
        T0 + 2 * H,
        None,
        4,
        True,
    )
    assert pond.sql("SELECT count(*) AS n FROM source", path="/s/e").to_pylist() == [{"n": 2}]
    folded = pond.collapse_versions(2)
    assert (
        folded.line() == "collapse: 1 file(s) collapsed, 3 version(s) superseded (1 candidate(s))"
    )
    assert [(c.path, c.new_version, c.rows) for c in folded.collapsed] == [("/s/e", 5, 3)]
    assert pond.sql("SELECT count(*) AS n FROM source", path="/s/e").to_pylist() == [{"n": 2}]
    assert pond.detect_overlaps(["/s/e"]).overlaps == 0
