"""The `hydrovu` collector end to end through the CLI, against a fake HydroVu on loopback:
resuming after the newest stored time, paging, the point cap, config checks, plugin entry."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import run_pond
from hydrovu_server import FakeHydroVu
from hydrovu_setup import (
    DEVICES,
    config,
    expected,
    mknod,
    read,
    run,
    series_path,
    stored,
    versions,
)

A, B = DEVICES


def test_collect_twice_resumes_after_the_newest_stored_time(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu(page_size=3)  # pages end inside a timestamp's parameters
    fake.add(A["id"], [1000, 1060, 1120])
    fake.add(A["id"], [1180], params=("1",))  # Pressure missing at 1180: a NULL
    fake.add(B["id"], [5000, 5060], params=("1", "4"))
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        out = run(pond_dir, "collect").stderr.decode()
        assert "device WellA (111): 7 readings, 4 rows" in out
        assert "device WellB (222): 4 readings, 2 rows" in out
        a = read(pond_dir, series_path(A))
        assert a.column_names == ["timestamp", "Pressure.psi", "Temperature.C"]
        assert str(a.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
        assert stored(a) == expected(fake, A["id"])
        assert a.column("Pressure.psi").to_pylist()[-1] is None
        b = read(pond_dir, series_path(B))
        assert b.column_names == ["timestamp", "Conductivity.uScm", "Temperature.C"]
        assert stored(b) == expected(fake, B["id"])
        # paging: the same startTime, the next pages asked for by header
        pages = [
            (r.query["startTime"], r.headers.get("x-isi-start-page"))
            for r in fake.data_requests(A["id"])
        ]
        assert pages == [("0", None), ("0", "p1"), ("0", "p2")]

        # nothing new: no request past the newest time, no new version, said so
        out = run(pond_dir, "collect").stderr.decode()
        assert fake.data_requests(A["id"])[-1].query["startTime"] == "1181"
        assert fake.data_requests(B["id"])[-1].query["startTime"] == "5061"
        assert "device WellA (111): no new readings since" in out
        assert len(versions(pond_dir, series_path(A))) == 1

        fake.add(A["id"], [1240, 1300])
        run(pond_dir, "collect")
        assert len(versions(pond_dir, series_path(A))) == 2  # one version per run
        assert len(versions(pond_dir, series_path(B))) == 1
        assert stored(read(pond_dir, series_path(A))) == expected(fake, A["id"])


def test_max_points_per_run_caps_a_run_and_never_splits_a_timestamp(
    pond_dir: Path, tmp_path: Path
) -> None:
    fake = FakeHydroVu(page_size=3)
    stamps = [1000 + 60 * i for i in range(10)]
    fake.add(A["id"], stamps)  # 20 readings, pages of 3: a page ends mid-timestamp
    with fake.serve():
        mknod(pond_dir, config(fake, devices=[A], max_points_per_run=5), tmp_path)
        run(pond_dir, "collect")
        # 2 pages (6 readings >= 5) then stop; the newest timestamp (its Pressure on the
        # next page) is left for the next run instead of stored half
        assert len(fake.data_requests(A["id"])) == 2
        first = stored(read(pond_dir, series_path(A)))
        assert sorted(first) == stamps[:2]
        assert all(len(v) == 2 for v in first.values())
        runs = 1
        while len(stored(read(pond_dir, series_path(A)))) < len(stamps):
            out = run(pond_dir, "collect").stderr.decode()
            runs += 1
            assert runs < 20, out
        assert stored(read(pond_dir, series_path(A))) == expected(fake, A["id"])
        assert len(versions(pond_dir, series_path(A))) == runs


def test_inactive_devices_are_not_collected(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu()
    fake.add(A["id"], [1000])
    fake.add(B["id"], [1000])
    with fake.serve():
        devices = [A, {**B, "active": False}]
        mknod(pond_dir, config(fake, devices=devices), tmp_path)
        out = run(pond_dir, "collect").stderr.decode()
        assert "WellB" not in out
        assert fake.data_requests(B["id"]) == []
        run_pond("describe", series_path(B), pond=pond_dir, check=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown config key(s): colour"),
        ({"client_secret": "literal-Secret-99"}, "must be an environment reference"),
        ({"devices": []}, "at least one device"),
        ({"devices": [{"name": "X"}]}, "config needs 'id'"),
        ({"devices": [A, {**B, "id": A["id"]}]}, "device id listed twice: 111"),
        ({"devices": [{"name": "a/b", "id": 5}]}, "cannot name a file"),
        ({"max_points_per_run": 0}, "'max_points_per_run' must be positive"),
        ({"hydrovu_path": "relative"}, "must be an absolute pond path"),
        ({"base_url": "ftp://x"}, "'base_url' must be an http"),
    ],
)
def test_bad_configs_are_refused_with_one_line(
    pond_dir: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    import yaml

    cfg = config(FakeHydroVu(), **change)
    path = tmp_path / "hv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_pond("mknod", "hydrovu", "/etc/hv", "--config-path", path, pond=pond_dir, check=1)
    err = proc.stderr.decode()
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "literal-Secret-99" not in err  # a literal secret is never echoed
    run_pond("describe", "/etc/hv", pond=pond_dir, check=1)


def test_usage_errors(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        for args in ([], ["fetch"], ["collect", "extra"], ["archive", "--device"]):
            err = run(pond_dir, *args, check=1).stderr.decode()
            assert err == (
                "error: usage: pond run NODE collect | pond run NODE archive [--device NAME]\n"
            )
        assert fake.requests == []


def test_the_factory_is_an_entry_point_and_registered() -> None:
    from duckpond.factories import hydrovu, registry

    (ep,) = [e for e in entry_points(group="duckpond.factories") if e.name == "hydrovu"]
    assert ep.value == "duckpond.factories.hydrovu:FACTORY"
    assert ep.load() is hydrovu.FACTORY
    assert registry.get("hydrovu") is hydrovu.FACTORY


def test_readings_become_wide_rows_first_reading_wins() -> None:
    from duckpond.factories.hydrovu_models import Readings, to_table

    names = {"parameters": {"1": "A"}, "units": {"u": "unit"}}
    r = Readings.empty()
    a = [{"timestamp": 3, "value": 1.0}, {"timestamp": 1, "value": 2.0}]
    r.add_page({"parameters": [{"parameterId": "1", "unitId": "u", "readings": a}]}, "p1")
    b = [{"timestamp": 3, "value": 9.0}, {"timestamp": 2, "value": 5.0}]
    r.add_page({"parameters": [{"parameterId": "9", "unitId": "u", "readings": b}]}, "p2")
    r.add_page({"parameters": [{"parameterId": "1", "unitId": "u", "readings": b}]}, "p3")
    table = to_table(r, names)
    assert table is not None
    assert table.column_names == ["timestamp", "9.unit", "A.unit"]  # unknown id: raw id
    assert [t.timestamp() for t in table.column("timestamp").to_pylist()] == [1, 2, 3]
    assert table.column("A.unit").to_pylist() == [2.0, 5.0, 1.0]
    assert table.column("9.unit").to_pylist() == [None, 5.0, 9.0]
    capped = to_table(r, names, drop_newest=True)
    assert capped is not None and capped.num_rows == 2
