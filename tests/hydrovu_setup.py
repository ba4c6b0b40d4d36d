"""Shared by the hydrovu tests: a pond with a `hydrovu` node pointed at the fake server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from conftest import run_pond
from hydrovu_server import CLIENT_ID, CLIENT_SECRET, FakeHydroVu

from duckpond.pond import Pond

NODE = "/etc/hydrovu"
ENV = {"HV_ID": CLIENT_ID, "HV_SECRET": CLIENT_SECRET}
DEVICES = [
    {"name": "WellA", "id": 111},
    {"name": "WellB", "id": 222},
]


def config(fake: FakeHydroVu, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "hydrovu_path": "/hydrovu",
        "devices": DEVICES,
        "max_points_per_run": 1000,
        "client_id": "${env:HV_ID}",
        "client_secret": "${env:HV_SECRET}",
        "base_url": fake.url or "http://127.0.0.1:9",
        "timeout": 5,
        "max_retries": 3,
        "max_retry_wait": 0.05,
    }
    cfg.update(over)
    return cfg


# Set-up and read-back go through the library (`pond mknod`, `cat` and `describe` are
# tested through the CLI elsewhere; here they cost a `pond` process each, not the subject);
# `pond run`, the subject, stays a real CLI process.
def mknod(pond: Path, cfg: dict[str, Any], tmp: Path, overwrite: bool = False) -> None:
    path = tmp / "hv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    Pond.open(pond).mknod("hydrovu", NODE, path.read_bytes(), overwrite=overwrite)


def run(pond: Path, *args: str, check: bool | int = True) -> subprocess.CompletedProcess[bytes]:
    return run_pond("run", NODE, *args, pond=pond, env=ENV, check=check)


def series_path(device: dict[str, Any]) -> str:
    return f"/hydrovu/devices/{device['id']}/{device['name']}_active.series"


def read(pond: Path, path: str, sql: str = "SELECT * FROM source ORDER BY timestamp") -> pa.Table:
    return Pond.open(pond).read(path, sql=sql)


def versions(pond: Path, path: str) -> list[dict[str, Any]]:
    """The stored versions of a pond file (`pond describe`)."""
    found: list[dict[str, Any]] = Pond.open(pond).describe(path).to_json()["versions"]  # type: ignore[assignment]
    return found


def expected(fake: FakeHydroVu, device: int) -> dict[int, dict[str, float]]:
    """What the fake serves for a device: timestamp -> {column name: value}."""
    from hydrovu_server import PARAM_UNIT, PARAMETERS, UNITS

    out: dict[int, dict[str, float]] = {}
    for t, p, v in fake.readings.get(device, []):
        out.setdefault(t, {})[f"{PARAMETERS[p]}.{UNITS[PARAM_UNIT[p]]}"] = v
    return out


def stored(table: pa.Table) -> dict[int, dict[str, float]]:
    """A stored series as timestamp -> {column: value} (NULLs left out), refusing a
    timestamp stored twice."""
    out: dict[int, dict[str, float]] = {}
    for row in table.to_pylist():
        t = int(row.pop("timestamp").timestamp())
        assert t not in out, f"timestamp {t} stored twice"
        out[t] = {k: v for k, v in row.items() if v is not None}
    return out
