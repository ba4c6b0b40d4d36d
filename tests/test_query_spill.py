"""Issue 17 item 8: a query's spill files never outlive it. Each query context spills into a
directory of its own under $TMPDIR, emptied when the query ends and removed with the context
or at exit, also when the CLI leaves by os._exit after a time limit or an interrupt."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CLI, cli_env

from duckpond.pond import Pond

MAX_RSS = 1536 << 20  # far above what a 32M-limited query needs: a child over it is killed
SORT = "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY range DESC) AS r FROM range({n}))"


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def files_under(root: Path) -> list[str]:
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]


def run_watched(
    args: list[str], tmp: Path, when: Callable[[], bool] | None = None, then: int = 0
) -> tuple[int, str]:
    """Run `pond ARGS` with TMPDIR=tmp, killed if its RSS passes MAX_RSS; once `when()`
    holds, send it signal `then`. Returns (exit code, stderr)."""
    proc = subprocess.Popen(
        [*CLI, *args],
        env=cli_env({"TMPDIR": str(tmp)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            assert rss(proc.pid) < MAX_RSS, "the child outgrew MAX_RSS (killed)"
            if when is not None and when():
                proc.send_signal(then)
                when = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    return proc.returncode, proc.stderr.read().decode()


def test_a_spilling_query_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    pond = tmp_path / "pond"
    Pond.create(pond)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = ["--pond", str(pond), "control", "--sql", SORT.format(n=6_000_000)]
    code, err = run_watched([*args, "--memory-limit", "32M"], tmp)
    assert code == 0, err
    assert os.listdir(tmp) == []


def test_a_query_stopped_by_its_time_limit_leaves_nothing(tmp_path: Path) -> None:
    pond = tmp_path / "pond"
    Pond.create(pond)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = ["--pond", str(pond), "control", "--sql", SORT.format(n=1_000_000_000)]
    code, err = run_watched([*args, "--memory-limit", "32M", "--timeout", "5"], tmp)
    assert code == 1 and "time limit of 5s" in err, err
    assert os.listdir(tmp) == []


def test_a_query_interrupted_while_spilling_leaves_nothing(tmp_path: Path) -> None:
    pond = tmp_path / "pond"
    Pond.create(pond)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = ["--pond", str(pond), "control", "--sql", SORT.format(n=1_000_000_000)]
    seen: list[str] = []

    def spilling() -> bool:
        seen.extend(files_under(tmp))
        return bool(seen)

    code, err = run_watched(
        [*args, "--memory-limit", "32M", "--timeout", "0"], tmp, spilling, signal.SIGINT
    )
    assert seen, "the query never spilled"
    assert code == 1 and err.strip() == "error: aborted", err  # click's answer to SIGINT
    assert os.listdir(tmp) == []


def test_library_queries_clean_their_spill_files(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    from duckpond.query import limits

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pond = Pond.create(tmp_path / "pond")
    t = pond.sql(SORT.format(n=6_000_000), memory_limit=32 << 20)
    assert t.num_rows == 1
    assert not any(files_under(Path(d)) for d in limits._SPILL_DIRS)
    limits.remove_spill_dirs()
    assert [p.name for p in tmp_path.iterdir()] == ["pond"]


@pytest.mark.parametrize("in_thread", [True, False])
def test_library_timeout_in_any_thread_leaves_no_spill_files(
    tmp_path: Path, monkeypatch, in_thread: bool
) -> None:  # type: ignore[no-untyped-def]
    """`Pond.sql(..., timeout=)` stops a query started from a `threading.Thread` (no
    SIGALRM there) as it does in the main thread, with the same error, and a query stopped
    while spilling leaves no spill file once its directory goes."""
    import tempfile
    import threading

    from duckpond.errors import QueryError
    from duckpond.query import limits

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pond = Pond.create(tmp_path / "pond")
    queries = [
        ("SELECT count(*) FROM range(1, 100000000000)", None),  # constant memory
        (SORT.format(n=1_000_000_000), 32 << 20),  # spills under 32 MiB
    ]
    errors: list[BaseException] = []

    def run() -> None:
        for query, memory in queries:
            try:
                pond.sql(query, timeout=1, memory_limit=memory)
            except BaseException as e:  # noqa: BLE001 - checked below
                errors.append(e)

    if in_thread:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    else:
        run()
    assert [type(e) for e in errors] == [QueryError, QueryError]
    assert all(str(e).startswith("query exceeded the time limit of 1s") for e in errors)
    # (a spill file being written as the tasks are dropped goes with its task a moment
    # later, so the directories are checked once removed, as a context's are)
    assert pond.sql("SELECT 1 AS one", timeout=1).to_pylist() == [{"one": 1}]
    limits.remove_spill_dirs()
    assert [p.name for p in tmp_path.iterdir()] == ["pond"]
