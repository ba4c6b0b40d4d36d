"""Reverts and collapses of one series compose (seriesview.live_rows): a collapse folds the
versions a revert kept, never the one it dropped; reverting a collapse gives back exactly
what it folded; no COUNT or SUM is doubled at any step."""

from __future__ import annotations

from pathlib import Path

from conftest import run_pond

from duckpond.pond import Pond


def _count_sum(pond: Path) -> bytes:
    q = "SELECT count(*) AS n, sum(v) AS s FROM source"
    return run_pond("cat", "/s", "--sql", q, "--format", "csv", pond=pond).stdout


def test_revert_then_collapse_then_revert_the_collapse(tmp_path: Path, pond_dir: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("time,v\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n")
    b.write_text("time,v\n2024-01-02T00:00:00Z,10\n2024-01-02T01:00:00Z,20\n")
    for src in (a, b, b):  # b copied twice by mistake
        run_pond("copy", f"host+csv+series://{src}", "/s", pond=pond_dir)
    assert _count_sum(pond_dir) == b'"n","s"\n6,63\n'
    dup = Pond.open(pond_dir).data.last_txn_seq()
    run_pond("revert", dup, pond=pond_dir)
    assert _count_sum(pond_dir) == b'"n","s"\n4,33\n'

    run_pond("maintain", "--collapse-versions", "1", pond=pond_dir)
    collapse = Pond.open(pond_dir).data.last_txn_seq()
    assert _count_sum(pond_dir) == b'"n","s"\n4,33\n'  # the dropped copy is not folded back
    run_pond("copy", f"host+csv+series://{a}", "/s", pond=pond_dir)  # then a later append
    assert _count_sum(pond_dir) == b'"n","s"\n6,36\n'

    run_pond("revert", collapse, "--force", pond=pond_dir)
    assert _count_sum(pond_dir) == b'"n","s"\n6,36\n'  # the same rows, unfolded
    assert run_pond("fsck", pond=pond_dir).returncode == 0
