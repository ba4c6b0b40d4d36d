"""`pond fsck` over what the rows say (issue 17, item 7): a directory whose entries cannot
be rebuilt is found and rewritten so writes work again, and a node version another Delta
writer stored twice is named (and left alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import run_pond
from deltalake import DeltaTable, write_deltalake

from duckpond import Pond


def fsck(root: Path, *extra: str, check: int | bool = True) -> dict[str, Any]:
    return json.loads(run_pond("fsck", "--format", "json", *extra, pond=root, check=check).stdout)


def kinds(report: dict[str, Any]) -> set[str]:
    return {p["kind"] for p in report["problems"]}


def copy_in(root: Path, tmp_path: Path, dest: str, body: bytes) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(body)
    run_pond("copy", f"host://{src}", dest, pond=root)


def live_files(root: Path, part: str) -> list[str]:
    dt = DeltaTable(str(root / "data"))
    return [f for f in dt.file_uris() if f"part_id={part}/" in f]


def test_directory_left_without_its_snapshot_is_rebuilt_and_writable(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    run_pond("mkdir", "/d", pond=root)
    for i in range(9):
        copy_in(root, tmp_path, f"/d/f{i}", b"%d" % i)
    run_pond("maintain", pond=root)  # /d's rows, its snapshot included, in one file
    d_id = Pond.open(root).fs.lookup("/d").node_id
    (compacted,) = live_files(root, d_id)
    copy_in(root, tmp_path, "/d/after", b"after")  # a delta on top of the snapshot
    Path(compacted).unlink()

    report = fsck(root, check=1)
    broken = next(p for p in report["problems"] if p["kind"] == "broken_directory")
    assert broken["paths"] == ["/d"] and "no snapshot" in broken["message"]

    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert {"missing_file", "broken_directory"} <= kinds(fixed)
    assert any(line.startswith("/d:") for line in fixed["lost"])
    assert fsck(root)["problems"] == []  # today: "no problems" ...
    copy_in(root, tmp_path, "/d/x", b"x")  # ... while this write failed
    run_pond("mkdir", "/d/sub", pond=root)
    listed = run_pond("list", "/d/*", pond=root).stdout.decode().split()
    assert listed == ["/d/after", "/d/sub", "/d/x"]
    assert run_pond("cat", "/d/after", pond=root).stdout == b"after"
    assert fsck(root)["problems"] == []


def test_a_version_appended_twice_by_another_writer_is_named(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    copy_in(root, tmp_path, "/a", b"one")
    copy_in(root, tmp_path, "/b", b"two")
    a_id = Pond.open(root).fs.lookup("/a").node_id
    dt = DeltaTable(str(root / "data"))
    rows, part = None, ""
    for uri in dt.file_uris():
        t = pq.read_table(uri)
        hits = [i for i, n in enumerate(t["node_id"].to_pylist()) if n == a_id]
        if hits:
            rows, part = t.take(hits), Path(uri).parent.name.split("=", 1)[1]
    assert rows is not None  # a copy of /a's row, appended as another engine would
    rows = rows.append_column("part_id", pa.array([part] * rows.num_rows))
    rows = rows.select(pa.schema(dt.schema().to_arrow()).names)
    write_deltalake(str(root / "data"), rows, mode="append")

    report = fsck(root, check=1)
    dup = next(p for p in report["problems"] if p["kind"] == "duplicate_version")
    assert "/a" in dup["paths"] and "version 1 of /a is stored 2 times" in dup["message"]
    assert len([p for p in dup["paths"] if p.startswith("data/part_id=")]) == 2
    assert kinds(report) == {"duplicate_version"}
    before = DeltaTable(str(root / "data")).version()
    again = fsck(root, "--repair", check=1)  # nothing is safe to do: reported, not touched
    assert again["ok"] is False and not again["lost"]
    assert DeltaTable(str(root / "data")).version() == before
