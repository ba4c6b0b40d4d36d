"""Bad input through the real CLI (SPEC §7 errors): one `error: ` line on stderr, exit 1 (2 for
usage, 3 for a locked pond), nothing on stdout, and the pond unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import CLI, cli_env, run_pond
from deltalake import DeltaTable

from duckpond.lock import WriteLock
from duckpond.pond import Pond


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pond = root / "pond"
        self.host = root / "host"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    e = Env(tmp_path_factory.mktemp("errors"))
    h = e.host
    h.mkdir()
    (h / "x.csv").write_text("a,b\n1,2\n")
    (h / "bad.csv").write_text("a,b\n1,2\n3\n4,5\n")
    (h / "binary.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    (h / "sub").write_text("a host file named like a pond directory\n")
    pond = Pond.create(e.pond)
    with pond.transaction() as tx:
        tx.mkdir("/d/sub", parents=True)
        tx.write_bytes("/d/raw.txt", b"raw\n")
        tx.write_table("/d/t", pa.table({"x": [1, 2, 3]}))
    return e


def state(root: Path) -> dict[str, Any]:
    """What must not change: the listing, every file's bytes, the data table's Delta version
    and log."""
    pond = Pond.open(root)
    entries = pond.list()
    return {
        "list": [e.to_json() for e in entries],
        "bytes": {e.path: pond.read_bytes(e.path) for e in entries if e.type.startswith("file")},
        "delta_version": DeltaTable(str(root / "data")).version(),
        "log_files": sorted(p.name for p in (root / "data" / "_delta_log").glob("*.json")),
    }


def check_error(proc: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert proc.stdout == b""
    return lines[0]


CASES = [
    # (id, args, exit code, text the message must contain)
    ("missing-source", ["copy", "host://{h}/nope.bin", "/d/nope"], 1, "nope.bin"),
    ("csv-as-table", ["copy", "host+table://{h}/x.csv", "/d/t2"], 1, "Parquet"),
    ("csv-as-series", ["copy", "host+series://{h}/x.csv", "/d/s2"], 1, "Parquet"),
    ("not-gzip", ["copy", "host+csv+gzip+table://{h}/x.csv", "/d/t3"], 1, "gzip"),
    ("parquet-not-gzip", ["copy", "host+table+gzip://{h}/x.csv", "/d/t4"], 1, "x.csv"),
    ("series-no-time", ["copy", "host+csv+series://{h}/x.csv", "/d/s5"], 1, "x.csv"),
    ("malformed-csv", ["copy", "host+csv+table://{h}/bad.csv", "/d/bad"], 1, "bad.csv"),
    ("binary-csv", ["copy", "host+csv+series://{h}/binary.csv", "/d/bin"], 1, "binary.csv"),
    ("csv-over-table", ["copy", "host+csv+table://{h}/x.csv", "/d/raw.txt"], 1, "/d/raw.txt"),
    ("sql-syntax", ["cat", "/d/t", "--sql", "SELEC x FROM source"], 1, "SELEC"),
    ("sql-column", ["cat", "/d/t", "--sql", "SELECT nope FROM source"], 1, "nope"),
    ("sql-table", ["cat", "/d/t", "--sql", "SELECT * FROM elsewhere"], 1, "elsewhere"),
    ("sql-create", ["cat", "/d/t", "--sql", "CREATE TABLE z AS SELECT 1"], 1, "read-only"),
    ("sql-insert", ["cat", "/d/t", "--sql", "INSERT INTO source VALUES (9)"], 1, "read-only"),
    ("sql-copy", ["cat", "/d/t", "--sql", "COPY source TO '{h}/leak.csv'"], 1, "read-only"),
    ("sql-set", ["cat", "/d/t", "--sql", "SET datafusion.execution.batch_size = 1"], 1, ""),
    ("control-delete", ["control", "--sql", "DELETE FROM control_table"], 1, "read-only"),
    ("scheme-copy", ["copy", "s3://bucket/x", "/d/x"], 2, "s3"),
    ("scheme-cat", ["cat", "ftp:///x"], 2, "ftp"),
    ("two-slashes", ["copy", "host://relative/x", "/d/x"], 2, "three slashes"),
    ("escape-mkdir", ["mkdir", "/../x"], 1, "escapes"),
    ("escape-copy", ["copy", "host://{h}/x.csv", "/d/../../x"], 1, "escapes"),
    ("over-directory", ["copy", "host://{h}/sub", "/d/"], 1, "/d/sub"),
    ("over-directory-mkdir", ["mkdir", "/d/sub"], 1, "/d/sub"),
    ("missing-parent", ["copy", "host://{h}/x.csv", "/nodir/x.csv"], 1, "/nodir"),
    ("parent-is-file", ["copy", "host://{h}/x.csv", "/d/raw.txt/x.csv"], 1, "/d/raw.txt"),
    ("many-into-file", ["copy", "host://{h}/x.csv", "host://{h}/sub", "/d/raw.txt"], 1, ""),
    ("missing-file", ["cat", "/d/none"], 1, "/d/none"),
    ("bad-version-raw", ["cat", "/d/raw.txt", "--version", "7"], 1, "7"),
    ("bad-version-table", ["cat", "/d/t", "--version", "7", "--format", "csv"], 1, "7"),
    ("bad-time", ["cat", "/d/t", "--time-start", "yesterday-ish"], 2, "yesterday-ish"),
    ("unknown-option", ["list", "--bogus"], 2, "--bogus"),
    ("missing-argument", ["cat"], 2, "PATH"),
    ("init-existing", ["init"], 1, "exists"),
]


@pytest.fixture(scope="module")
def results(env: Env) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Every bad command, run a few at a time against the same pond: each must leave it as it
    was, so the state before and after them all must be equal."""
    before = state(env.pond)

    def run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
        argv = [a.replace("{h}", str(env.host)) for a in args]
        # writes take the lock even to fail: --wait lets them queue instead of exiting 3
        return run_pond("--wait", "60", *argv, pond=env.pond, check=None)

    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = dict(zip([c[0] for c in CASES], pool.map(run, [c[1] for c in CASES]), strict=True))
    assert state(env.pond) == before
    assert not (env.host / "leak.csv").exists()
    return procs


@pytest.mark.parametrize(
    ("case", "code", "text"), [(c[0], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(
    results: dict[str, subprocess.CompletedProcess[bytes]],
    env: Env,
    case: str,
    code: int,
    text: str,
) -> None:
    line = check_error(results[case], code)
    assert text.replace("{h}", str(env.host)) in line


def test_no_pond(tmp_path: Path) -> None:
    proc = run_pond("list", check=None)  # the env has no $POND
    assert "POND" in check_error(proc, 1)
    proc = run_pond("list", pond=tmp_path / "nowhere", check=None)
    check_error(proc, 1)
    assert not (tmp_path / "nowhere").exists()


def test_second_writer(pond_dir: Path) -> None:
    before = state(pond_dir)
    lock = WriteLock(pond_dir / "write.lock")
    lock.acquire()
    try:
        proc = run_pond("mkdir", "/blocked", pond=pond_dir, check=None)
        line = check_error(proc, 3)
        assert f"pid {os.getpid()}" in line and "since" in line
        assert state(pond_dir) == before
        # readers never block
        run_pond("list", pond=pond_dir)

        waiter = subprocess.Popen(
            [*CLI, "--pond", str(pond_dir), "--wait", "2", "mkdir", "/waited"],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        timer = threading.Timer(1.0, lock.release)
        timer.start()
        try:
            out, err = waiter.communicate(timeout=60)
        finally:
            timer.join()
        assert waiter.returncode == 0, err.decode()
    finally:
        lock.release()
    listed = json.loads(run_pond("list", "--format", "json", pond=pond_dir).stdout)
    assert [e["path"] for e in listed] == ["/waited"]
