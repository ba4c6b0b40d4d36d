"""The docs' examples run as written: docs/ingest/hydrovu.md's config makes a working node,
and docs/ingest/scheduling.md's crontab line (through `sh`) and systemd ExecStart (as
systemd would: split, no shell, the EnvironmentFile's variables) collect from the fake
server into a test pond. Only host paths are replaced."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import cli_env, run_pond
from hydrovu_server import CLIENT_ID, CLIENT_SECRET, FakeHydroVu
from hydrovu_setup import read, stored

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ingest"
POND_BIN = str(Path(sys.executable).parent / "pond")


def _blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", (DOCS / doc).read_text(), re.M | re.S)


def _node(pond: Path, tmp: Path, fake: FakeHydroVu) -> dict[str, object]:
    """The node of the docs, from hydrovu.md's config with the fake server's URL."""
    cfg = yaml.safe_load(_blocks("hydrovu.md", "yaml")[0])
    cfg["base_url"] = fake.url
    path = tmp / "hydrovu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_pond("mknod", "hydrovu", "/etc/hydrovu", "--config-path", path, pond=pond)
    for dev in cfg["devices"]:
        fake.add(dev["id"], [1_714_557_600, 1_714_557_660])
    return cfg


def _env_file(tmp: Path) -> Path:
    """The docs' env file with the fake server's credentials."""
    (text,) = [b for b in _blocks("scheduling.md", "sh") if "/etc/pond/hydrovu.env" in b]
    text = text.replace("your-client-id", CLIENT_ID).replace("your-client-secret", CLIENT_SECRET)
    path = tmp / "hydrovu.env"
    path.write_text(text)
    return path


def _host_paths(text: str, pond: Path, tmp: Path) -> str:
    for doc_path, test_path in {
        "/opt/pond/.venv/bin/pond": POND_BIN,
        "/srv/water/pond": str(pond),
        "/etc/pond/hydrovu.env": str(tmp / "hydrovu.env"),
        "/var/log/pond/hydrovu.log": str(tmp / "hydrovu.log"),
    }.items():
        text = text.replace(doc_path, test_path)
    return text


def _collected(pond: Path, cfg: dict[str, object], fake: FakeHydroVu) -> None:
    active = cfg["devices"][0]  # type: ignore[index]
    series = f"/hydrovu/devices/{active['id']}/{active['name']}_active.series"
    assert sorted(stored(read(pond, series))) == [1_714_557_600, 1_714_557_660]
    inactive = cfg["devices"][1]  # type: ignore[index]
    assert inactive.get("active") is False and fake.data_requests(inactive["id"]) == []


def test_the_crontab_line_runs_as_written(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu()
    with fake.serve():
        cfg = _node(pond_dir, tmp_path, fake)
        _env_file(tmp_path)
        (line,) = [x for x in _blocks("scheduling.md", "crontab")[0].splitlines() if x.strip()]
        fields = line.split(None, 5)
        assert fields[:5] == ["*/15", "*", "*", "*", "*"]
        command = _host_paths(fields[5], pond_dir, tmp_path)
        assert " --wait 600 run /etc/hydrovu collect " in command
        env = {k: v for k, v in cli_env().items() if not k.startswith("HYDROVU_")}
        proc = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True)
        log = (tmp_path / "hydrovu.log").read_text()
        assert proc.returncode == 0, log
        assert "[hydrovu] HydroVu collection complete: 4 readings from 1 device(s)" in log
        _collected(pond_dir, cfg, fake)


def test_the_systemd_service_runs_as_written(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu()
    with fake.serve():
        cfg = _node(pond_dir, tmp_path, fake)
        env_file = _env_file(tmp_path)
        service, timer = _blocks("scheduling.md", "ini")
        keys = dict(re.findall(r"^(\w+)=(.*)$", service, re.M))
        assert keys["Type"] == "oneshot"
        assert keys["EnvironmentFile"] == "/etc/pond/hydrovu.env"
        argv = shlex.split(_host_paths(keys["ExecStart"], pond_dir, tmp_path))
        env = {k: v for k, v in cli_env().items() if not k.startswith("HYDROVU_")}
        for line in env_file.read_text().splitlines():  # systemd's EnvironmentFile= reading
            if line.strip() and not line.startswith("#"):
                name, _, value = line.partition("=")
                env[name] = value
        proc = subprocess.run(argv, env=env, capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()
        _collected(pond_dir, cfg, fake)
        assert "OnCalendar=*:0/15" in timer and "Persistent=true" in timer
