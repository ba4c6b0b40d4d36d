"""`pond fsck --repair` restores missing or damaged files from a backup (issue 17, item
7d): each copy is checked against the log (size, sha256 for blobs, a whole entry of the
same transaction) before it is put in place, and the report names the backup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import run_pond
from deltalake import DeltaTable

from duckpond import Pond

BIG = bytes(range(256)) * 400  # > 64 KiB: a blob


def fsck(root: Path, *extra: str, check: int | bool = True) -> dict[str, Any]:
    return json.loads(run_pond("fsck", "--format", "json", *extra, pond=root, check=check).stdout)


def make(tmp_path: Path) -> tuple[Path, Path]:
    root, backup = tmp_path / "pond", tmp_path / "backup"
    run_pond("init", pond=root)
    run_pond("mkdir", "/d", pond=root)
    src = tmp_path / "src.bin"
    for name, body in (("/d/small", b"small\n"), ("/d/big", BIG)):
        src.write_bytes(body)
        run_pond("copy", f"host://{src}", name, pond=root)
    run_pond("backup", "add", "b1", f"file://{backup}", pond=root)
    src.write_bytes(b"later\n")
    run_pond("copy", f"host://{src}", "/d/later", pond=root)  # pushed after its commit
    return root, backup


def test_missing_data_file_blob_and_log_entry_come_back_from_the_backup(tmp_path: Path) -> None:
    root, backup = make(tmp_path)
    pond = Pond.open(root)
    d_id = pond.fs.lookup("/d").node_id
    big = pond.fs.lookup("/d/big").row.content_hash
    assert big is not None
    data_files = [
        Path(u) for u in DeltaTable(str(root / "data")).file_uris() if f"part_id={d_id}/" in u
    ]
    originals = {p: p.read_bytes() for p in data_files}
    blob = root / "blobs" / big[:2] / big
    blob_bytes = blob.read_bytes()
    for p in data_files:
        p.unlink()
    blob.unlink()
    entry = root / "data" / "_delta_log" / f"{2:020d}.json"  # a middle entry: a gap
    entry_bytes = entry.read_bytes()
    entry.unlink()

    report = fsck(root, check=1)
    assert "missing_entry" in {p["kind"] for p in report["problems"]}
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True and fixed["lost"] == []
    restored = [p for p in fixed["problems"] if p["repaired"]]
    kinds = {p["kind"] for p in restored}
    assert {"missing_file", "missing_blob", "missing_entry"} <= kinds
    assert all(p["action"] == f"restored from backup file://{backup}" for p in restored)
    assert all(p.read_bytes() == b for p, b in originals.items())
    assert blob.read_bytes() == blob_bytes and entry.read_bytes() == entry_bytes
    assert fsck(root)["problems"] == []
    assert run_pond("cat", "/d/big", pond=root).stdout == BIG
    assert run_pond("cat", "/d/small", pond=root).stdout == b"small\n"
    run_pond("mkdir", "/d/more", pond=root)


def test_a_bad_copy_in_the_backup_is_not_used(tmp_path: Path) -> None:
    root, backup = make(tmp_path)
    big = Pond.open(root).fs.lookup("/d/big").row.content_hash
    assert big is not None
    (root / "blobs" / big[:2] / big).unlink()
    remote = backup / "blobs" / big[:2] / big
    remote.write_bytes(b"x" + remote.read_bytes()[1:])  # flipped on the backup too

    fixed = fsck(root, "--repair")
    p = next(p for p in fixed["problems"] if p["kind"] == "missing_blob")
    assert "restored" not in (p["action"] or "")
    assert any("bad copy" in n and big in n for n in fixed["notes"])
    assert any(big in line for line in fixed["lost"])
    assert not (root / "blobs" / big[:2] / big).exists()
