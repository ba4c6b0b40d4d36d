"""Checkpoints the pond writes itself (storage/checkpoints.py): what delta-rs would write,
read alike by other Delta readers, with only unexpired tombstones, and no deltalake in a
long-lived pond's upkeep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli_env
from deltalake import DeltaTable, QueryBuilder

from duckpond import Pond
from duckpond.storage import checkpoints, deltalog, parquetwrite, tableread, upkeep


def _actions(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's content, comparable across writers: the paths added and removed,
    the application transactions, and the protocol and metadata (map columns as dicts)."""
    rows = pq.read_table(checkpoint, columns=["add", "remove", "metaData", "protocol", "txn"])
    out: dict[str, Any] = {"add": {}, "remove": set(), "txn": {}}
    for add in rows.column("add").to_pylist():
        if add is not None:
            out["add"][add["path"]] = (
                dict(add["partitionValues"]),
                add["size"],
                json.loads(add["stats"] or "{}"),
            )
    for rm in rows.column("remove").to_pylist():
        if rm is not None:
            out["remove"].add((rm["path"], rm["deletionTimestamp"]))
    for txn in rows.column("txn").to_pylist():
        if txn is not None:
            out["txn"][txn["appId"]] = (txn["version"], txn["lastUpdated"])
    for meta in rows.column("metaData").to_pylist():
        if meta is not None:
            meta["configuration"] = dict(meta["configuration"])
            meta["format"]["options"] = dict(meta["format"]["options"])
            out["metaData"] = meta
    out["protocol"] = next(p for p in rows.column("protocol").to_pylist() if p is not None)
    return out


def _busy_pond(root: Path, writes: int) -> Pond:
    pond = Pond.create(root)
    for i in range(writes):
        with pond.transaction() as tx:
            tx.write_bytes(f"/d{i % 3}/f{i % 40}", b"x%d" % i, parents=True)
    return pond


def test_the_ponds_checkpoint_holds_what_delta_rs_would_write(tmp_path: Path) -> None:
    """Same live files with the same statistics, transactions, protocol, metadata and
    tombstones as delta-rs's checkpoint of the same version."""
    pond = _busy_pond(tmp_path / "p", 130)  # the data table's first checkpoint at 100
    for table in ("data", "control"):
        path = tmp_path / "p" / table
        v = tableread.last_checkpoint_version(path)
        assert v >= 100, table
        ours = path / "_delta_log" / f"{v:020d}.checkpoint.parquet"
        assert pq.ParquetFile(ours).metadata.row_group(0).column(0).compression == "ZSTD"
        # delta-rs's checkpoint of the same version, in a copy of the table
        theirs_dir = tmp_path / f"theirs-{table}"
        shutil.copytree(path, theirs_dir)
        dt = DeltaTable(str(theirs_dir), version=v)
        dt.create_checkpoint()
        theirs = _actions(theirs_dir / "_delta_log" / f"{v:020d}.checkpoint.parquet")
        mine = _actions(ours)
        assert mine["add"] == theirs["add"] and mine["add"]
        assert mine["txn"] == theirs["txn"]
        assert mine["protocol"] == theirs["protocol"]
        assert mine["metaData"] == theirs["metaData"]
        # tombstones: delta-rs keeps those younger than the table's retention when *it*
        # writes; the pond's were written earlier, so they are a subset of delta-rs's
        assert mine["remove"] <= theirs["remove"]
        hint = json.loads((path / "_delta_log" / "_last_checkpoint").read_text())
        assert hint["version"] == v and hint["numOfAddFiles"] == len(mine["add"])
        assert hint["size"] == pq.ParquetFile(ours).metadata.num_rows
    assert pond.data._dt is None and pond.control._dt is None  # upkeep needed no delta-rs


def test_other_readers_open_the_table_from_the_ponds_checkpoint_alone(tmp_path: Path) -> None:
    _busy_pond(tmp_path / "p", 110)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "p", copy)
    log = copy / "data" / "_delta_log"
    v = tableread.last_checkpoint_version(copy / "data")
    for n in range(v + 1):  # only the checkpoint can tell the state at v
        (log / f"{n:020d}.json").unlink(missing_ok=True)

    def count(table: Path) -> int:
        q = QueryBuilder().register("t", DeltaTable(str(table)))
        return int(q.execute("select count(*) as n from t").read_all().column("n")[0].as_py())

    want = count(tmp_path / "p" / "data")
    assert count(copy / "data") == want
    assert DeltaTable(str(copy / "data")).transaction_version("pond") == 111
    assert Pond.open(copy).read_bytes("/d1/f1") == Pond.open(tmp_path / "p").read_bytes("/d1/f1")
    code = (  # os._exit: Polars' runtime can crash at interpreter teardown (CI stop 26)
        "import os, sys, polars as pl; "
        "print(pl.scan_delta(sys.argv[1]).select(pl.len()).collect().item(), flush=True); "
        "os._exit(0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(copy / "data")], capture_output=True, env=cli_env()
    )
    if proc.returncode != 0 and b"No module named 'polars'" in proc.stderr:
        pytest.skip("polars is not installed")
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    assert int(proc.stdout) == want


def test_expired_tombstones_are_left_out(tmp_path: Path) -> None:
    pond = _busy_pond(tmp_path / "p", 40)
    path = tmp_path / "p" / "data"
    snap = deltalog.Snapshot.load(path, stats=True, tombstones=True)
    assert snap.tombstone_paths(), "compaction should have removed files"
    checkpoints.write_checkpoint(snap)
    log = path / "_delta_log"
    written = _actions(log / f"{snap.version:020d}.checkpoint.parquet")["remove"]
    assert {p for p, _ in written} == snap.tombstone_paths()
    # once the tombstone retention (here: a second) has passed, none is carried on
    DeltaTable(str(path)).alter.set_table_properties(
        {upkeep.TOMBSTONE_KEY: "interval 1 second"}
    )
    time.sleep(1.2)
    snap = deltalog.Snapshot.load(path, stats=True, tombstones=True)
    assert snap.tombstone_paths()  # the log still has them, from the previous checkpoint
    checkpoints.write_checkpoint(snap)
    assert _actions(log / f"{snap.version:020d}.checkpoint.parquet")["remove"] == set()
    pond.refresh()
    assert pond.read_bytes("/d0/f0") == b"x0"


def test_tombstones_of_the_previous_checkpoint_carry_over_unless_re_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next checkpoint keeps the previous one's tombstones (read as Arrow columns) and
    adds the newer commits' removes; a file re-added since is live, not a tombstone (here
    with a path the log spells percent-encoded). The same sets as delta-rs's checkpoint.
    Tombstones are written (and read) in row groups of CHECKPOINT_GROUP_ROWS: here one."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_GROUP_ROWS", 1)
    path = tmp_path / "t"
    DeltaTable.create(str(path), pa.schema([("x", pa.int64())]))
    log = path / "_delta_log"
    now = int(time.time() * 1000)

    def commit(version: int, actions: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(a) + "\n" for a in actions)
        (log / f"{version:020d}.json").write_text(lines)

    files = [parquetwrite.write_file(path, pa.table({"x": pa.array([i])})) for i in range(3)]
    spaced = files[0]
    os.rename(path / spaced.path, path / "sp ace.parquet")
    spaced.path = "sp%20ace.parquet"
    commit(1, [f.to_json(now) for f in files[:2]])
    for f in files[:2]:
        f.remove = True
    commit(2, [f.to_json(now) for f in files[:2]])
    checkpoints.write_checkpoint(deltalog.Snapshot.load(path, stats=True, tombstones=True))
    assert _actions(log / f"{2:020d}.checkpoint.parquet")["remove"] == {
        ("sp%20ace.parquet", now),
        (files[1].path, now),
    }
    # protocol, metadata and the two tombstones, at one row per group
    assert pq.ParquetFile(log / f"{2:020d}.checkpoint.parquet").metadata.num_row_groups == 4
    spaced.remove = False
    commit(3, [spaced.to_json(now), files[2].to_json(now)])  # re-added, and a new file
    files[2].remove = True
    commit(4, [files[2].to_json(now + 1)])
    theirs_dir = tmp_path / "theirs"
    shutil.copytree(path, theirs_dir)
    snap = deltalog.Snapshot.load(path, stats=True, tombstones=True)
    assert snap.checkpoint_removes is not None  # read from the checkpoint at 2
    checkpoints.write_checkpoint(snap)
    mine = _actions(log / f"{4:020d}.checkpoint.parquet")
    assert mine["remove"] == {(files[1].path, now), (files[2].path, now + 1)}
    assert set(mine["add"]) == {"sp%20ace.parquet"}
    DeltaTable(str(theirs_dir)).create_checkpoint()
    theirs = _actions(theirs_dir / "_delta_log" / f"{4:020d}.checkpoint.parquet")
    assert mine["remove"] == theirs["remove"] and set(mine["add"]) == set(theirs["add"])


def test_a_log_the_ponds_reader_does_not_handle_is_checkpointed_by_delta_rs(
    tmp_path: Path,
) -> None:
    """An add with tags (another engine's) cannot be written back whole by the pond."""
    path = tmp_path / "t"
    DeltaTable.create(str(path), pa.schema([("x", pa.int64())]))
    action = parquetwrite.write_file(path, pa.table({"x": pa.array([1, 2], pa.int64())}))
    entry = action.to_json(int(time.time() * 1000))
    entry["add"]["tags"] = {"INSERTION_TIME": "1"}
    (path / "_delta_log" / f"{1:020d}.json").write_text(json.dumps(entry) + "\n")
    with pytest.raises(deltalog.Unsupported):
        deltalog.Snapshot.load(path, stats=True, tombstones=True)
    checkpoints.checkpoint(path)
    assert tableread.last_checkpoint_version(path) == 1
    rows = pq.read_table(path / "_delta_log" / f"{1:020d}.checkpoint.parquet")
    adds = [a for a in rows.column("add").to_pylist() if a is not None]
    assert [dict(a["tags"]) for a in adds] == [{"INSERTION_TIME": "1"}]


def test_automatic_vacuum_waits_a_fraction_of_the_window(tmp_path: Path) -> None:
    """A checkpoint vacuums only if the previous vacuum is older than window / 8 (at most
    five minutes): garbage is deleted that much later at most, and checkpoints do not stat
    every file still inside the window; `full` (pond maintain) always vacuums."""
    pond = _busy_pond(tmp_path / "p", 3)
    pond.set_retention(100)  # vacuum at most every 12.5 s
    data = tmp_path / "p" / "data"
    part = next(p for p in data.iterdir() if p.name.startswith("part_id="))

    def garbage(name: str) -> Path:
        path = part / f"{name}.parquet"
        path.write_bytes(b"not referenced")
        os.utime(path, (time.time() - 1000, time.time() - 1000))
        return path

    first = garbage("g1")
    assert checkpoints.checkpoint(data) >= 1 and not first.exists()
    second = garbage("g2")
    assert checkpoints.checkpoint(data) == 0 and second.exists()  # vacuumed just now
    mark = data / checkpoints.VACUUM_MARK
    os.utime(mark, (time.time() - 13, time.time() - 13))
    assert checkpoints.checkpoint(data) == 1 and not second.exists()
    third = garbage("g3")
    assert checkpoints.checkpoint(data, full=True) == 1 and not third.exists()
    pond.refresh()
    assert pond.read_bytes("/d0/f0") == b"x0"
