"""Bad input through the real CLI (SPEC §7 errors): one `error: ` line on stderr, exit 1 (2 for
usage, 3 for a locked pond), nothing on stdout, and the pond unchanged."""

from __future__ import annotations

import gzip
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
    (h / "latin1-header.csv").write_bytes(b"timestamp,temp\xb0C\n2024-01-01T00:00:00Z,1.5\n")
    (h / "latin1-value.csv").write_bytes(b"a,place\n1,Bonn\n2,K\xf6ln\n")
    (h / "latin1.csv.gz").write_bytes(gzip.compress(b"a,place\n1,Bonn\n2,K\xf6ln\n"))
    (h / "dup.csv").write_text("timestamp,a,a\n2024-01-01T00:00:00Z,1,2\n")
    (h / "text-time.csv").write_text("timestamp,v\nyesterday,1\ntoday,2\n")
    (h / "new\nline.csv").write_text("a\n1\n")
    (h / "ok.yaml").write_text("message: hi\n")
    (h / "bomb.yaml").write_text(_alias_bomb(levels=5))
    (h / "long-value.yaml").write_text("message: [" + ", ".join(["xyz"] * 50_000) + "]\n")
    pond = Pond.create(e.pond)
    with pond.transaction() as tx:
        tx.mkdir("/d/sub", parents=True)
        tx.write_bytes("/d/raw.txt", b"raw\n")
        tx.write_table("/d/t", pa.table({"x": [1, 2, 3]}))
    return e


def _alias_bomb(levels: int) -> str:
    """YAML whose aliases expand 10x per level ("billion laughs"): tiny text, 10**levels
    strings once expanded."""
    text = "a0: &a0 [" + ", ".join(["lol"] * 10) + "]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text + f"message: *a{levels - 1}\n"


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


BIG_AGG = "SELECT array_agg(range) FROM range(20000000)"  # needs ~160 MB, cannot spill
ENDLESS = "SELECT count(*) FROM range(1, 100000000000)"

CASES = [
    # (id, args, exit code, text the message must contain)
    ("missing-source", ["copy", "host://{h}/nope.bin", "/d/nope"], 1, "nope.bin"),
    ("csv-as-table", ["copy", "host+table://{h}/x.csv", "/d/t2"], 1, "Parquet"),
    ("csv-unsaid", ["copy", "host+csv://{h}/x.csv", "/d/t1"], 2, "say how to store a CSV"),
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
    ("sql-set", ["cat", "/d/t", "--sql", "SET threads = 1"], 1, ""),
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
    # issue 6 item 6: bounded queries, YAML aliases, echoed values
    ("memory-cat", ["cat", "/d/t", "--sql", BIG_AGG, "--memory-limit", "64M"], 1, "memory limit"),
    ("memory-control", ["control", "--sql", BIG_AGG, "--memory-limit", "64M"], 1, "memory limit"),
    ("timeout-cat", ["cat", "/d/t", "--sql", ENDLESS, "--timeout", "1"], 1, "time limit of 1s"),
    ("timeout-control", ["control", "--sql", ENDLESS, "--timeout", "1"], 1, "time limit of 1s"),
    ("bad-memory-limit", ["cat", "/d/t", "--memory-limit", "lots"], 2, "lots"),
    ("tiny-memory-limit", ["control", "--sql", "SELECT 1", "--memory-limit", "1K"], 2, "minimum"),
    ("bad-timeout", ["control", "--sql", "SELECT 1", "--timeout", "-5"], 2, "timeout"),
    (
        "yaml-bomb",
        ["mknod", "test-executor", "/bomb", "--config-path", "{h}/bomb.yaml"],
        1,
        "alias",
    ),
    (
        "long-value",
        ["mknod", "test-executor", "/lv", "--config-path", "{h}/long-value.yaml"],
        1,
        "chars)",
    ),
    ("long-sql", ["cat", "/d/t", "--sql", "SELECT " + "x" * 100_000], 1, "x..."),
    # issue 6 item 7: encodings, duplicate headers, text times, names
    (
        "latin1-header",
        ["copy", "host+csv+table://{h}/latin1-header.csv", "/d/l1"],
        1,
        "latin1-header.csv is not UTF-8 text: byte 0xb0 on line 1",
    ),
    (
        "latin1-value",
        ["copy", "host+csv+table://{h}/latin1-value.csv", "/d/l2"],
        1,
        "latin1-value.csv is not UTF-8 text: byte 0xf6 on line 3",
    ),
    ("latin1-gzip", ["copy", "host+csv+gzip+table://{h}/latin1.csv.gz", "/d/l3"], 1, "line 3"),
    ("latin1-cat", ["cat", "host+csv://{h}/latin1-value.csv"], 1, "not UTF-8"),
    (
        "dup-header",
        ["copy", "host+csv+table://{h}/dup.csv", "/d/dup"],
        1,
        "two columns named 'a' (columns 2 and 3)",
    ),
    ("dup-header-series", ["copy", "host+csv+series://{h}/dup.csv", "/d/dup"], 1, "unique"),
    (
        "text-time",
        ["copy", "host+csv+series://{h}/text-time.csv", "/d/tt"],
        1,
        "column 'timestamp' holds text values",
    ),
    ("newline-name-copy", ["copy", "host://{h}/new\nline.csv", "/d/"], 1, "control character"),
    ("newline-name-mkdir", ["mkdir", "/d/a\nb"], 1, "control character ('\\n')"),
    ("tab-name-mkdir", ["mkdir", "-p", "/d/x\ty/z"], 1, "control character"),
    (
        "newline-name-mknod",
        ["mknod", "test-executor", "/e\rx", "--config-path", "{h}/ok.yaml"],
        1,
        "control",
    ),
    (
        "long-name-copy",
        ["copy", "host://{h}/x.csv", "/d/" + "n" * 256],
        1,
        "longer than 255 bytes",
    ),
    ("long-name-mkdir", ["mkdir", "/" + "\u00e9" * 128], 1, "256 bytes"),
    ("long-name-table", ["copy", "host+csv+table://{h}/x.csv", "/d/" + "t" * 300], 1, "255"),
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
    # every echoed value is clipped: no hostile input turns into a huge error line
    assert len(line) < 2_200, len(line)


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
