"""Issue 22 item 5, the small gaps a new user hit: `control --sql --format csv`, `copy -p`,
relative host paths, a terminal line naming the running post-commit job, and the library's
error classes and types."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import CLI, cli_env, run_pond
from test_cli_progress import _on_a_terminal

import duckpond
from duckpond import errors
from duckpond.pond import Pond

CSV = "time,v\n2024-01-01T00:00:00Z,1.5\n2024-01-01T01:00:00Z,2.5\n"


def test_control_sql_prints_csv_and_parquet_as_cat_does(pond_dir: Path) -> None:
    query = "SELECT min(txn_seq) AS first, max(txn_seq) AS last FROM control_table"
    out = run_pond("control", "--sql", query, "--format", "csv", pond=pond_dir).stdout
    assert out == b'"first","last"\n1,1\n'  # as `cat` writes CSV
    raw = run_pond("control", "--sql", query, "--format", "parquet", pond=pond_dir).stdout
    assert pq.read_table(io.BytesIO(raw)).to_pylist() == [{"first": 1, "last": 1}]
    # the summaries have no CSV form: said plainly, not a traceback
    bad = run_pond("control", "--format", "csv", pond=pond_dir, check=False)
    assert bad.returncode != 0
    assert bad.stderr.decode().strip().splitlines() == [
        "error: --format csv is for --sql results; summaries print as table or json"
    ]


def test_copy_p_makes_the_missing_directories(tmp_path: Path, pond_dir: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text(CSV)
    refused = run_pond("copy", f"host://{src}", "/x/y/a.csv", pond=pond_dir, check=False)
    assert refused.returncode != 0 and refused.stderr.startswith(b"error: ")
    run_pond("copy", "-p", f"host://{src}", "/x/y/a.csv", pond=pond_dir)
    run_pond("copy", "--parents", f"host://{src}", "/p/q/", pond=pond_dir)
    run_pond("copy", "-p", f"host://{src}", "/x/y/b.csv", pond=pond_dir)  # parents exist: fine
    for path in ("/x/y/a.csv", "/p/q/a.csv", "/x/y/b.csv"):
        assert run_pond("cat", path, pond=pond_dir).stdout == CSV.encode()
    listed = run_pond("list", "/**", pond=pond_dir).stdout.decode().split()
    assert {"/x", "/x/y", "/p", "/p/q"} <= set(listed)


def _pond_in(cwd: Path, pond: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, "--pond", str(pond), *args], cwd=cwd, env=cli_env(), capture_output=True
    )


def test_a_relative_host_path_is_taken_against_the_current_directory(
    tmp_path: Path, pond_dir: Path
) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "sub" / "a.csv").write_text(CSV)
    (work / "b;c.csv").write_text(CSV.replace(",", ";"))
    done = _pond_in(work, pond_dir, "copy", "host:sub/a.csv", "/a.csv")
    assert done.returncode == 0, done.stderr
    done = _pond_in(work / "sub", pond_dir, "copy", "host+csv+series:../sub/a.csv", "/s")
    assert done.returncode == 0, done.stderr
    done = _pond_in(work, pond_dir, "copy", "host+csv+table:b;c.csv?delimiter=;", "/t")
    assert done.returncode == 0, done.stderr
    assert run_pond("cat", "/a.csv", pond=pond_dir).stdout == CSV.encode()
    for path in ("/s", "/t"):
        got = run_pond(
            "cat", path, "--sql", "SELECT sum(v) AS s FROM source", "--format", "csv", pond=pond_dir
        )
        assert got.stdout == b'"s"\n4\n'
    # copy out to a relative directory
    done = _pond_in(work, pond_dir, "copy", "/a.csv", "host:out")
    assert done.returncode == 0, done.stderr
    assert (work / "out" / "a.csv").read_text() == CSV
    # an authority is still refused, with the forms that work
    bad = _pond_in(work, pond_dir, "copy", "host://sub/a.csv", "/z.csv")
    assert bad.returncode != 0
    assert b"three slashes" in bad.stderr and bad.stderr.count(b"\n") == 1


def test_a_terminal_shows_which_post_commit_job_runs(tmp_path: Path, pond_dir: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"command": [sys.executable, "-c", "pass"]}))
    run_pond("mknod", "command", "/etc/system.d/10-noop", "--config-path", job, pond=pond_dir)
    src = tmp_path / "x.txt"
    src.write_text("x")
    code, tty = _on_a_terminal("copy", f"host://{src}", "/x.txt", pond=pond_dir)
    assert code == 0
    assert b"running post-commit job /etc/system.d/10-noop (command)" in tty
    piped = run_pond("copy", f"host://{src}", "/y.txt", pond=pond_dir)
    assert b"running post-commit job" not in piped.stderr


def test_error_classes_are_importable_from_the_package() -> None:
    from duckpond import NotFoundError, PondError, QueryError

    assert NotFoundError is errors.NotFoundError and issubclass(QueryError, PondError)
    for name in duckpond.__all__:
        assert getattr(duckpond, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Typo'"):
        duckpond.Typo  # noqa: B018


def test_mypy_refuses_a_name_the_package_does_not_have(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(
        "from duckpond import NotFoundError, Pond, Typo\n"
        "def f(p: Pond) -> str:\n"
        "    d = p.describe('/x')\n"
        "    return d.schema[0].name + str(len(d.versions)) + str(NotFoundError)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    errs = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errs) == 1, out.stdout
    assert 'Module "duckpond" has no attribute "Typo"' in errs[0]


def test_describe_gives_lists_never_none(tmp_path: Path, pond_dir: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text(CSV)
    run_pond("copy", f"host://{src}", "/raw.csv", pond=pond_dir)
    run_pond("copy", f"host+csv+series://{src}", "/s", pond=pond_dir)
    pond = Pond.open(pond_dir)
    raw = pond.describe("/raw.csv")
    assert raw.schema == [] and [v.version for v in raw.versions] == [1]
    series = pond.describe("/s")
    assert [f.name for f in series.schema] == ["time", "v"]
    assert "schema" not in raw.to_json() and "schema" in series.to_json()


def test_status_page_and_json_keep_a_failure_a_retry_fixed(tmp_path: Path, pond_dir: Path) -> None:
    flag = tmp_path / "ok"
    job = tmp_path / "job.yaml"
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 3)"
    job.write_text(json.dumps({"command": [sys.executable, "-c", check]}))
    run_pond("mknod", "command", "/etc/system.d/10-flaky", "--config-path", job, pond=pond_dir)
    src = tmp_path / "x.txt"
    src.write_text("x")
    run_pond("copy", f"host://{src}", "/x.txt", pond=pond_dir)  # the job fails: a warning
    flag.write_text("")
    run_pond("recover", "--retry-failed", pond=pond_dir)
    pond = Pond.open(pond_dir)
    (task,) = [
        j for t in pond.control_recent() for j in t.post_commit if j.config_path.endswith("flaky")
    ][-1:]
    assert (task.status, task.attempt) == ("completed", 2)
    assert [(a.attempt, a.error_message) for a in task.failed_attempts] == [
        (1, "command exited with status 3:")
    ]
    out = tmp_path / "site"
    run_pond("site", "build", out, pond=pond_dir)
    status = (out / "status.html").read_text()
    failed = status[
        status.index('id="failed"') : status.index("</table>", status.index('id="failed"'))
    ]
    assert "/etc/system.d/10-flaky" in failed and "command exited with status 3" in failed
    assert "completed at attempt 2" in failed
