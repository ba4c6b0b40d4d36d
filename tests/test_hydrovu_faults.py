"""`hydrovu collect` when HydroVu misbehaves: a failing device, bad credentials, rate
limits, 5xx, a hung server, SIGKILL mid-run; and that no secret is kept anywhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, cli_env, run_pond
from hydrovu_server import CLIENT_SECRET, FakeHydroVu
from hydrovu_setup import (
    DEVICES,
    ENV,
    NODE,
    config,
    expected,
    mknod,
    read,
    run,
    series_path,
    stored,
    versions,
)
from test_secrets import _leaks, _pond_text

A, B = DEVICES


def _two_devices() -> FakeHydroVu:
    fake = FakeHydroVu(page_size=4)
    fake.add(A["id"], [1000, 1060])
    fake.add(B["id"], [2000, 2060])
    return fake


def _last_write(pond: Path) -> dict[str, Any]:
    out = run_pond("control", "recent", "--format", "json", pond=pond).stdout
    summaries: list[dict[str, Any]] = json.loads(out)
    return summaries[-1]


def _snapshot(pond: Path) -> list[Any]:
    """What a user sees of the hydrovu tree: every file with its versions."""
    out = run_pond("list", "/hydrovu/**", pond=pond, check=None).stdout.decode().split()
    return [(p, versions(pond, p)) for p in sorted(out) if p.endswith(".series")]


@pytest.mark.parametrize("fault", ["status", "bad_json"])
def test_a_failing_device_keeps_its_series_and_the_others_commit(
    pond_dir: Path, tmp_path: Path, fault: str
) -> None:
    fake = _two_devices()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        run(pond_dir, "collect")
        before_b = read(pond_dir, series_path(B))
        fake.add(A["id"], [1120])
        fake.add(B["id"], [2120])
        # B's readings fail on every try (4 = 1 + max_retries; bad JSON is not retried)
        tries = 4 if fault == "status" else 1
        fake.fail(f"/locations/{B['id']}/data", 500, times=tries, kind=fault)
        proc = run(pond_dir, "collect", check=1)
        err = proc.stderr.decode()
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: 1 of 2 device(s) failed: device WellB (222): ")
        assert last.endswith("(the other devices' readings were committed)")
        assert ("HTTP 500" if fault == "status" else "invalid JSON") in last
        assert "warning: [hydrovu] device WellB (222) failed, its series is unchanged" in err
        assert "Traceback" not in err
        # A committed, B untouched
        assert stored(read(pond_dir, series_path(A))) == expected(fake, A["id"])
        assert read(pond_dir, series_path(B)).equals(before_b)
        assert len(versions(pond_dir, series_path(B))) == 1
        # the control table: the write committed, and says what failed
        write = _last_write(pond_dir)
        assert write["command"].endswith(f"run {NODE} collect")
        assert write["status"] == "completed"
        assert "device WellB (222)" in write["error_message"]
        shown = run_pond("control", pond=pond_dir).stdout.decode()
        assert " completed, but 1 of 2 device(s) failed: device WellB (222)" in " ".join(
            shown.split()
        )
        # the next run catches up
        run(pond_dir, "collect")
        assert stored(read(pond_dir, series_path(B))) == expected(fake, B["id"])


def test_every_device_failing_fails_the_run_and_writes_nothing(
    pond_dir: Path, tmp_path: Path
) -> None:
    fake = _two_devices()
    fake.fail("/data", 503, times=100)
    with fake.serve():
        mknod(pond_dir, config(fake, max_retries=1), tmp_path)
        err = run(pond_dir, "collect", check=1).stderr.decode()
        assert err.strip().splitlines()[-1].startswith("error: 2 of 2 device(s) failed")
        assert _last_write(pond_dir)["status"] == "failed"
        assert _snapshot(pond_dir) == []


@pytest.mark.parametrize("where", ["token", "data"])
def test_401_is_one_clear_line_and_the_pond_is_unchanged(
    pond_dir: Path, tmp_path: Path, where: str
) -> None:
    fake = _two_devices()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        run(pond_dir, "collect")
        before = _snapshot(pond_dir)
        fake.add(A["id"], [1120])
        if where == "token":
            env = {**ENV, "HV_SECRET": "a-wrong-secret"}
            proc = run_pond("run", NODE, "collect", pond=pond_dir, env=env, check=1)
        else:
            fake.fail(f"/locations/{B['id']}/data", 401, body=b'{"error": "invalid_token"}')
            proc = run(pond_dir, "collect", check=1)
        err = proc.stderr.decode()
        last = err.strip().splitlines()[-1]
        if where == "token":
            assert last == (
                "error: HydroVu refused the credentials (invalid_client): "
                "check client_id and client_secret"
            )
            assert "a-wrong-secret" not in err
        else:
            assert last.startswith("error: HydroVu refused the access token (HTTP 401 from ")
        assert "Traceback" not in err
        assert _snapshot(pond_dir) == before  # A's new reading was not committed either
        assert _last_write(pond_dir)["status"] == "failed"


def test_429_and_5xx_are_retried_with_a_bounded_backoff(pond_dir: Path, tmp_path: Path) -> None:
    fake = _two_devices()
    fake.fail("/oauth/token", 502)
    fake.fail(f"/locations/{A['id']}/data", 429, retry_after="30")
    fake.fail(f"/locations/{B['id']}/data", 503, times=2)
    with fake.serve():
        mknod(pond_dir, config(fake, max_retry_wait=0.2), tmp_path)
        err = run(pond_dir, "collect").stderr.decode()
        assert "HydroVu answered HTTP 502 for /public-api/oauth/token; retry 1 of 3" in err
        # Retry-After: 30 is honoured up to max_retry_wait
        assert f"HTTP 429 for /public-api/v1/locations/{A['id']}/data; retry 1 of 3 in 0.2 s" in err
        assert "retry 2 of 3" in err  # B's second 503
        a_requests = fake.data_requests(A["id"])
        assert a_requests[1].at - a_requests[0].at >= 0.2
        for dev in (A, B):
            assert stored(read(pond_dir, series_path(dev))) == expected(fake, dev["id"])


def test_a_hung_server_ends_by_the_timeout(pond_dir: Path, tmp_path: Path) -> None:
    fake = _two_devices()
    fake.fail(f"/locations/{B['id']}/data", kind="hang")
    with fake.serve():
        mknod(pond_dir, config(fake, timeout=0.5), tmp_path)
        err = run(pond_dir, "collect", check=1).stderr.decode()
        assert fake.arrived.is_set()
        last = err.strip().splitlines()[-1]
        assert "device WellB (222): HydroVu request" in last
        assert "failed: no answer within the timeout" in last
        assert stored(read(pond_dir, series_path(A))) == expected(fake, A["id"])


def test_no_secret_is_kept_in_the_pond_logs_or_control_table(
    pond_dir: Path, tmp_path: Path
) -> None:
    fake = _two_devices()
    fake.fail(f"/locations/{B['id']}/data", 500, times=4, body=CLIENT_SECRET.encode())
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        procs = [run(pond_dir, "collect", check=1), run(pond_dir, "collect")]
        procs.append(run_pond("control", "--format", "json", pond=pond_dir))
        procs.append(run_pond("log", pond=pond_dir, check=None))
    text = _pond_text(pond_dir)
    outputs = [s.decode() for p in procs for s in (p.stdout, p.stderr)]
    # the server echoed the secret in an error body: the run said it as its reference
    assert "${env:HV_SECRET}" in outputs[1]
    tokens = sorted(fake.tokens)
    for secret in [CLIENT_SECRET, *tokens]:
        assert not _leaks(secret, text), f"{secret!r} under $POND"
        for out in outputs:
            assert not _leaks(secret, out), f"{secret!r} in output: {out}"


@pytest.mark.parametrize("crash", ["mid-fetch", "before_data_commit", "after_data_commit"])
def test_sigkill_during_collect_then_rerun_loses_and_duplicates_nothing(
    pond_dir: Path, tmp_path: Path, crash: str
) -> None:
    fake = _two_devices()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        run(pond_dir, "collect")
        fake.add(A["id"], [1120, 1180])
        fake.add(B["id"], [2120])
        argv = [*CLI, "--pond", str(pond_dir), "run", NODE, "collect"]
        env = cli_env(ENV)
        if crash == "mid-fetch":
            fake.fail(f"/locations/{B['id']}/data", kind="hang")
        else:
            env["POND_CRASH_AT"] = crash
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
        try:
            if crash == "mid-fetch":
                assert fake.arrived.wait(120), "the run never reached device B"
                proc.kill()  # SIGKILL: A's readings were staged, nothing committed
            proc.wait(120)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -9
        fake.release.set()
        run(pond_dir, "collect")
        for dev in (A, B):
            assert stored(read(pond_dir, series_path(dev))) == expected(fake, dev["id"])
        run_pond("fsck", pond=pond_dir)


def test_a_missing_environment_variable_is_one_line_and_nothing_is_asked(
    pond_dir: Path, tmp_path: Path
) -> None:
    fake = _two_devices()
    with fake.serve():
        mknod(pond_dir, config(fake), tmp_path)
        env = {k: v for k, v in cli_env().items() if k != "HV_SECRET"}
        env["HV_ID"] = ENV["HV_ID"]
        argv = [*CLI, "--pond", str(pond_dir), "run", NODE, "collect"]
        proc = subprocess.run(argv, env=env, capture_output=True)
        assert proc.returncode == 1
        assert proc.stderr.decode() == "error: environment variable HV_SECRET is not set\n"
        assert fake.requests == []
        assert _snapshot(pond_dir) == []


def test_a_server_paging_in_circles_fails_that_device(pond_dir: Path, tmp_path: Path) -> None:
    fake = FakeHydroVu(page_size=2, loop_pages=True)
    fake.add(A["id"], [1000, 1060, 1120])
    with fake.serve():
        mknod(pond_dir, config(fake, devices=[A]), tmp_path)
        err = run(pond_dir, "collect", check=1).stderr.decode()
        assert "names a page it already gave: 'p1'" in err.strip().splitlines()[-1]
        assert len(fake.data_requests(A["id"])) == 2  # page 1 names p1, p1 names p1: stop
        assert _snapshot(pond_dir) == []
