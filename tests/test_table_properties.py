"""The Delta table properties tell other engines what the pond does (issue 17, item 12):
`delta.deletedFileRetentionDuration` and `delta.logRetentionDuration` state the retention
window, so another engine's default VACUUM deletes nothing the pond still keeps, and the
pond's checkpoints restate files with `dataChange: false`, as delta-rs's do."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
from conftest import run_pond
from deltalake import DeltaTable

from duckpond import Pond
from duckpond.storage import tableread

PROPS = ("delta.deletedFileRetentionDuration", "delta.logRetentionDuration")


def properties(root: Path, table: str) -> dict[str, str]:
    config = DeltaTable(str(root / table)).metadata().configuration
    return {k: config.get(k, "") for k in PROPS}


def test_properties_state_the_retention_window(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_pond("init", pond=root)
    for table in ("data", "control"):
        assert properties(root, table) == dict.fromkeys(PROPS, "interval 3600 seconds")
    run_pond("retention", "7200", pond=root)
    for table in ("data", "control"):
        assert properties(root, table) == dict.fromkeys(PROPS, "interval 7200 seconds")
    run_pond("retention", "1.5", pond=root)
    for table in ("data", "control"):
        assert properties(root, table) == dict.fromkeys(PROPS, "interval 1500 milliseconds")


def test_maintain_gives_an_older_pond_the_properties(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_pond("init", pond=root)
    for table in ("data", "control"):  # what ponds before issue 17 were created with
        DeltaTable(str(root / table)).alter.set_table_properties(
            {PROPS[0]: "interval 1 minutes", PROPS[1]: "interval 7 days"}
        )
    run_pond("maintain", pond=root)
    for table in ("data", "control"):
        assert properties(root, table) == dict.fromkeys(PROPS, "interval 3600 seconds")


def _age(root: Path, minutes: float) -> set[str]:
    """Make the data table's replaced files and their tombstones `minutes` old, as if that
    much time had passed since the compaction; returns the replaced files."""
    log = root / "data" / "_delta_log"
    for cp in log.glob("*.checkpoint.parquet"):  # readers replay the (whole) log instead
        cp.unlink()
    (log / "_last_checkpoint").unlink(missing_ok=True)
    then_ms = int((time.time() - minutes * 60) * 1000)
    replaced = set()
    for entry in sorted(log.glob("*.json")):
        lines = entry.read_text().splitlines()
        out = []
        for line in lines:
            action = json.loads(line)
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = then_ms
                replaced.add(action["remove"]["path"])
            out.append(json.dumps(action))
        entry.write_text("\n".join(out) + "\n")
    for rel in replaced:
        os.utime(root / "data" / rel, (then_ms / 1000, then_ms / 1000))
    return replaced


def test_default_vacuum_of_another_engine_keeps_what_the_pond_keeps(tmp_path: Path) -> None:
    root = tmp_path / "p"
    run_pond("init", pond=root)
    run_pond("mkdir", "/d", pond=root)
    src = tmp_path / "x"
    for i in range(10):
        src.write_bytes(b"%d" % i)
        run_pond("copy", f"host://{src}", f"/d/f{i}", pond=root)
    run_pond("maintain", pond=root)  # compaction replaces files: kept for the window
    replaced = _age(root, 10)  # ten minutes later: still inside the 1-hour window
    assert replaced
    for full in (False, True):
        listed = DeltaTable(str(root / "data")).vacuum(dry_run=True, full=full)
        assert not set(listed) & replaced, (full, listed)
    assert Pond.open(root).read_bytes("/d/f3") == b"3"
    # with a 5-minute window the same files are garbage for the pond and for delta-rs alike
    run_pond("retention", "300", pond=root)
    listed = DeltaTable(str(root / "data")).vacuum(dry_run=True)
    assert set(listed) == replaced


def test_checkpoint_adds_restate_files_without_data_change(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "p")
    for i in range(130):  # past the data table's first automatic checkpoint
        with pond.transaction() as tx:
            tx.write_bytes(f"/d{i % 3}/f{i % 40}", b"x%d" % i, parents=True)
    for table in ("data", "control"):
        path = tmp_path / "p" / table
        v = tableread.last_checkpoint_version(path)
        assert v >= 100
        theirs_dir = tmp_path / f"theirs-{table}"
        shutil.copytree(path, theirs_dir)
        DeltaTable(str(theirs_dir), version=v).create_checkpoint()
        name = f"_delta_log/{v:020d}.checkpoint.parquet"
        for cp in (path / name, theirs_dir / name):
            adds = [a for a in pq.read_table(cp, columns=["add"])["add"].to_pylist() if a]
            assert adds and {a["dataChange"] for a in adds} == {False}, cp
