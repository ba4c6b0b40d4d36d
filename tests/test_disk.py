"""Disk use: the retention window, automatic vacuum, and what `pond maintain` removes
(orphaned blobs, crash leftovers) and keeps (every version's blobs, readers' files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_pond
from deltalake import DeltaTable

from duckpond.errors import PondError
from duckpond.pond import Pond
from duckpond.storage import tableread, upkeep

BIG = 70 * 1024  # above the 64 KiB inline limit: stored as a blob
HOUR = 3600.0


def age(path: Path, seconds: float) -> None:
    """Make a file look `seconds` old (its mtime is what the retention window measures)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").glob("??/*")}


def parquet_on_disk(table: Path) -> set[str]:
    """Data files on disk (not the log, checkpoints or the commit archive)."""
    return {
        str(p.relative_to(table))
        for p in table.rglob("*.parquet")
        if not p.relative_to(table).parts[0].startswith("_")
    }


def live_files(table: Path) -> set[str]:
    return set(tableread.add_actions(DeltaTable(str(table))).column("path").to_pylist())


def test_retention_default_and_setting_keeps_fractions(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    assert pond.retention() == HOUR
    pond.set_retention(1800.5)
    assert Pond.open(pond_dir).retention() == 1800.5
    for name in ("data", "control"):  # both tables keep it in their description
        description = DeltaTable(str(pond_dir / name)).metadata().description
        assert upkeep.retention_seconds(description) == 1800.5
    assert Pond.open(pond_dir).identity() == pond.identity()
    with pytest.raises(PondError):
        pond.set_retention(-1)


def test_retention_cli(pond_dir: Path) -> None:
    assert run_pond("retention", pond=pond_dir).stdout.strip() == b"3600"
    assert run_pond("retention", "90.5", pond=pond_dir).stdout.strip() == b"90.5"
    assert Pond.open(pond_dir).retention() == 90.5
    bad = run_pond("retention", "nan", pond=pond_dir, check=1)
    assert bad.stderr.startswith(b"error: ")
    assert Pond.open(pond_dir).retention() == 90.5


def test_orphan_blob_of_rolled_back_txn_removed_after_retention_not_before(
    pond_dir: Path,
) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction(args=["keep"]) as tx:
        tx.write_bytes("/kept.bin", b"k" * BIG)
    kept = blob_files(pond_dir)
    with pytest.raises(RuntimeError):
        with pond.transaction(args=["rolled back"]) as tx:
            tx.write_bytes("/gone.bin", b"g" * BIG)
            raise RuntimeError("roll back")
    orphan = blob_files(pond_dir) - kept
    assert len(orphan) == 1 and pond.lookup("/gone.bin") is None

    report = pond.maintain()  # the default window: the orphan is too young
    assert report.blobs["removed"] == 0
    assert blob_files(pond_dir) == kept | orphan

    for blob in (pond_dir / "blobs").glob("??/*"):
        age(blob, 2 * HOUR)  # both older than the window now; only one is referenced
    report = pond.maintain()
    assert report.blobs["removed"] == 1
    assert blob_files(pond_dir) == kept
    assert Pond.open(pond_dir).read_bytes("/kept.bin") == b"k" * BIG


def test_reused_blob_is_young_again(pond_dir: Path) -> None:
    """An old orphan whose content is written again is not collected under the new row."""
    pond = Pond.open(pond_dir)
    with pytest.raises(RuntimeError):
        with pond.transaction(args=["rolled back"]) as tx:
            tx.write_bytes("/a.bin", b"a" * BIG)
            raise RuntimeError("roll back")
    (blob,) = (pond_dir / "blobs").glob("??/*")
    age(blob, 2 * HOUR)
    with pond.transaction(args=["again"]) as tx:
        tx.write_bytes("/a.bin", b"a" * BIG)
    assert time.time() - blob.stat().st_mtime < HOUR
    pond.maintain(retention_hours=1)
    assert Pond.open(pond_dir).read_bytes("/a.bin") == b"a" * BIG


def test_old_version_blobs_kept_and_readable(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    contents = [b"1" * BIG, b"2" * BIG, b"small"]
    for c in contents:
        with pond.transaction(args=["v"]) as tx:
            tx.write_bytes("/f", c)
    for blob in (pond_dir / "blobs").glob("??/*"):
        age(blob, 2 * HOUR)
    run_pond("maintain", "--retention-hours", "0", pond=pond_dir)
    assert len(blob_files(pond_dir)) == 2
    for v, c in enumerate(contents, start=1):
        assert run_pond("cat", "--version", v, "/f", pond=pond_dir).stdout == c
    assert (pond_dir / "write.lock").exists()


def test_crash_leftover_tmp_files_removed_after_retention(pond_dir: Path) -> None:
    leftovers = [
        pond_dir / "data" / "_delta_log" / ".tmp-1-aaaa.json",
        pond_dir / "control" / "_delta_log" / ".tmp-1-bbbb.json",
        pond_dir / "blobs" / ".tmp-1-cccc",
    ]
    fresh = [p.with_name(p.name.replace("-1-", "-2-")) for p in leftovers]
    for p in leftovers + fresh:
        p.write_bytes(b"partial")
    for p in leftovers:
        age(p, 2 * HOUR)
    # A Parquet file a crashed write left behind (never committed) is garbage too.
    stray = pond_dir / "data" / "part-1-dead.zstd.parquet"
    pq.write_table(pq.read_table(next((pond_dir / "data").rglob("part-*.parquet"))), stray)
    age(stray, 2 * HOUR)
    report = Pond.open(pond_dir).maintain()
    assert report.blobs["temp_files_removed"] == 1
    assert not any(p.exists() for p in [*leftovers, stray])
    assert all(p.exists() for p in fresh)
    assert (pond_dir / "write.lock").exists()
    assert [e.path for e in Pond.open(pond_dir).list("/**")] == ["/"]  # still valid


def _fill(pond: Pond, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with pond.transaction(args=["w", str(i)]) as tx:
            tx.write_bytes(f"/d/f{i}", b"x" * 100, parents=True)


def test_reader_in_flight_survives_maintain(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    _fill(pond, 12)
    data = pond_dir / "data"
    # A Delta reader (and a pond reader) lists the files of the current version ...
    reader = DeltaTable(str(data))
    listed = reader.file_uris()
    pond_reader = Pond.open(pond_dir)
    part_files = {p: pond_reader.data.partition_files(p) for p in pond_reader.data.partitions()}
    # ... then another process compacts and cleans with the default window ...
    run_pond("maintain", pond=pond_dir)
    assert not set(live_files(data)) >= {f for fs in part_files.values() for f in fs}
    # ... and the reader still reads every file it listed.
    rows = sum(pq.read_table(uri).num_rows for uri in listed)
    assert rows == sum(
        n or 0 for n in tableread.add_actions(reader).column("num_records").to_pylist()
    )
    for files in part_files.values():
        for f in files:
            assert pq.read_table(data / f).num_rows > 0
    assert pond_reader.read_bytes("/d/f3") == b"x" * 100
    # Once they are older than the window, they go (so the test above can fail).
    run_pond("maintain", "--retention-hours", "0", pond=pond_dir)
    assert parquet_on_disk(data) == live_files(data)
    assert not all(Path(uri.removeprefix("file://")).exists() for uri in listed)


def test_maintain_half_hour_window_is_not_truncated_to_zero(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    _fill(pond, 4)
    data = pond_dir / "data"
    before = parquet_on_disk(data)
    pond.maintain()  # compacts: the replaced files are stamped with their removal time
    replaced = before - live_files(data)
    assert replaced
    for rel in replaced:
        age(data / rel, 10 * 60)  # removed 10 minutes ago
    pond.maintain(retention_hours=0.5)
    assert all((data / rel).exists() for rel in replaced)
    pond.maintain(retention_hours=1 / 60)
    assert not any((data / rel).exists() for rel in replaced)


def test_automatic_vacuum_at_checkpoint_honours_the_window(tmp_path: Path) -> None:
    """With the window at 0, the checkpoint every 100 versions deletes replaced files;
    with the default window nothing is deleted."""
    older = {}
    # Two checkpoints with window 0: the second visits only partitions changed since.
    for name, window, writes in (("zero", 0.0, 210), ("default", None, 110)):
        pond = Pond.create(tmp_path / name)
        if window is not None:
            pond.set_retention(window)
        _fill(pond, writes)
        data = tmp_path / name / "data"
        checkpoint_at = (data / "_delta_log" / "_last_checkpoint").stat().st_mtime
        garbage = parquet_on_disk(data) - live_files(data)
        assert garbage
        # A replaced file's mtime is its removal time. The 1 s margin covers a window-0
        # checkpoint racing the clock; the default window must keep files replaced any time
        # before its checkpoint (110 writes may take well under a second).
        margin = 1.0 if window is not None else 0.0
        older[name] = [g for g in garbage if (data / g).stat().st_mtime < checkpoint_at - margin]
    assert older["zero"] == []  # only files replaced after the last checkpoint remain
    assert older["default"]  # the default window keeps them


def test_files_written_per_write_are_few_and_small(pond_dir: Path) -> None:
    """One plain write (no upkeep) creates 1 data file, 2 control files and 3 log
    entries, in all well under half of the ~26 KB a write cost before."""
    pond = Pond.open(pond_dir)
    _fill(pond, 3)

    def files() -> dict[Path, int]:
        return {p: p.stat().st_size for p in pond_dir.rglob("*") if p.is_file()}

    before = files()
    with pond.transaction(args=["one"]) as tx:
        tx.write_bytes("/d/one", os.urandom(1024))
    new = {p: s for p, s in files().items() if p not in before}
    kinds = sorted(
        ("log" if p.parent.name == "_delta_log" else p.relative_to(pond_dir).parts[0]) for p in new
    )
    assert kinds == ["control", "control", "data", "log", "log", "log"], kinds
    assert sum(new.values()) < 13_000, new
    # Control rows are tiny: their files carry little besides the footer (17 columns:
    # 2.7 KB with statistics and without the ARROW:schema copy, ~3.3 KB with it).
    assert all(s < 3_000 for p, s in new.items() if p.parts[-2] == "control"), new


@pytest.mark.parametrize(
    "phase",
    [
        "maintain_after_compact",
        "maintain_after_data",
        "maintain_after_control_compact",
        "maintain_before_blobs",
    ],
)
def test_crash_during_maintain_leaves_a_valid_pond(pond_dir: Path, phase: str) -> None:
    pond = Pond.open(pond_dir)
    contents = [b"1" * BIG, b"2", b"3" * BIG]
    for c in contents:
        with pond.transaction(args=["v"]) as tx:
            tx.write_bytes("/d/f", c, parents=True)
    _fill(pond, 9)
    for blob in (pond_dir / "blobs").glob("??/*"):
        age(blob, 2 * HOUR)
    proc = run_pond(
        "maintain",
        "--retention-hours",
        "0",
        pond=pond_dir,
        env={"POND_CRASH_AT": phase},
        check=False,
    )
    assert proc.returncode == -9
    for v, c in enumerate(contents, start=1):
        assert run_pond("cat", "--version", v, "/d/f", pond=pond_dir).stdout == c
    assert run_pond("cat", "/d/f8", pond=pond_dir).stdout == b"x" * 100
    run_pond("maintain", "--retention-hours", "0", pond=pond_dir)
    for v, c in enumerate(contents, start=1):
        assert run_pond("cat", "--version", v, "/d/f", pond=pond_dir).stdout == c
    assert (pond_dir / "write.lock").exists()
    data = pond_dir / "data"
    assert parquet_on_disk(data) == live_files(data)
