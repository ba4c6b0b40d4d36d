"""Issue 17 item 11: things found by using the pond (`list /`, re-applying a CSV copy,
`recover --retry-failed`'s exit code, `control detail N`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import run_pond

from duckpond.pond import Pond


def test_list_root_means_its_entries(pond_dir: Path, tmp_path: Path) -> None:
    """SPEC §3: a trailing `/` means the directory's contents, so `/` alone is the root's
    entries (like `/dir/`), not the root itself."""
    with Pond.open(pond_dir).transaction() as tx:
        tx.write_bytes("/f.txt", b"x")
        tx.write_bytes("/a/g.txt", b"y", parents=True)
    assert [e.path for e in Pond.open(pond_dir).list("/")] == ["/a", "/f.txt"]
    assert [e.path for e in Pond.open(pond_dir).list("/a/")] == ["/a/g.txt"]
    out = run_pond("list", "/", pond=pond_dir).stdout.decode().splitlines()
    assert out == ["/a", "/f.txt"]
    shown = json.loads(run_pond("list", "--format", "json", "/", pond=pond_dir).stdout)
    assert [e["path"] for e in shown] == ["/a", "/f.txt"]
    # the root itself is still there to be listed by a pattern that names it
    assert "/" in [e.path for e in Pond.open(pond_dir).list("/**")]


def _job(pond_dir: Path, name: str, factory: str, config: dict[str, object]) -> None:
    Pond.open(pond_dir).mknod(factory, f"/etc/system.d/{name}", json.dumps(config).encode())


def _write(pond_dir: Path, path: str, data: bytes) -> int:
    with Pond.open(pond_dir).transaction() as tx:
        tx.write_bytes(path, data, parents=True)
        seq = tx.txn_seq
    return seq


def _failed_rows(pond_dir: Path, seq: int) -> list[dict[str, object]]:
    rows = Pond.open(pond_dir).control.read_all().to_pylist()
    return [r for r in rows if r["txn_seq"] == seq and r["record_type"] == "post_commit_failed"]


def test_recover_retry_failed_exits_1_when_a_task_fails_again(pond_dir: Path) -> None:
    _job(pond_dir, "10-bad", "test-executor", {"message": "m", "fail": True})
    seq = Pond.open(pond_dir).data.last_txn_seq()  # the mknod ran its own new job: failed
    assert len(_failed_rows(pond_dir, seq)) == 1
    proc = run_pond("recover", "--retry-failed", pond=pond_dir, check=1)
    err = proc.stderr.decode()
    line = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert line == [line[0]] and f"task {seq}.1 /etc/system.d/10-bad failed again" in line[0]
    assert "attempt 2" in line[0] and "intentionally failed" in line[0]
    assert len(_failed_rows(pond_dir, seq)) == 2  # the retry ran and was recorded
    # JSON: the report on stdout (with the error), the error line on stderr, exit 1
    proc = run_pond("recover", "--retry-failed", "--format", "json", pond=pond_dir, check=1)
    [task] = json.loads(proc.stdout)["tasks"]
    assert task["outcome"] == "failed" and task["attempt"] == 3
    assert "intentionally failed" in task["error"]
    assert "error: task" in proc.stderr.decode()


def test_recover_retry_failed_exits_0_when_retries_succeed(pond_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    # fails the first time (and leaves a marker), succeeds on the retry
    script = (
        f"import os, sys; p = {str(marker)!r}; "
        "first = not os.path.exists(p); open(p, 'a').close(); sys.exit(1 if first else 0)"
    )
    _job(pond_dir, "10-flaky", "command", {"command": [sys.executable, "-c", script]})
    # mknod's own post-commit ran it once already (failed); nothing else to do but retry
    proc = run_pond("recover", "--retry-failed", "--format", "json", pond=pond_dir)
    assert [t["outcome"] for t in json.loads(proc.stdout)["tasks"]] == ["completed"]
    assert "error" not in json.loads(proc.stdout)["tasks"][0]
    # without --retry-failed there is nothing to do
    run_pond("recover", pond=pond_dir)


def test_control_detail_takes_the_number_positionally_or_as_option(pond_dir: Path) -> None:
    seq = _write(pond_dir, "/x", b"x")
    by_arg = run_pond("control", "detail", seq, "--format", "json", pond=pond_dir)
    by_arg = json.loads(by_arg.stdout)
    by_opt = run_pond("control", "detail", "--txn-seq", seq, "--format", "json", pond=pond_dir)
    assert by_arg == json.loads(by_opt.stdout)
    assert by_arg["txn_seq"] == seq
    table = run_pond("control", "detail", seq, pond=pond_dir).stdout.decode()
    assert table == run_pond("control", "detail", "--txn-seq", seq, pond=pond_dir).stdout.decode()
    for bad in ([], [seq, "--txn-seq", seq], ["x"]):
        proc = run_pond("control", "detail", *bad, pond=pond_dir, check=2)
        [line] = proc.stderr.decode().splitlines()
        assert line.startswith("error: ")
        assert proc.stdout == b""


def test_apply_unchanged_csv_copy_commits_nothing(pond_dir: Path, tmp_path: Path) -> None:
    """Re-applying a CSV copy (series and table) whose file did not change reports
    `unchanged` and commits nothing: the CSV is compared as the pond stores it."""
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,value\n2024-01-01T00:00:00Z,1.5\n2024-01-01T01:00:00Z,2.5\n")
    f = tmp_path / "layout.yaml"
    f.write_text(
        "\n---\n".join(
            "version: v1\nkind: copy\n"
            f"metadata: {{path: {path}}}\nspec: {{source: 'host+csv+{kind}://{csv}'}}"
            for path, kind in (("/s/x", "series"), ("/t/x", "table"))
        )
    )
    first = json.loads(run_pond("apply", "-f", f, "--format", "json", pond=pond_dir).stdout)
    assert [(p["path"], p["action"]) for p in first] == [("/s/x", "created"), ("/t/x", "created")]
    before = Pond.open(pond_dir)
    version, seq = before.data.version(), before.data.last_txn_seq()
    again = json.loads(run_pond("apply", "-f", f, "--format", "json", pond=pond_dir).stdout)
    assert [(p["path"], p["action"]) for p in again] == [
        ("/s/x", "unchanged"),
        ("/t/x", "unchanged"),
    ]
    after = Pond.open(pond_dir)
    assert (after.data.version(), after.data.last_txn_seq()) == (version, seq)
    assert len(after.versions("/s/x")) == 1 and len(after.versions("/t/x")) == 1
    # a changed CSV is still seen as changed: a series gets a new version
    csv.write_text(csv.read_text() + "2024-01-01T02:00:00Z,3.5\n")
    f2 = tmp_path / "series.yaml"
    f2.write_text(f.read_text().split("\n---\n")[0])
    third = json.loads(run_pond("apply", "-f", f2, "--format", "json", pond=pond_dir).stdout)
    assert [(p["path"], p["action"]) for p in third] == [("/s/x", "updated")]
    assert len(Pond.open(pond_dir).versions("/s/x")) == 2
