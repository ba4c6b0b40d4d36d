"""Benchmark 21: `hydrovu collect` of 100,000 readings (issue 20).

The fake HydroVu of the tests (tests/hydrovu_server.py) serves one device's 100,000
readings (4 parameters x 25,000 timestamps) in pages of 1,000 readings, from its own spawned
process, its pages prepared by a warm-up fetch so that serving costs both sides alike.
21a `pond run NODE collect` as the library call the CLI makes (`Pond.run`), on a fresh pond
    each rep: token, friendly names, 100 pages, the series version and its commit, vs the
    same requests (token, names, every page by `x-isi-start-page`) made with the HTTP client
    alone (httpx2), each page's JSON decoded. Interleaved reps, medians.
21b the same collect as a whole `pond` process (start-up included), reported only.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx2
import yaml

from duckpond.pond import Pond

from .common import REPO, Result, Timer, log, pond_cmd, ratio_row, run_process

NODE = "/etc/hydrovu"
DEVICE = 4242
PARAMS = ("1", "2", "4", "5")  # 4 readings per timestamp


def _serve(conn: Connection, timestamps: int, page_size: int) -> None:
    """The fake server, in its own process until the pipe closes."""
    sys.path.insert(0, str(REPO / "tests"))
    from hydrovu_server import FakeHydroVu

    fake = FakeHydroVu(page_size=page_size, cache_pages=True)
    fake.add(DEVICE, [1_700_000_000 + 60 * i for i in range(timestamps)], params=PARAMS)
    with fake.serve():
        conn.send((fake.url, len(fake.readings[DEVICE]), fake.client_id, fake.client_secret))
        try:
            conn.recv()
        except EOFError:
            pass


def _client_alone(url: str, client_id: str, secret: str) -> int:
    """The baseline: the same requests with httpx2 alone; the readings count."""
    with httpx2.Client(timeout=60) as http:
        token = http.post(
            f"{url}/public-api/oauth/token",
            data={"grant_type": "client_credentials", "scope": "read:locations read:data"},
            auth=(client_id, secret),
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        http.get(f"{url}/public-api/v1/sispec/friendlynames", headers=headers).json()
        count, page_headers = 0, dict(headers)
        while True:
            r = http.get(
                f"{url}/public-api/v1/locations/{DEVICE}/data",
                params={"startTime": "0"},
                headers=page_headers,
            )
            body: Any = r.json()
            count += sum(len(p["readings"]) for p in body["parameters"])
            nxt = r.headers.get("x-isi-next-page")
            if not nxt:
                return count
            page_headers = {**headers, "x-isi-start-page": nxt}


def _fresh_pond(root: Path, url: str) -> Path:
    pond = Pond.create(root)
    cfg = {
        "hydrovu_path": "/hydrovu",
        "devices": [{"name": "Bench", "id": DEVICE}],
        "max_points_per_run": 1_000_000,
        "client_id": "${env:BENCH_HV_ID}",
        "client_secret": "${env:BENCH_HV_SECRET}",
        "base_url": url,
    }
    pond.mknod("hydrovu", NODE, yaml.safe_dump(cfg).encode())
    return root


def run(work: Path, quick: bool) -> Result:
    timestamps = 2_500 if quick else 25_000
    reps = 3 if quick else 9
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    server = spawn.Process(target=_serve, args=(child, timestamps, 1_000), daemon=True)
    server.start()
    try:
        url, readings, client_id, secret = parent.recv()
        os.environ["BENCH_HV_ID"], os.environ["BENCH_HV_SECRET"] = client_id, secret
        log(f"21: hydrovu collect of {readings:,} readings in pages of 1,000, {reps} reps")
        t = Timer(warmup=1)
        for i in range(reps + 1):
            got = t.run("client", lambda: _client_alone(url, client_id, secret))
            assert got == readings, (got, readings)
            root = _fresh_pond(work / f"pond-{i}", url)
            t.run("collect", lambda root=root: Pond.open(root).run(NODE, ["collect"]))
            root2 = _fresh_pond(work / f"pond-proc-{i}", url)
            t.add("process", run_process(pond_cmd(root2, "run", NODE, "collect")))
    finally:
        parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.kill()
    rows = [
        ratio_row(
            "21a",
            f"`hydrovu collect` of {readings:,} readings (Pond.run) vs httpx2 alone, same pages",
            t.median("collect"),
            t.median("client"),
            1.5,
            readings=readings,
        ),
        ratio_row(
            "21b",
            "the same collect as a whole `pond run` process vs httpx2 alone",
            t.median("process"),
            t.median("client"),
            None,
        ),
    ]
    return Result(rows)
