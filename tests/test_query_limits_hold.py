"""Issue 19 goal 3: `--memory-limit SIZE` holds (peak RSS <= 2 x SIZE + 150 MB, sampled from
/proc by the test, which kills the child at a hard ceiling) for a cross join streamed to
/dev/null and to CSV, huge strings, a big aggregation and a sort, each ending in one clear
`error:` line or spilling and succeeding; `--timeout` stops a query from any thread of a
library user; no temporary file outlives a query."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CLI, cli_env

from duckpond.errors import QueryError
from duckpond.pond import Pond

SIZE = 200 << 20
BOUND = 2 * SIZE + (150 << 20)  # the goal's bound on the child's peak RSS
CEILING = 2 << 30  # a child past this is killed: the test fails instead of the machine
CROSS = "SELECT a.range AS x, b.range AS y FROM range(100000) a, range(100000) b"


def status(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_watched(args: list[str], tmp: Path, stdout: IO[bytes] | int) -> tuple[int, str, int]:
    """`pond ARGS` with TMPDIR=tmp, its RSS sampled until it exits (killed past CEILING);
    (exit code, stderr, peak RSS)."""
    proc = subprocess.Popen(
        [*CLI, *args], env=cli_env({"TMPDIR": str(tmp)}), stdout=stdout, stderr=subprocess.PIPE
    )
    peak = 0
    try:
        while True:
            try:
                proc.wait(timeout=0.01)
                break
            except subprocess.TimeoutExpired:
                pass
            peak = max(peak, status(proc.pid))
            if peak > CEILING:
                proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    return proc.returncode, proc.stderr.read().decode(), peak


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A small host Parquet file: `pond cat` needs a source; the queries read ranges."""
    path = tmp_path / "small.parquet"
    pq.write_table(pa.table({"v": [1, 2, 3]}), path)
    return f"host+table://{path}"


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def limited(source: str, query: str, *more: str) -> list[str]:
    return ["cat", source, "--sql", query, "--memory-limit", "200M", *more]


@pytest.mark.parametrize("sink", ["devnull", "csv"])
def test_a_cross_join_streams_in_bounded_memory_until_its_timeout(
    tmp_path: Path, source: str, sink: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = limited(source, CROSS, "--timeout", "3", "--format", "csv")
    if sink == "devnull":
        code, err, peak = run_watched(args, tmp, subprocess.DEVNULL)
    else:
        out = tmp_path / "out.csv"
        with out.open("wb") as f:
            code, err, peak = run_watched(args, tmp, f)
        with out.open("rb") as f:
            assert f.readline() == b'"x","y"\n'
            assert f.readline() == b"0,0\n"  # rows were written while the join ran
    assert code == 1
    assert one_error_line(err) == (
        "error: query exceeded the time limit of 3s (raise it with --timeout SECONDS)"
    )
    assert peak <= BOUND, f"peak RSS {peak >> 20} MB"
    assert os.listdir(tmp) == []


def test_huge_strings_end_with_the_memory_error(tmp_path: Path, source: str) -> None:
    # 3,000 strings of 1 MB: DuckDB builds 2,048 of them per vector, outside its buffer
    # manager, so only the process bound the CLI sets (query/limits.py) stops it in time
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    query = "SELECT max(length(repeat('x', 1000000) || CAST(range AS VARCHAR))) FROM range(3000)"
    code, err, peak = run_watched(limited(source, query, "--format", "csv"), tmp, subprocess.PIPE)
    assert code == 1
    line = one_error_line(err)
    assert "memory" in line and "--memory-limit SIZE" in line, line
    assert peak <= BOUND, f"peak RSS {peak >> 20} MB"
    assert os.listdir(tmp) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # 4M groups: the hash table outgrows 200M and spills
        (
            "SELECT count(*) AS groups, sum(n) AS total FROM "
            "(SELECT range % 4000000 AS k, count(*) AS n FROM range(12000000) GROUP BY 1)",
            b'"groups","total"\n4000000,12000000\n',
        ),
        # a window over 8M rows sorts all of them: spills too
        (
            "SELECT max(r) AS m FROM "
            "(SELECT row_number() OVER (ORDER BY range DESC) AS r FROM range(8000000))",
            b'"m"\n8000000\n',
        ),
    ],
    ids=["aggregation", "sort"],
)
def test_big_aggregation_and_sort_spill_and_succeed(
    tmp_path: Path, source: str, query: str, expected: bytes
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out.csv"
    with out.open("wb") as f:
        code, err, peak = run_watched(limited(source, query, "--format", "csv"), tmp, f)
    assert code == 0, err
    assert out.read_bytes() == expected
    assert peak <= BOUND, f"peak RSS {peak >> 20} MB"
    assert os.listdir(tmp) == []


def test_timeout_from_another_thread_of_a_library_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction() as tx:
        tx.write_table("/t", pa.table({"v": [1, 2, 3]}))
    failures: dict[str, BaseException] = {}

    def in_thread(name: str, call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            failures[name] = e

    calls = {
        "sql": lambda: pond.sql(f"SELECT count(*) FROM ({CROSS}) WHERE x + y = -1", timeout=1),
        "read": lambda: pond.read(
            "/t", sql=f"SELECT count(*) FROM ({CROSS}) WHERE x + y = -1", timeout=1
        ),
    }
    threads = [threading.Thread(target=in_thread, args=(n, c)) for n, c in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in calls:
        e = failures[name]
        assert isinstance(e, QueryError), (name, e)
        assert str(e) == "query exceeded the time limit of 1s (raise it with --timeout SECONDS)"
    # the same handle runs the next query normally: no interrupt is left pending
    assert pond.sql("SELECT count(*) AS n FROM source", path="/t").column("n").to_pylist() == [3]
    import gc

    gc.collect()
    assert os.listdir(tmp) == []


def test_a_streamed_read_closed_early_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction() as tx:
        tx.write_table("/t", pa.table({"v": [1, 2, 3]}))
    batches = pond.read_batches("/t", sql=CROSS, memory_limit=SIZE)
    first = next(batches)
    assert first.schema.names == ["x", "y"] and first.num_rows > 0
    batches.close()  # type: ignore[attr-defined]
    assert os.listdir(tmp) == []
