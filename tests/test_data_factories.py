"""Data factories through the library: exact numbers for each factory, composition, cycles,
errors at mknod and at read time (issue 9)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from duckpond.dynamic import Resolver
from duckpond.errors import FactoryError, NotFoundError, PondError
from duckpond.factories.live import LiveDir, LiveFile
from duckpond.pond import Pond

H = 3_600_000_000  # one hour in µs
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def ts(values: list[int]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


@pytest.fixture
def pond(tmp_path: Path) -> Pond:
    return Pond.create(tmp_path / "pond")


def mknod(pond: Pond, path: str, factory: str, config: dict[str, Any]) -> None:
    pond.mknod(factory, path, yaml.safe_dump(config).encode())


def resolve(pond: Pond, path: str, cache: bool = False) -> Any:
    pond.refresh()
    return Resolver.for_pond(pond, cache=cache).require(path)


def write_series(pond: Pond, path: str, times: list[int], **cols: list[Any]) -> None:
    with pond.transaction() as tx:
        tx.write_series(path, pa.table({"timestamp": ts(times), **cols}), parents=True)


def wave_config(**component: Any) -> dict[str, Any]:
    return {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-01T01:00:00Z",
        "interval": "15m",
        "points": [{"name": "v", "components": [component]}],
    }


# -- synthetic-timeseries ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ({"type": "sine", "amplitude": 2, "period": "1h"}, [0, 2, 0, -2, 0]),
        ({"type": "triangle", "amplitude": 1, "period": "1h"}, [-1, 0, 1, 0, -1]),
        ({"type": "square", "amplitude": 3, "period": 3600}, [3, 3, 3, -3, 3]),
        ({"type": "line", "slope": 0.5, "offset": 1}, [1, 451, 901, 1351, 1801]),
        (
            {"type": "sine", "amplitude": 1, "period": "1h", "phase": math.pi / 2, "offset": 10},
            [11, 10, 9, 10, 11],
        ),
    ],
)
def test_synthetic_waves(pond: Pond, component: dict[str, Any], expected: list[float]) -> None:
    mknod(pond, "/gen/wave", "synthetic-timeseries", wave_config(**component))
    node = resolve(pond, "/gen/wave")
    assert node.file_type == "file:series:dynamic"
    table = node.scan()
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == [
        T0 + i * H // 4 for i in range(5)
    ]
    assert table.column("v").to_pylist() == pytest.approx(expected, abs=1e-9)


def test_synthetic_components_sum_and_time_window(pond: Pond) -> None:
    cfg = wave_config(type="line", slope=1)
    cfg["points"] = [
        {"name": "a", "components": [{"type": "line", "slope": 1}, {"type": "line", "offset": 5}]},
        {"name": "b", "components": [{"type": "square", "amplitude": 1, "period": "30m"}]},
    ]
    mknod(pond, "/gen/two", "synthetic-timeseries", cfg)
    node = resolve(pond, "/gen/two")
    table = node.scan(T0 + 1, T0 + H // 2)  # 00:00:00.000001 .. 00:30 -> 00:15, 00:30
    assert table.column("a").to_pylist() == [905.0, 1805.0]
    assert table.column("b").to_pylist() == [1.0, 1.0]
    assert node.schema().names == ["timestamp", "a", "b"]


# -- sql-derived ------------------------------------------------------------------------------
def test_sql_derived_series_union_superset_schema_and_window(pond: Pond) -> None:
    write_series(pond, "/raw/a", [T0, T0 + H], temp=[1.0, 2.0])
    write_series(pond, "/raw/b", [T0 + 2 * H], temp=[3.0], hum=[50.0])
    write_series(pond, "/raw/a", [T0 + 3 * H], temp=[4.0])  # a second version of /raw/a
    mknod(
        pond,
        "/derived/all",
        "sql-derived-series",
        {
            "patterns": {"raw": "series:///raw/*"},
            "query": "SELECT timestamp, temp * 10 AS t10, hum FROM raw ORDER BY timestamp",
        },
    )
    node = resolve(pond, "/derived/all")
    full = node.scan()
    assert full.column("t10").to_pylist() == [10.0, 20.0, 30.0, 40.0]
    assert full.column("hum").to_pylist() == [None, None, 50.0, None]
    assert node.time_column == "timestamp"
    part = node.scan(T0 + H, T0 + 2 * H)
    assert part.column("t10").to_pylist() == [20.0, 30.0]


def test_sql_derived_table_over_two_names(pond: Pond) -> None:
    with pond.transaction() as tx:
        tx.write_table("/t/x", pa.table({"k": [1, 2, 3], "v": [10, 20, 30]}), parents=True)
        tx.write_table("/t/y", pa.table({"k": [2, 3, 4], "w": [200, 300, 400]}))
    mknod(
        pond,
        "/t/joined",
        "sql-derived-table",
        {
            "patterns": {"x": "/t/x", "y": "table:///t/y"},
            "query": "SELECT x.k, v + w AS s FROM x JOIN y ON x.k = y.k ORDER BY x.k",
        },
    )
    node = resolve(pond, "/t/joined")
    assert node.file_type == "file:table:dynamic"
    assert node.scan().to_pydict() == {"k": [2, 3], "s": [220, 330]}


def test_sql_derived_errors_at_mknod_leave_pond_unchanged(pond: Pond) -> None:
    write_series(pond, "/raw/a", [T0], temp=[1.0])
    before = pond.data.version() if hasattr(pond.data, "version") else None
    cases = [
        ({"patterns": {"r": "/nope/*"}, "query": "SELECT * FROM r"}, "matches no"),
        ({"patterns": {"r": "/raw/a"}, "query": "SELEC * FROM r"}, "syntax"),
        ({"patterns": {"r": "/raw/a"}, "query": "SELECT nope FROM r"}, "nope"),
        ({"patterns": {"r": "/raw/a"}, "query": "DROP TABLE r"}, "read-only"),
        ({"patterns": {"bad name": "/raw/a"}, "query": "SELECT 1"}, "identifier"),
    ]
    for cfg, needle in cases:
        with pytest.raises(PondError, match=needle):
            mknod(pond, "/derived/x", "sql-derived-series", cfg)
    pond.refresh()
    assert pond.lookup("/derived") is None
    if before is not None:
        assert pond.data.version() == before


def test_input_removed_later_is_a_clear_read_error(pond: Pond) -> None:
    write_series(pond, "/raw/a", [T0], temp=[1.0])
    mknod(
        pond, "/d", "sql-derived-series", {"patterns": {"r": "/raw/a"}, "query": "SELECT * FROM r"}
    )
    with pond.transaction() as tx:
        tx.write_series("/raw/a2", pa.table({"timestamp": ts([T0])}))
    # the pond has no rm yet: replace the config to point at a path that does not exist
    with pond.transaction() as tx:
        tx.mknod(
            "/d",
            "sql-derived-series",
            "file:series:dynamic",
            b"patterns: {r: /raw/gone}\nquery: SELECT * FROM r\n",
            overwrite=True,
        )
    with pytest.raises(FactoryError, match="/raw/gone"):
        resolve(pond, "/d")
    with pond.transaction() as tx:  # and a node over it, stored without the mknod check
        tx.mknod(
            "/r",
            "temporal-reduce",
            "dir:dynamic",
            b"{in_pattern: /d, out_pattern: d, resolutions: [1h], aggregations: [{type: avg}]}",
        )
    pond.refresh()
    # listing still shows both (with a warning); reading them is the clear error
    assert [(e.path, e.type) for e in pond.list("/**/*") if e.path in ("/d", "/r")] == [
        ("/d", "file:series:dynamic"),
        ("/r", "dir:dynamic"),
    ]
    with pytest.raises(FactoryError, match="/raw/gone"):
        pond.sql(path="/d")
    with pytest.raises(FactoryError, match="/raw/gone"):
        pond.sql(path="/r/d/res=1h.series")


# -- temporal-reduce --------------------------------------------------------------------------
def test_temporal_reduce_exact_buckets(pond: Pond) -> None:
    times = [T0 + i * H for i in range(48)]
    values = [float(i * i % 17) for i in range(48)]
    write_series(pond, "/sources/st1", times, v=values)
    write_series(pond, "/sources/st2", times[:12], v=values[:12])
    mknod(
        pond,
        "/reduced",
        "temporal-reduce",
        {
            "in_pattern": "series:///sources/*",
            "out_pattern": "$0",
            "time_column": "timestamp",
            "resolutions": ["6h", "1d"],
            "aggregations": [
                {"type": "avg", "columns": ["v"]},
                {"type": "max", "columns": ["v"]},
                {"type": "count", "columns": ["v"]},
            ],
        },
    )
    top = resolve(pond, "/reduced")
    assert isinstance(top, LiveDir) and top.names() == ["st1", "st2"]
    r = Resolver.for_pond(pond, cache=False)
    assert [n.path for n in r.glob("/reduced/**/*.series")] == [
        "/reduced/st1/res=1d.series",
        "/reduced/st1/res=6h.series",
        "/reduced/st2/res=1d.series",
        "/reduced/st2/res=6h.series",
    ]
    six = r.require("/reduced/st1/res=6h.series").scan()
    assert six.schema.names == ["timestamp", "v.avg", "v.max", "v.count"]
    assert six.num_rows == 8
    for b in range(8):
        chunk = values[b * 6 : (b + 1) * 6]
        assert six.column("timestamp")[b].value == T0 + b * 6 * H
        assert six.column("v.avg")[b].as_py() == pytest.approx(sum(chunk) / 6)
        assert six.column("v.max")[b].as_py() == max(chunk)
        assert six.column("v.count")[b].as_py() == 6
    day = r.require("/reduced/st2/res=1d.series").scan()
    assert day.column("v.count").to_pylist() == [12]
    # a window selects the buckets starting inside it, each computed from all its rows
    win = r.require("/reduced/st1/res=6h.series").scan(T0 + 5 * H, T0 + 13 * H)
    assert win.column("timestamp").cast(pa.int64()).to_pylist() == [T0 + 6 * H, T0 + 12 * H]
    assert win.column("v.count").to_pylist() == [6, 6]


def test_temporal_reduce_epoch_alignment(pond: Pond) -> None:
    # 7d buckets start on Thursdays (the epoch was one): 2024-01-01 is a Monday
    write_series(pond, "/s/x", [T0, T0 + 3 * 24 * H, T0 + 4 * 24 * H], v=[1.0, 2.0, 4.0])
    mknod(
        pond,
        "/r",
        "temporal-reduce",
        {
            "in_pattern": "/s/*",
            "resolutions": ["7d"],
            "aggregations": [{"type": "sum"}],
        },
    )
    t = resolve(pond, "/r/x/res=7d.series").scan()
    thursday = T0 - 4 * 24 * H  # 2023-12-28
    assert t.column("timestamp").cast(pa.int64()).to_pylist() == [thursday, thursday + 7 * 24 * H]
    assert t.column("v.sum").to_pylist() == [1.0, 6.0]  # Jan 4 is the next Thursday


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"aggregations": [{"type": "median"}]}, "unknown aggregation"),
        ({"resolutions": ["1 fortnight"]}, "not a resolution"),
        ({"resolutions": []}, "at least one"),
        ({"in_pattern": "relative/*"}, "absolute"),
    ],
)
def test_temporal_reduce_bad_configs(pond: Pond, change: dict[str, Any], needle: str) -> None:
    cfg = {"in_pattern": "/s/*", "resolutions": ["1h"], "aggregations": [{"type": "avg"}]}
    cfg.update(change)
    with pytest.raises(FactoryError, match=needle):
        mknod(pond, "/r", "temporal-reduce", cfg)
    assert pond.lookup("/r") is None


# -- timeseries-join / pivot ------------------------------------------------------------------
def test_timeseries_join_full_outer_scopes_and_skips(pond: Pond) -> None:
    write_series(pond, "/in/a", [T0, T0 + H], temp=[1.0, 2.0])
    write_series(pond, "/in/b", [T0 + H, T0 + 2 * H], temp=[20.0, 30.0])
    write_series(pond, "/in/b_old", [T0 - H], temp=[9.0])
    mknod(
        pond,
        "/joined",
        "timeseries-join",
        {
            "inputs": [
                {"pattern": "/in/a", "scope": "north"},
                {"pattern": "/in/b", "scope": "south"},
                {"pattern": "/in/b_old", "scope": "south"},
                {"pattern": "/in/missing*", "scope": "east"},
                {"pattern": "/in/a", "scope": "late", "range": {"begin": "2024-01-01T01:00:00Z"}},
            ]
        },
    )
    t = resolve(pond, "/joined").scan()
    assert t.schema.names == ["timestamp", "north.temp", "south.temp", "late.temp"]
    assert t.column("timestamp").cast(pa.int64()).to_pylist() == [T0 + i * H for i in range(-1, 3)]
    assert t.column("north.temp").to_pylist() == [None, 1.0, 2.0, None]
    assert t.column("south.temp").to_pylist() == [9.0, None, 20.0, 30.0]
    assert t.column("late.temp").to_pylist() == [None, None, 2.0, None]
    part = resolve(pond, "/joined").scan(T0, T0 + H)
    assert part.column("south.temp").to_pylist() == [None, 20.0]


def test_timeseries_pivot(pond: Pond) -> None:
    write_series(pond, "/st/one", [T0, T0 + H], temp=[1.0, 2.0], hum=[5.0, 6.0])
    write_series(pond, "/st/two", [T0 + H], temp=[3.0])
    mknod(pond, "/wide", "timeseries-pivot", {"pattern": "/st/*", "columns": ["temp", "hum"]})
    t = resolve(pond, "/wide").scan()
    assert t.schema.names == ["timestamp", "one.temp", "one.hum", "two.temp", "two.hum"]
    assert t.column("one.temp").to_pylist() == [1.0, 2.0]
    assert t.column("two.temp").to_pylist() == [None, 3.0]
    assert t.column("two.hum").to_pylist() == [None, None]


# -- dynamic-dir, template, composition, cycles ------------------------------------------------
def test_dynamic_dir_children_refer_to_each_other_and_template(pond: Pond) -> None:
    mknod(
        pond,
        "/pipe",
        "dynamic-dir",
        {
            "entries": [
                {
                    "name": "gen",
                    "factory": "synthetic-timeseries",
                    "config": wave_config(type="line", slope=1),
                },
                {
                    "name": "double",
                    "factory": "sql-derived-series",
                    "config": {
                        "patterns": {"g": "/pipe/gen"},
                        "query": "SELECT timestamp, v * 2 AS v2 FROM g",
                    },
                },
            ]
        },
    )
    mknod(
        pond,
        "/docs",
        "template",
        {
            "in_pattern": "/pipe/*",
            "out_pattern": "$0.md",
            "template": "# {{ captures[0] }} at {{ path }}\n"
            "{% for f in schema %}- {{ f.name }}: {{ f.type }}\n{% endfor %}",
        },
    )
    r = Resolver.for_pond(pond, cache=False)
    assert [n.path for n in r.glob("/pipe/*")] == ["/pipe/double", "/pipe/gen"]
    assert r.require("/pipe/double").scan().column("v2").to_pylist() == [
        0.0,
        1800.0,
        3600.0,
        5400.0,
        7200.0,
    ]
    doc = r.require("/docs/double.md")
    assert doc.file_type == "file:data:dynamic"
    assert doc.read_bytes() == (
        b"# double at /pipe/double\n- timestamp: timestamp[us, tz=UTC]\n- v2: double\n"
    )
    assert [n.path for n in r.glob("/docs/*")] == ["/docs/double.md", "/docs/gen.md"]


def test_cycle_is_a_clear_error(pond: Pond) -> None:
    entries = [
        {
            "name": "a",
            "factory": "sql-derived-table",
            "config": {"patterns": {"b": "/loop/b"}, "query": "SELECT * FROM b"},
        },
        {
            "name": "b",
            "factory": "sql-derived-table",
            "config": {"patterns": {"a": "/loop/a"}, "query": "SELECT * FROM a"},
        },
    ]
    with pytest.raises(FactoryError, match=r"cycle between derived nodes: /loop/"):
        mknod(pond, "/loop", "dynamic-dir", {"entries": entries})
    assert pond.lookup("/loop") is None
    # stored without the check (as an older pond might hold it): reading is the same error
    with pond.transaction() as tx:
        tx.mknod(
            "/loop", "dynamic-dir", "dir:dynamic", yaml.safe_dump({"entries": entries}).encode()
        )
    with pytest.raises(
        FactoryError, match=r"cycle between derived nodes: /loop/a -> /loop/b -> /loop/a"
    ):
        resolve(pond, "/loop/a")


def test_cycle_refused_at_mknod(pond: Pond) -> None:
    mknod(pond, "/gen", "synthetic-timeseries", wave_config(type="line", slope=1))
    cfg = {"patterns": {"x": "/self"}, "query": "SELECT * FROM x"}
    with pytest.raises(FactoryError, match="cycle"):
        mknod(pond, "/self", "sql-derived-series", cfg)
    assert pond.lookup("/self") is None


def test_missing_node_inside_dynamic_dir(pond: Pond) -> None:
    mknod(pond, "/p", "dynamic-dir", {"entries": []})
    r = Resolver.for_pond(pond, cache=False)
    assert r.lookup("/p/nothing") is None
    with pytest.raises(NotFoundError):
        r.require("/p/nothing/deeper")


def test_cache_keyed_by_input_versions(pond: Pond, tmp_path: Path) -> None:
    times = [T0 + i * H for i in range(200)]
    write_series(pond, "/s/x", times, v=[float(i) for i in range(200)])
    mknod(
        pond,
        "/r",
        "temporal-reduce",
        {"in_pattern": "/s/*", "resolutions": ["1h"], "aggregations": [{"type": "avg"}]},
    )
    first = resolve(pond, "/r/x/res=1h.series", cache=True)
    assert isinstance(first, LiveFile)
    a = first.scan()
    r2 = Resolver.for_pond(pond)
    b = r2.require("/r/x/res=1h.series").scan()
    assert r2.cache is not None and r2.cache.hits == 1 and a.equals(b)
    write_series(pond, "/s/x", [T0 + 500 * H], v=[1000.0])
    r3 = Resolver.for_pond(pond)
    c = r3.require("/r/x/res=1h.series").scan()
    assert r3.cache is not None and r3.cache.hits == 0 and c.num_rows == 201
    # deleting the cache changes no answer
    import shutil

    shutil.rmtree(pond.root / "cache")
    assert Resolver.for_pond(pond).require("/r/x/res=1h.series").scan().equals(c)


def test_a_year_of_hourly_data_through_dynamic_dir_join_reduce(pond: Pond) -> None:
    def station(amplitude: float) -> dict[str, Any]:
        return {
            "start": "2023-01-01T00:00:00Z",
            "end": "2023-12-31T23:00:00Z",
            "interval": "1h",
            "points": [
                {
                    "name": "temp",
                    "components": [
                        {"type": "sine", "amplitude": amplitude, "period": "1d", "offset": 10}
                    ],
                }
            ],
        }

    mknod(
        pond,
        "/year",
        "dynamic-dir",
        {
            "entries": [
                {"name": "a", "factory": "synthetic-timeseries", "config": station(5)},
                {"name": "b", "factory": "synthetic-timeseries", "config": station(2)},
                {
                    "name": "joined",
                    "factory": "timeseries-join",
                    "config": {
                        "inputs": [
                            {"pattern": "/year/a", "scope": "a"},
                            {"pattern": "/year/b", "scope": "b"},
                        ]
                    },
                },
                {
                    "name": "reduced",
                    "factory": "temporal-reduce",
                    "config": {
                        "in_pattern": "/year/joined",
                        "out_pattern": "joined",
                        "resolutions": ["1h", "2h", "4h", "12h", "24h"],
                        "aggregations": [{"type": "avg"}, {"type": "count"}],
                    },
                },
            ]
        },
    )
    r = Resolver.for_pond(pond, cache=False)
    joined = r.require("/year/joined").scan()
    assert joined.num_rows == 8760
    counts = {
        res: r.require(f"/year/reduced/joined/res={res}.series").scan().num_rows
        for res in ["1h", "2h", "4h", "12h", "24h"]
    }
    assert counts == {"1h": 8760, "2h": 4380, "4h": 2190, "12h": 730, "24h": 365}
    day = r.require("/year/reduced/joined/res=24h.series").scan()
    # a whole period of a sine averages to its offset; 24 hourly points per day
    assert day.column("a.temp.avg").to_pylist() == pytest.approx([10.0] * 365)
    assert set(day.column("b.temp.count").to_pylist()) == {24}
    assert day.column("timestamp")[0].value == 1_672_531_200_000_000


def test_template_errors_refused_at_mknod(pond: Pond) -> None:
    write_series(pond, "/s/x", [T0], v=[1.0])
    base = {"in_pattern": "/s/*", "out_pattern": "$0.txt"}
    with pytest.raises(FactoryError, match="template line 1"):
        mknod(pond, "/t", "template", {**base, "template": "{% for %}"})
    with pytest.raises(FactoryError, match="'nope' is undefined"):
        mknod(pond, "/t", "template", {**base, "template": "{{ nope }}"})
    with pytest.raises(FactoryError, match=r"\$1"):
        mknod(pond, "/t", "template", {**base, "out_pattern": "$1", "template": "x"})
    assert pond.lookup("/t") is None


def test_pond_library_reads_derived_nodes(pond: Pond) -> None:
    write_series(pond, "/s/x", [T0 + i * H for i in range(6)], v=[float(i) for i in range(6)])
    reduce_cfg = {"in_pattern": "/s/*", "resolutions": ["2h"], "aggregations": [{"type": "sum"}]}
    mknod(pond, "/r", "temporal-reduce", reduce_cfg)
    pond.refresh()
    assert [(e.path, e.type) for e in pond.list("/r/**")] == [
        ("/r", "dir:dynamic"),
        ("/r/x", "dir:dynamic"),
        ("/r/x/res=2h.series", "file:series:dynamic"),
    ]
    got = pond.sql('SELECT sum("v.sum") AS t FROM source', path="/r/x/res=2h.series")
    assert got.column("t").to_pylist() == [15.0]
    window = pond.sql(
        "SELECT * FROM source",
        path="/r/x/res=2h.series",
        time_start=T0 + 2 * H,
        time_end=T0 + 3 * H,
    )
    assert window.column("v.sum").to_pylist() == [5.0]  # 2.0 + 3.0
    d = pond.describe("/r/x/res=2h.series").to_json()
    assert d["factory"] == "temporal-reduce" and d["type"] == "file:series:dynamic"
    assert [f["name"] for f in d["schema"]] == ["timestamp", "v.sum"]
    top = pond.describe("/r").to_json()
    assert top["config"]["resolutions"] == ["2h"] and top["entries"] == ["x"]
    assert [v["version"] for v in top["versions"]] == [1]
    assert pond.read_bytes("/r/x/res=2h.series")[:4] == b"PAR1"
    with pytest.raises(PondError, match="derived"):
        pond.read_bytes("/r/x/res=2h.series", version=1)
