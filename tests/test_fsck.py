"""`pond fsck`: damage is found and named, `--repair` makes the pond usable again and says
what was lost, and writes refuse to start on a damaged log tip instead of reusing a txn_seq."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from conftest import run_pond

from duckpond import Pond

BIG = bytes(range(256)) * 400  # > 64 KiB: stored as a blob


def make_pond(tmp_path: Path) -> Path:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    with pond.transaction(["pond", "mkdir", "/d"]) as tx:
        tx.mkdir("/d")
    for i in range(3):
        with pond.transaction(["pond", "copy", f"/d/f{i}"]) as tx:
            tx.write_bytes(f"/d/f{i}", b"file %d\n" % i)
    with pond.transaction(["pond", "copy", "/big"]) as tx:
        tx.write_bytes("/big", BIG)
    with pond.transaction(["pond", "copy", "/top"]) as tx:
        tx.write_bytes("/top", b"top\n")
    return root


def newest_entry(root: Path, table: str) -> Path:
    return sorted((root / table / "_delta_log").glob("*.json"))[-1]


def fsck(root: Path, *extra: str, check: int | bool = True) -> dict[str, Any]:
    proc = run_pond("fsck", "--format", "json", *extra, pond=root, check=check)
    return json.loads(proc.stdout)


def problem(report: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [p for p in report["problems"] if p["kind"] == kind]
    assert found, f"no {kind} problem in {report['problems']}"
    return found[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "write.lock"
    }


def assert_write_refused(root: Path) -> None:
    before = snapshot(root)
    proc = run_pond("mkdir", "/new", pond=root, check=1)
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("error: ") and "pond fsck" in err, err
    assert snapshot(root) == before  # nothing written, no sequence number taken


def test_clean_pond_passes_with_documented_json(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    report = fsck(root)
    assert report["ok"] is True and report["repaired"] is False
    assert report["problems"] == [] and report["lost"] == []
    assert set(report["checked"]) == {
        "data_log_entries",
        "control_log_entries",
        "data_files",
        "control_files",
        "blobs",
        "transactions",
    }
    assert report["checked"]["blobs"] == 1 and report["checked"]["transactions"] == 7
    human = run_pond("fsck", pond=root)
    assert b"no problems" in human.stdout
    result = Pond.open(root).fsck()  # the library gives the typed result the CLI renders
    assert result.ok and result.problems == [] and result.to_json() == report


def test_entry_cut_at_a_line_boundary_is_found_refused_and_restored(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "data")
    lines = entry.read_bytes().splitlines(keepends=True)
    entry.write_bytes(lines[0])  # commitInfo survives; txn and add are gone
    name = f"data/_delta_log/{entry.name}"

    report = fsck(root, check=1)
    p = problem(report, "torn_entry")
    assert name in p["paths"] and p["txn_seqs"] == [7]
    assert_write_refused(root)  # today: the next write silently reuses txn_seq 7
    before = snapshot(root)
    assert "pond fsck" in run_pond("maintain", pond=root, check=1).stderr.decode()
    assert snapshot(root) == before  # no checkpoint taken over the damage

    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert problem(fixed, "torn_entry")["repaired"] is True
    assert (root / "lost+found").is_dir()
    # The transaction's Parquet file was still on disk: its rows are back.
    assert run_pond("cat", "/top", pond=root).stdout == b"top\n"
    run_pond("mkdir", "/after", pond=root)
    assert Pond.open(root).data.last_txn_seq() == 8  # 7 is never handed out again
    assert fsck(root)["problems"] == []


def test_entry_torn_mid_line_gives_one_line_error_and_repair_says_what_was_lost(
    tmp_path: Path,
) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "data")
    os.truncate(entry, 40)  # inside commitInfo: nothing of the transaction is readable
    proc = run_pond("list", pond=root, check=1)
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and entry.name in err and "pond fsck" in err
    assert "internal error" not in err
    assert_write_refused(root)

    report = fsck(root, check=1)
    assert f"data/_delta_log/{entry.name}" in problem(report, "torn_entry")["paths"]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    # The control table knew txn 7 committed at this version: its file is found again.
    assert run_pond("cat", "/top", pond=root).stdout == b"top\n"
    run_pond("mkdir", "/after", pond=root)
    assert Pond.open(root).data.last_txn_seq() == 8


def test_torn_entry_whose_file_is_gone_is_replaced_and_reported_lost(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "data")
    add = json.loads(entry.read_bytes().splitlines()[-1])["add"]["path"]
    (root / "data" / add).unlink()
    entry.write_bytes(entry.read_bytes().splitlines(keepends=True)[0])
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert any("txn_seq 7" in line for line in fixed["lost"]), fixed["lost"]
    # the directory entry of the lost file is dropped, everything else reads
    listing = run_pond("list", pond=root).stdout.decode().split()
    assert "/top" not in listing and "/d/f2" in listing
    run_pond("mkdir", "/after", pond=root)
    assert Pond.open(root).data.last_txn_seq() > 7
    assert fsck(root)["problems"] == []


def test_truncated_control_entry(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "control")
    os.truncate(entry, entry.stat().st_size // 2)
    report = fsck(root, check=1)
    assert f"control/_delta_log/{entry.name}" in problem(report, "torn_entry")["paths"]
    assert_write_refused(root)
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    run_pond("control", pond=root)
    run_pond("mkdir", "/after", pond=root)
    assert fsck(root)["problems"] == []


def test_deleted_data_file(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    pond = Pond.open(root)
    d = pond.lookup("/d")
    assert d is not None
    files = pond.data.partition_files(d.node_id)
    victim = next(
        f
        for f in files
        if "file 1" in str(pq.read_table(root / "data" / f).column("content").to_pylist())
    )
    (root / "data" / victim).unlink()

    proc = run_pond("cat", "/d/f1", pond=root, check=1)
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and victim in err and "pond fsck" in err
    assert run_pond("cat", "/top", pond=root).stdout == b"top\n"  # other nodes still read

    report = fsck(root, check=1)
    p = problem(report, "missing_file")
    assert f"data/{victim}" in p["paths"] and "/d" in p["paths"]
    human = run_pond("fsck", pond=root, check=1)
    assert victim.encode() in human.stdout

    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert any(victim in line for line in fixed["lost"]), fixed["lost"]
    listing = run_pond("list", pond=root).stdout.decode().split()
    assert "/top" in listing and "/big" in listing
    assert run_pond("cat", "/d/f0", pond=root).stdout == b"file 0\n"
    run_pond("mkdir", "/after", pond=root)
    assert fsck(root)["problems"] == []


def blob_file(root: Path) -> Path:
    return root / "blobs" / hashlib.sha256(BIG).hexdigest()[:2] / hashlib.sha256(BIG).hexdigest()


def test_deleted_blob(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    blob = blob_file(root)
    blob.unlink()
    report = fsck(root, check=1)
    p = problem(report, "missing_blob")
    assert str(blob.relative_to(root)) in p["paths"] and "/big" in p["paths"]
    assert p["txn_seqs"] == [6]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert any("/big" in line for line in fixed["lost"]), fixed["lost"]
    listing = run_pond("list", pond=root).stdout.decode().split()
    assert "/big" not in listing and "/top" in listing
    assert fsck(root)["problems"] == []


def test_corrupted_blob_bytes(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    blob = blob_file(root)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))
    report = fsck(root, check=1)
    p = problem(report, "corrupt_blob")
    assert str(blob.relative_to(root)) in p["paths"] and "/big" in p["paths"]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True
    assert not blob.exists()  # never served as if it were the content
    assert list((root / "lost+found").rglob(blob.name))
    assert fsck(root)["problems"] == []


def test_garbage_checkpoint_falls_back_to_the_log(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    run_pond("maintain", pond=root)
    ckpt = sorted((root / "data" / "_delta_log").glob("*.checkpoint.parquet"))[-1]
    ckpt.write_bytes(b"garbage" * 100)
    proc = run_pond("list", pond=root, check=1)
    err = proc.stderr.decode()
    assert ckpt.name in err and "pond fsck" in err and "internal error" not in err
    report = fsck(root, check=1)
    assert f"data/_delta_log/{ckpt.name}" in problem(report, "bad_checkpoint")["paths"]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True and fixed["lost"] == []  # nothing lost: the log was complete
    listing = run_pond("list", pond=root).stdout.decode().split()
    assert {"/big", "/top", "/d/f0", "/d/f1", "/d/f2"} <= set(listing)
    run_pond("mkdir", "/after", pond=root)
    assert fsck(root)["problems"] == []


def test_reused_txn_seq_is_reported(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "data")
    # A second data commit under txn_seq 7 with another txn_id (what a torn tip led to).
    lines = [json.loads(x) for x in entry.read_bytes().splitlines()]
    info = lines[0]["commitInfo"]
    pond_txn = json.loads(info["pond_txn"])
    pond_txn["txn_id"] = "01234567-0000-7000-8000-000000000000"
    info["pond_txn"] = json.dumps(pond_txn)
    version = int(entry.name.split(".")[0]) + 1
    body = "".join(json.dumps(x) + "\n" for x in lines[:2]) + "\n".join(
        json.dumps(x) for x in lines[2:]
    )
    (entry.parent / f"{version:020d}.json").write_text(body + "\n")
    report = fsck(root, check=1)
    p = problem(report, "txn_seq_reused")
    assert p["txn_seqs"] == [7] and sorted(p["versions"]) == [version - 1, version]


def test_missing_middle_entry_is_a_gap_that_repair_fills(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entries = sorted((root / "data" / "_delta_log").glob("*.json"))
    gone = entries[-3]  # txn 5 (/d/f2): later entries still follow it
    gone.unlink()
    err = run_pond("list", pond=root, check=1).stderr.decode()
    assert gone.name in err and "pond fsck" in err and "internal error" not in err
    report = fsck(root, check=1)
    p = problem(report, "missing_entry")
    assert f"data/_delta_log/{gone.name}" in p["paths"] and p["txn_seqs"] == [5]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True and fixed["lost"] == []  # its file was still on disk
    assert run_pond("cat", "/d/f2", pond=root).stdout == b"file 2\n"
    assert fsck(root)["problems"] == []


def test_newest_entry_deleted_whole_is_put_back_from_the_control_record(tmp_path: Path) -> None:
    root = make_pond(tmp_path)
    entry = newest_entry(root, "data")
    entry.unlink()  # the log is consistent without it: only the control table knows
    report = fsck(root, check=1)
    p = problem(report, "lost_commit")
    assert p["txn_seqs"] == [7] and f"data/_delta_log/{entry.name}" in p["paths"]
    fixed = fsck(root, "--repair")
    assert fixed["ok"] is True and fixed["lost"] == []
    assert run_pond("cat", "/top", pond=root).stdout == b"top\n"
    run_pond("mkdir", "/after", pond=root)
    assert Pond.open(root).data.last_txn_seq() == 8
    assert fsck(root)["problems"] == []
