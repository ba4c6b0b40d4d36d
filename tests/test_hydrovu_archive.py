"""`pond run NODE archive [--device NAME]` and resuming from a seed archive (`archive_path`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from conftest import run_pond
from hydrovu_server import FakeHydroVu
from hydrovu_setup import DEVICES, config, expected, mknod, read, run, series_path, stored, versions

from duckpond.pond import Pond

A, B = DEVICES


def _archive(dev: dict[str, object]) -> str:
    today = datetime.now(UTC).strftime("%Y%m%d")
    return f"/hydrovu/devices/{dev['id']}/{dev['name']}_archive_{today}.series"


def _files(pond: Path) -> list[str]:
    out = run_pond("list", "/hydrovu/devices/*/*", pond=pond).stdout.decode()
    return sorted(out.split())


def test_archive_compacts_the_active_series_and_collect_resumes_after_it(
    pond_dir: Path, tmp_path: Path
) -> None:
    fake = FakeHydroVu(page_size=4)
    fake.add(A["id"], [1000, 1060])
    fake.add(B["id"], [2000])
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        run(pond_dir, "collect")
        fake.add(A["id"], [1120], params=("1", "4"))  # a new column in version 2
        run(pond_dir, "collect")
        assert len(versions(pond_dir, series_path(A))) == 2

        err = run(pond_dir, "archive", "--device", "WellA").stderr.decode()
        assert "Archived 1 series files." in err
        assert f"pond copy '{_archive(A)}' host:///DEST" in err
        assert _files(pond_dir) == sorted([_archive(A), series_path(B)])
        archived = read(pond_dir, _archive(A))
        assert len(versions(pond_dir, _archive(A))) == 1
        assert archived.column_names == [
            "timestamp",
            "Conductivity.uScm",
            "Pressure.psi",
            "Temperature.C",
        ]
        assert stored(archived) == expected(fake, A["id"])

        # the next collect starts after the archive's newest time, in a new active series
        fake.add(A["id"], [1180])
        run(pond_dir, "collect")
        assert fake.data_requests(A["id"])[-1].query["startTime"] == "1121"
        assert stored(read(pond_dir, series_path(A))) == {1180: expected(fake, A["id"])[1180]}

        # once a day per device: WellA's archive exists, WellB's is made
        err = run(pond_dir, "archive").stderr.decode()
        assert f"warning: [hydrovu] device WellA (111): {_archive(A)} exists" in err
        assert "Archived 1 series files." in err
        assert _files(pond_dir) == sorted([_archive(A), series_path(A), _archive(B)])

        err = run(pond_dir, "archive", "--device", "Nope", check=1).stderr.decode()
        assert err == "error: no device named 'Nope' in this node (devices: WellA, WellB)\n"


def test_archive_skips_a_device_never_collected(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        err = run(pond_dir, "archive").stderr.decode()
        assert "warning: [hydrovu] device WellA (111): /hydrovu/devices/111 does not exist" in err
        assert "Archived 0 series files." in err


def test_a_seed_archive_gives_the_resume_point_and_no_seed_refuses_the_epoch(
    pond_dir: Path, tmp_path: Path
) -> None:
    seed = pa.table({"timestamp": pa.array([900, 950], pa.int64()), "Temperature.C": [1.0, 2.0]})
    with Pond.open(pond_dir).transaction() as tx:
        tx.write_series(
            "/seed/devices/111/WellA.series", seed, time_column="timestamp", parents=True
        )
    fake = FakeHydroVu()
    fake.add(A["id"], [900, 950, 1000])
    fake.add(B["id"], [2000])
    with fake.serve():
        mknod(pond_dir, config(fake, archive_path="/seed"), tmp_path)
        err = run(pond_dir, "collect", check=1).stderr.decode()
        assert fake.data_requests(A["id"])[0].query["startTime"] == "951"
        assert sorted(stored(read(pond_dir, series_path(A)))) == [1000]
        assert fake.data_requests(B["id"]) == []
        assert (
            "device WellB (222): no readings in the pond and no resume point in the seed "
            "archive /seed/devices/222; refusing to fetch HydroVu from the epoch"
        ) in err.strip().splitlines()[-1]
