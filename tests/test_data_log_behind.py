"""A write refuses while the data log is behind what the control table records as committed
(the newest data log entry deleted whole): its txn_seq would be handed out again."""

from __future__ import annotations

from pathlib import Path

from conftest import run_pond

from duckpond.pond import Pond


def _logs(root: Path) -> dict[str, list[str]]:
    return {
        t: sorted(p.name for p in (root / t / "_delta_log").iterdir()) for t in ("data", "control")
    }


def test_write_refused_while_data_log_is_behind_control(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    run_pond("mkdir", "/a", pond=root)
    run_pond("mkdir", "/b", pond=root)
    last = Pond.open(root).data.last_txn_seq()
    newest = sorted((root / "data" / "_delta_log").glob("*.json"))[-1]
    newest.unlink()  # the log before it is whole: only the control table knows
    before = _logs(root)

    for argv in (("mkdir", "/c"), ("maintain",)):
        err = run_pond(*argv, pond=root, check=1).stderr.decode()
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert f"ends at txn_seq {last - 1}" in err and f"txn_seq {last} as committed" in err
        assert "pond fsck" in err and "nothing was written" in err
        assert _logs(root) == before  # not even a `begin` row

    run_pond("fsck", "--repair", pond=root)
    run_pond("mkdir", "/c", pond=root)
    pond = Pond.open(root)
    assert pond.data.last_txn_seq() == last + 1  # a new number, never the lost one's
    assert {e.path for e in pond.list("/*")} >= {"/a", "/b", "/c"}
